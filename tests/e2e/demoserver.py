"""``croupier serve --demo`` as ``make demo`` runs it: in its own directory (so on its own
``croupier.db``), with no CROUPIER_* settings, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port, timeout

DEMO_KEY = "demo-key"


class DemoServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log_file = directory / "demo.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DemoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
        env["PYTHONUNBUFFERED"] = "1"
        args = [sys.executable, "-m", "croupier", "serve", "--demo", "--port", str(self.port)]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout(20)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo server exited: {self.output()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"demo server did not become ready: {self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def get(self, path: str) -> Any:
        r = httpx.get(
            self.url + path,
            headers={"Authorization": f"Bearer {DEMO_KEY}"},
            timeout=timeout(10),
        )
        assert r.status_code == 200, r.text
        return r.json()

    def until(self, what: str, check: Any, seconds: float) -> Any:
        """Poll ``check()`` until it answers something truthy; fail after ``seconds``."""
        deadline = time.monotonic() + timeout(seconds)
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"the demo never showed {what}: {self.output()[-3000:]}")


@contextlib.contextmanager
def demo_server(directory: Path) -> Iterator[DemoServer]:
    server = DemoServer(directory).start()
    try:
        yield server
    finally:
        server.stop()

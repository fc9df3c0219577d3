"""Shared test helpers: a real server process, tokens, and the one timeout scale."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from croupier.auth import mint_token

# Every timeout in the suite is multiplied by this, so a slow machine needs one knob.
SCALE = float(os.environ.get("CROUPIER_TEST_TIMEOUT_SCALE", "1"))
SECRET = "test-secret-0123456789abcdef0123456789abcdef"
API_KEY = "test-key-full"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def timeout(seconds: float) -> float:
    return seconds * SCALE


def node_or_skip(packages: Path, package: str, suite: str) -> str:
    """The path of ``node``, once the npm ``package`` is installed under ``packages``
    (``make js``). Without either the test is skipped; in CI, where ``suite`` must run, it
    fails."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "Node.js is not installed"
    elif not (packages / "node_modules" / package).is_dir():
        missing = f"run `make js` (npm ci in {packages.name}) to install {package}"
    if missing is not None:
        if IN_CI:
            pytest.fail(f"{suite} must run in CI: {missing}")
        pytest.skip(missing)
    assert node is not None
    return node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def token(sub: str = "p1", *, brand: str | None = "1001", **kw: object) -> str:
    return mint_token(SECRET, sub, brand=brand, **kw)  # type: ignore[arg-type]


class ServerProcess:
    """A ``croupier serve`` child process on a free loopback port.

    Args:
        db: the SQLite file (kept across :meth:`restart`).
        env: extra environment variables.
        config: a TOML config file path, passed as ``--config``.
    """

    def __init__(
        self,
        db: Path,
        *,
        env: Mapping[str, str] | None = None,
        config: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.db = db
        self.extra_env = dict(env or {})
        self.config = config
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = log_file or db.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "CROUPIER_DATABASE_URL": f"sqlite:///{self.db}",
            "CROUPIER_JWT_SECRET": SECRET,
            "CROUPIER_API_KEYS": API_KEY,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        args = [sys.executable, "-m", "croupier", "serve", "--port", str(self.port)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        log = open(self.log_file, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout(20)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_file.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log_file.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush — what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout(10))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def restart(self) -> ServerProcess:
        self.kill()
        return self.start()

    def output(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


@contextlib.contextmanager
def running_server(tmp: Path, **kw: object) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp / "croupier.db", **kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()

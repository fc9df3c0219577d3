"""The server under test: ``croupier serve`` in its own process, on a throwaway database."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from ..auth import mint_token

__all__ = ["API_KEY", "BenchServer", "ReferenceProcess", "ServerProcess", "pinned", "stop"]

API_KEY = "bench-key"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run the block with this process's CPU affinity set to ``cpus`` (``None``: unchanged).

    A child started inside the block inherits the affinity before it starts any thread.
    """
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class ServerProcess:
    """A server under test in its own process: where it listens, and its process id."""

    name = "server"  # as the figures name it

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            stop(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


class ReferenceProcess(ServerProcess):
    """A reference server that prints ``listening <port>`` on stdout once it listens.

    Subclasses start it in ``__enter__`` with :meth:`start`.
    """

    def start(
        self,
        args: list[str],
        cpus: set[int] | None,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start ``args`` on ``cpus`` and wait (at most 30 s) for the port it listens on.

        Raises:
            RuntimeError: it exited or said something else first.
        """
        with pinned(cpus):
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"listening "):
            stop(self.proc)
            raise RuntimeError(f"the {self.name} reference did not start: {line!r}")
        self.port = int(line.split()[1])


class BenchServer(ServerProcess):
    """Use as ``with BenchServer(cpus={0}) as server:``; stopped with SIGTERM on exit.

    ``croupier serve`` on a throwaway SQLite file, with the bench's secret and API key.

    Args:
        cpus: the cores the server may run on (``None``: any).
        config: TOML text for ``--config`` (e.g. raised limits), if any.
        env: extra environment (e.g. ``CROUPIER_DATABASE_URL`` for PostgreSQL).
    """

    name = "croupier"

    def __init__(
        self,
        *,
        cpus: set[int] | None = None,
        config: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.cpus = cpus
        self.config = config
        self.env = env or {}
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="croupier-bench-")

    def token(self, sub: str = "bench") -> str:
        return mint_token(SECRET, sub, brand="1001", ttl=3600)

    def __enter__(self) -> Self:
        root = Path(self._dir.name)
        env = {
            **os.environ,
            "CROUPIER_DATABASE_URL": f"sqlite:///{root / 'bench.db'}",
            "CROUPIER_JWT_SECRET": SECRET,
            "CROUPIER_API_KEYS": API_KEY,
            **self.env,
        }
        args = [sys.executable, "-m", "croupier", "serve", "--port", str(self.port)]
        args += ["--log-level", "warning"]
        if self.config is not None:
            (root / "bench.toml").write_text(self.config)
            args += ["--config", str(root / "bench.toml")]
        log = open(root / "server.log", "wb")
        with pinned(self.cpus):
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.url + "/readyz", timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the server did not become ready:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = Path(self._dir.name) / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        self._dir.cleanup()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop ``proc`` with SIGTERM, and SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Helpers for the multi-node end-to-end tests: a cluster of gateway processes, a private
Redis server, and a TCP proxy that can cut PostgreSQL off without touching the server.

Nothing here touches a shared service: Redis runs as a child process on a free port, and
PostgreSQL is only ever cut off through the proxy (each test has its own database).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support import IN_CI, ServerProcess, free_port, timeout

__all__ = ["RedisServer", "TcpProxy", "cluster", "through_proxy"]


class RedisServer:
    """A private ``redis-server`` on a free loopback port, with no persistence.

    :meth:`kill` and :meth:`start` again keep the port, which is what a Redis restart looks
    like to the gateways.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = workdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if IN_CI:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout(10)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_file.read_text()[-2000:]}")
            if self._pong():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer: {self.log_file.read_text()[-2000:]}")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: every connection drops at once and nothing is saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout(10))

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir).start()
    try:
        yield server
    finally:
        server.kill()


class TcpProxy:
    """Forwards a free loopback port to ``target``, on an event loop in a thread of its own.

    :meth:`cut` closes every proxied connection and stops listening, so new connections are
    refused, as when the server behind it is down; :meth:`restore` listens again on the
    same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self.accepted = 0

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout(5))
        self._loop.close()

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(timeout(10))

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._transports.add(writer.transport)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports.add(up_writer.transport)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._transports.discard(w.transport)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            # Either side gone: the other goes too, as with a real server.
            writer.transport.abort()


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (user and database kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _in_parallel(calls: Sequence[object]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(calls) or 1) as pool:
        for future in [pool.submit(call) for call in calls]:  # type: ignore[arg-type]
            future.result()


@contextlib.contextmanager
def cluster(workdir: Path, count: int, env: Mapping[str, str]) -> Iterator[list[ServerProcess]]:
    """``count`` gateway processes with the same ``env`` (database and broker URLs), started
    together; stopped (or already killed) afterwards, and their logs' tails printed so a
    failing test shows what the nodes said."""
    nodes = [
        ServerProcess(workdir / f"node{i}.db", env=env, log_file=workdir / f"node{i}.log")
        for i in range(count)
    ]
    try:
        _in_parallel([node.start for node in nodes])
        yield nodes
    finally:
        _in_parallel([node.stop for node in nodes])
        for i, node in enumerate(nodes):
            print(f"---- node{i} (port {node.port}) ----\n{node.output()[-4000:]}")

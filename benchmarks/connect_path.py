"""The cost of Croupier's own connection path, without sockets: a deterministic yardstick.

``croupier bench connect`` measures the whole server per connection over real sockets, and
one run moves by tens of percent from the next on a small VM. This measures only the Python
path of a lean ``/ws`` connection, in one process, on a stand-in transport: the front door
reads the upgrade request, checks the token, opens the connection (subscribing to the URL's
channel), and the connection is then lost and cleaned up.

    python benchmarks/connect_path.py [bare|token|url|sse] [connections]
        CPU µs per connection (open, then close), garbage collection off
    python benchmarks/connect_path.py --instructions [bare|token|url|sse]
        instructions per connection under valgrind's callgrind: runs of the same code agree
        within a few percent, whatever else the host does (four runs: 500 and 1,500
        connections, each also without connecting, so start-up and token minting cancel
        out); takes a few minutes

``bare``: ``/ws``; ``token``: ``/ws?token=…`` (each connection its own HS256 token);
``url``: ``/ws?token=…&channel=table:…`` (subscribed in the connect URL); ``sse``:
``/sse?channel=table:…&token=…`` (an event stream).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import time
from inspect import signature
from typing import Any

import orjson
import uvloop
from aiohttp import web

from croupier.app import build_app
from croupier.config import load_settings
from croupier.gateway import Gateway
from croupier.transports.sse import EVENT_STREAMS
from croupier.transports.websocket import WEBSOCKETS
from croupier.transports.wsproto import Sniffer

SECRET = "connect-path-secret-0123456789abcdef0123456789"
CHANNEL = "table:connect-path"


class StandIn:
    """The transport a connection writes to: counts bytes, closes on the next turn."""

    def __init__(self) -> None:
        self.protocol: Any = None
        self.closing = False
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closing

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.close()

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(sub: str) -> str:
    """An HS256 player token for ``sub``, valid for an hour."""
    head = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = _b64(orjson.dumps({"sub": sub, "brand": "1001", "exp": int(time.time()) + 3600}))
    signing = f"{head}.{body}"
    return f"{signing}.{_b64(hmac.digest(SECRET.encode(), signing.encode(), hashlib.sha256))}"


def requests(kind: str, count: int) -> list[bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    out = []
    for i in range(count):
        if kind == "sse":
            out.append(
                f"GET /sse?channel={CHANNEL}&token={token(f'p{i}')} HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            continue
        path = "/ws"
        if kind != "bare":
            path += f"?token={token(f'p{i}')}"
        if kind == "url":
            path += f"&channel={CHANNEL}"
        out.append(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
    return out


async def run(kind: str, count: int, connect: bool) -> float:
    """CPU seconds for ``count`` connections opened (100 a loop turn) and then lost."""
    with tempfile.TemporaryDirectory() as directory:
        env = {"CROUPIER_DATABASE_URL": f"sqlite:///{directory}/path.db"}
        gateway = Gateway(load_settings(env={**env, "CROUPIER_JWT_SECRET": SECRET}))
        app = build_app(gateway)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            http = runner.server
            assert http is not None
            websockets, streams = app[WEBSOCKETS], app[EVENT_STREAMS]
            heads = requests(kind, count)
            if not connect:
                return 0.0
            # The channel opens (a log read) before the measured connections arrive, and its
            # first subscriber stays, as on a node whose channel is in use: each measured
            # connection pays for itself, not for reopening the channel.
            first = await _open(http, gateway, websockets, streams, requests(kind, 1))
            gc.disable()
            started = time.process_time()
            await _connections(http, gateway, websockets, streams, heads, kind, len(first))
            return time.process_time() - started
        finally:
            gc.enable()
            await runner.cleanup()


async def _connections(
    http: Any,
    gateway: Gateway,
    websockets: Any,
    streams: Any,
    heads: list[bytes],
    kind: str,
    already: int,
) -> None:
    """Open a connection for each of ``heads`` (``already`` are open), check them, close them
    and wait until they are cleaned up."""
    transports = await _open(http, gateway, websockets, streams, heads)
    opened = len(gateway.connections) - already
    if opened != len(heads):
        raise RuntimeError(f"{opened} of {len(heads)} connections opened")
    subscribed = gateway.hub.subscribers(CHANNEL) - (already if kind in ("url", "sse") else 0)
    if subscribed != (len(heads) if kind in ("url", "sse") else 0):
        raise RuntimeError(f"{subscribed} of {len(heads)} connections subscribed to {CHANNEL}")
    for transport in transports:
        transport.protocol.connection_lost(None)
    for _ in range(500):  # the clean-ups (tasks) finish within a few turns
        if len(gateway.connections) == already:
            return
        await asyncio.sleep(0.001 if _ > 10 else 0)
    raise RuntimeError(f"{len(gateway.connections) - already} connections were not cleaned up")


async def _open(
    http: Any, gateway: Gateway, websockets: Any, streams: Any, heads: list[bytes]
) -> list[StandIn]:
    """Connections for ``heads``, 100 a loop turn, as the server's front door makes them."""
    transports = []
    # As the server makes it: with its loop, where the front door takes one (an earlier
    # Croupier, measured for a before/after, may not).
    extra = [asyncio.get_running_loop()] if "loop" in signature(Sniffer).parameters else []
    for i, head in enumerate(heads):
        transport = StandIn()
        sniffer = Sniffer(http, gateway, websockets, streams, *extra)
        transport.protocol = sniffer
        sniffer.connection_made(transport)  # type: ignore[arg-type]
        sniffer.data_received(head)
        transports.append(transport)
        if i % 100 == 99:
            await asyncio.sleep(0)
    for _ in range(100):  # the first subscriber of a channel waits for it to open
        await asyncio.sleep(0.001 if _ else 0)
        if not any(c.task for c in gateway.connections):  # type: ignore[attr-defined]
            break
    return transports


def _instructions(kind: str, count: int, connect: bool) -> int:
    args = [sys.executable, __file__, kind, str(count)] + ([] if connect else ["--no-connect"])
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *args],
            capture_output=True,
            text=True,
            check=True,
        )
    for line in done.stderr.splitlines():
        if "Collected" in line or "refs:" in line:
            return int(line.rsplit(maxsplit=1)[-1].replace(",", ""))
    raise RuntimeError(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--instructions":
        kind = argv[1] if len(argv) > 1 else "url"
        small, large = 500, 1500
        connected = _instructions(kind, large, True) - _instructions(kind, small, True)
        minted = _instructions(kind, large, False) - _instructions(kind, small, False)
        per = (connected - minted) / (large - small)
        print(f"{kind}: {per:,.0f} instructions per connection (open and close)")
        return
    kind = argv[0] if argv else "url"
    count = int(argv[1]) if len(argv) > 1 else 5000
    seconds = uvloop.run(run(kind, count, connect="--no-connect" not in argv))
    if "--no-connect" not in argv:
        print(f"{kind}: {seconds / count * 1e6:.1f} µs CPU per connection (open and close)")


if __name__ == "__main__":
    main(sys.argv[1:])

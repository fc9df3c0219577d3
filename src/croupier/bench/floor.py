"""The Python floor under a new connection: the least a uvloop server can do per WebSocket.

``croupier bench connect`` measures it beside Node's ``ws`` and Croupier, in the same run and
with the same clients, so the figures say how much of Croupier's cost per connection is its
own and how much any Python server on this event loop pays.

Run as ``python -m croupier.bench.floor [port]`` (it prints ``listening <port>``). Every
connection gets one :class:`FloorProtocol`: it reads the request head, answers ``101`` and
then only reads (and drops) what the client sends until it goes. A request for
``/ws?token=…&channel=…`` also has its HS256 token's signature checked (one HMAC, nothing
else: no claims, no expiry) and gets a ``subscribed`` frame for the channel with the ``101``,
in one write: the least work "connect, authenticate and subscribe" can mean. No head
validation, no limits, no state kept: it is a yardstick, not a server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import signal
import sys
from typing import Self, cast
from urllib.parse import parse_qs

import orjson

from ..core.wire import ws_frame
from .server import ReferenceProcess

__all__ = ["FloorProtocol", "FloorReference"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = b"\r\nsec-websocket-key:"


class FloorProtocol(asyncio.Protocol):
    """One connection: a ``101`` for its upgrade (and a ``subscribed`` for a channel)."""

    __slots__ = ("buffer", "secret", "transport")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.buffer: bytes | None = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.buffer is None:
            return  # upgraded: frames are read and dropped
        buffer = self.buffer + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        self.buffer = None
        head = buffer[:end]
        transport = self.transport
        assert transport is not None
        at = head.lower().find(_KEY)
        if at < 0:
            transport.close()
            return
        line_end = head.find(b"\r\n", at + 2)
        key = head[at + len(_KEY) : line_end if line_end > 0 else len(head)].strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # RFC 6455's accept
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        target = head[4 : head.find(b" ", 4)]
        if b"?" in target:
            query = parse_qs(target.partition(b"?")[2].decode("latin-1"))
            if not self._signed(query.get("token", [""])[0]):
                transport.close()
                return
            for channel in query.get("channel", []):
                answer += ws_frame(
                    orjson.dumps(
                        {
                            "type": "subscribed",
                            "channel": channel,
                            "recovered": False,
                            "position": {"offset": 0, "epoch": "floor"},
                        }
                    )
                )
        transport.write(answer)

    def _signed(self, token: str) -> bool:
        """Whether ``token``'s HS256 signature is the secret's: one HMAC, no claims read."""
        signing, _, signature = token.rpartition(".")
        digest = hmac.digest(self.secret, signing.encode("ascii"), "sha256")
        spelled = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return hmac.compare_digest(spelled, signature)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve(port: int, secret: bytes) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: FloorProtocol(secret), "127.0.0.1", port, backlog=4096
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening {bound}\n")
    sys.stdout.flush()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    server.close()


def main() -> None:
    import uvloop

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    secret = os.environ.get("CROUPIER_JWT_SECRET", "").encode()
    uvloop.run(_serve(port, secret))


class FloorReference(ReferenceProcess):
    """Use as ``with FloorReference(secret, cpus={0}) as floor:``; stopped with SIGTERM.

    Args:
        secret: the HS256 secret the clients' tokens are signed with.
        cpus: the cores the server may run on (``None``: any).
    """

    name = "python-floor"

    def __init__(self, secret: str, *, cpus: set[int] | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.cpus = cpus

    def __enter__(self) -> Self:
        env = {**os.environ, "CROUPIER_JWT_SECRET": self.secret}
        self.start([sys.executable, "-m", "croupier.bench.floor", "0"], self.cpus, env=env)
        return self


if __name__ == "__main__":
    main()

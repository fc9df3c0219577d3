"""How the server ends a WebSocket, over raw sockets (issue 14, defects 3 and 4).

Every way into a WebSocket (a fresh connection, or an upgrade after a kept-alive request)
ends in the same frame parser, and every server-initiated close sends its reason and close
frame after what was already queued, then reads the client's input until the client closes:
the client always learns why, instead of getting a connection reset.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.support import ServerProcess, timeout, token

from .wsclient import server_frames

pytestmark = pytest.mark.e2e

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_MASK = b"\x01\x02\x03\x04"


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout(10))
    return sock


def _read_head(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes]:
    """One HTTP response head (and whatever followed it) from ``sock``."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _upgrade(sock: socket.socket, server: ServerProcess, path: str) -> bytes:
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head, rest = _read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return rest


def _masked(payload: bytes) -> bytes:
    assert len(payload) < 126
    body = bytes(b ^ _MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + _MASK + body


def _read_to_end(sock: socket.socket, seen: bytes) -> bytes:
    """Everything until the server closes; a reset instead of a close fails the test."""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            raise AssertionError(
                f"the server reset the connection after {len(seen)} bytes"
            ) from None
        if not chunk:
            return seen
        seen += chunk


def _close_code(frames: list[tuple[int, bytes]]) -> int:
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes, "no close frame"
    return int.from_bytes(closes[0][:2], "big")


def test_an_unmasked_frame_after_a_kept_alive_request_closes_with_1002(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        head, rest = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(rest) < length:
            rest += sock.recv(65536)
        # The same TCP connection, now upgraded: aiohttp parsed this request.
        seen = _upgrade(sock, server, f"/ws?token={token('kept')}")
        unmasked = b'{"type":"ping"}'
        sock.sendall(bytes((0x81, len(unmasked))) + unmasked)
        frames = server_frames(_read_to_end(sock, seen))
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert {"type": "pong"} not in texts
    assert _close_code(frames) == 1002


def test_a_ping_flood_ends_with_the_pongs_the_abuse_error_and_close_1008(
    server: ServerProcess,
) -> None:
    with _connect(server) as sock:
        seen = _upgrade(sock, server, f"/ws?token={token('flood')}")
        sock.sendall(_masked(b'{"type":"ping"}') * 5000)
        frames = server_frames(_read_to_end(sock, seen))
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert texts[0]["type"] == "connected"
    pongs = [t for t in texts if t["type"] == "pong"]
    assert pongs, "the pings answered before the limit are delivered"
    errors = [t["code"] for t in texts if t["type"] == "error"]
    assert "rate_limited" in errors
    assert errors[-1] == "abuse"
    assert texts[-1] == {"type": "disconnect", "code": "abuse", "reconnect": False}
    assert _close_code(frames) == 1008


def test_a_kept_alive_upgrade_speaks_the_same_protocol(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        head, _ = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        seen = _upgrade(sock, server, f"/ws?token={token('kept')}")
        sock.sendall(_masked(b'{"type":"ping","id":7}'))
        sock.sendall(
            bytes((0x88, 0x82)) + _MASK + bytes(b ^ _MASK[i] for i, b in enumerate(b"\x03\xe8"))
        )
        frames = server_frames(_read_to_end(sock, seen))
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert [t["type"] for t in texts] == ["connected", "pong"]
    assert texts[1]["id"] == 7
    assert _close_code(frames) == 1000

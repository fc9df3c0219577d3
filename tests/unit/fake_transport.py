"""An asyncio transport that records what is written: the connection core's test double."""

from __future__ import annotations

from typing import Any

import orjson

from tests.e2e.wsclient import server_frames


class FakeTransport:
    """What a connection writes, and how it ends; ``buffered`` plays a stalled client."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes: list[bytes] = []  # each write call's bytes
        self.buffered = 0
        self.closing = False
        self.eof = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.eof, "written after the write side was shut"
        self.data += data
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = self.closing = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def texts(transport: FakeTransport) -> list[dict[str, Any]]:
    """The text frames written, decoded."""
    return [orjson.loads(p) for op, p in server_frames(bytes(transport.data)) if op == 1]


def close_code(transport: FakeTransport) -> int:
    (payload,) = [p for op, p in server_frames(bytes(transport.data)) if op == 8]
    return int.from_bytes(payload[:2], "big")

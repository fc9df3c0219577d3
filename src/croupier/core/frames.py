"""WebSocket framing as a server reads it (RFC 6455 §5). No I/O.

A transport hands every chunk it receives to :meth:`FrameParser.feed` and acts on what comes
back: complete data messages (fragments already joined), and control frames. Server frames
are built by :func:`~croupier.core.wire.ws_frame` and :func:`close_frame`.

Rules:

* Every client frame must be masked, carry no RSV bit (no extension is ever negotiated) and
  use a known opcode; a control frame is final and at most 125 bytes; a continuation needs a
  message in progress, and a new data frame needs none. Otherwise: close with 1002.
* A message (all its fragments) over ``max_size`` bytes closes with 1009, as soon as a frame
  header announces it, before its payload is read.
* A text message must be UTF-8 (1007); a close frame's code must be one a peer may send
  (1002) and its reason UTF-8 (1007).
* After an error the parser returns nothing more.
"""

from __future__ import annotations

import struct

__all__ = [
    "BINARY",
    "CLOSE",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED_DATA",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "FrameParser",
    "close_code",
    "close_frame",
    "mask",
    "pong_frame",
]

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_UNSUPPORTED_DATA = 1007
CLOSE_MESSAGE_TOO_BIG = 1009

#: What :meth:`FrameParser.feed` yields: ``(opcode, payload)``. ``TEXT`` carries a ``str``,
#: every other opcode ``bytes``.
Frame = tuple[int, bytes | str]

_DATA = (CONTINUATION, TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key``: masks and unmasks (RFC 6455 §5.3)."""
    n = len(data)
    if not n:
        return b""
    keys = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


def _valid_close_code(code: int) -> bool:
    # RFC 6455 §7.4: 1004-1006 and 1015 are never sent; 1016-2999 are unassigned.
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def close_code(payload: bytes) -> int:
    """The status code of a (validated) close frame's payload; 1005 when it has none."""
    return _U16.unpack_from(payload)[0] if payload else CLOSE_NO_STATUS


def close_frame(code: int | None, reason: str = "") -> bytes:
    """An unmasked close frame; ``None`` sends no status code."""
    if code is None:
        return b"\x88\x00"
    body = _U16.pack(code) + reason.encode()[:123]
    return bytes((0x88, len(body))) + body


def pong_frame(payload: bytes) -> bytes:
    """An unmasked pong echoing a ping's payload (at most 125 bytes, as pings are)."""
    return bytes((0x8A, len(payload))) + payload


class FrameError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class FrameParser:
    """Reads client frames from a byte stream split anyhow.

    Args:
        max_size: the most bytes a message may hold, all fragments together.

    After :meth:`feed` returns, :attr:`error` is ``(code, reason)`` if the stream broke a
    rule: the transport closes the connection with that code.
    """

    # Idle, a parser holds no buffer: every field is None or a shared small int.
    __slots__ = ("_chunks", "_have", "_need", "_opcode", "_parts", "_size", "error", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.error: tuple[int, str] | None = None
        self._chunks: list[bytes] | None = None  # received bytes not yet parsed
        self._have = 0  # their total length
        self._need = 2  # the length at which parsing can make progress
        self._opcode = 0  # the opcode of the message in progress (0: none)
        self._parts: list[bytes] | None = None  # its fragments so far
        self._size = 0  # their total length

    def feed(self, data: bytes) -> list[Frame]:
        """Parse ``data`` after what came before; return the frames it completes, in order."""
        if self.error is not None:
            return []
        if self._chunks is not None:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = None
            self._have = 0
        elif len(data) < self._need:
            if data:
                self._chunks = [data]
                self._have = len(data)
            return []
        frames: list[Frame] = []
        try:
            end = self._parse(data, frames)
        except FrameError as exc:
            self.error = (exc.code, exc.reason)
            self._chunks = self._parts = None
            return frames
        if end < len(data):
            self._chunks = [data[end:]]
            self._have = len(data) - end
        return frames

    def _parse(self, data: bytes, frames: list[Frame]) -> int:
        """Parse whole frames from ``data``; return where the first incomplete one starts."""
        pos = 0
        n = len(data)
        while True:
            if n - pos < 2:
                self._need = 2
                return pos
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if b0 & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not b1 & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            length = b1 & 0x7F
            head = 6
            if length == 126:
                head = 8
                if n - pos < head:
                    self._need = head
                    return pos
                length = _U16.unpack_from(data, pos + 2)[0]
            elif length == 127:
                head = 14
                if n - pos < head:
                    self._need = head
                    return pos
                length = _U64.unpack_from(data, pos + 2)[0]
                if length >> 63:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "frame length out of range")
            if opcode in _CONTROL:
                if not fin:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                if length > 125:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
            elif opcode in _DATA:
                if opcode == CONTINUATION:
                    if not self._opcode:
                        raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation of nothing")
                elif self._opcode:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                if self._size + length > self.max_size:
                    raise FrameError(CLOSE_MESSAGE_TOO_BIG, f"message over {self.max_size} bytes")
            else:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            end = pos + head + length
            if end > n:
                self._need = end - pos
                return pos
            payload = mask(data[pos + head - 4 : pos + head], data[pos + head : end])
            pos = end
            if opcode in _CONTROL:
                if opcode == CLOSE:
                    _check_close(payload)
                frames.append((opcode, payload))
                continue
            if opcode != CONTINUATION:
                self._opcode = opcode
            if not fin:
                if self._parts is None:
                    self._parts = []
                self._parts.append(payload)
                self._size += length
                continue
            if self._parts is not None:
                self._parts.append(payload)
                payload = b"".join(self._parts)
                self._parts = None
                self._size = 0
            opcode = self._opcode
            self._opcode = 0
            if opcode == TEXT:
                try:
                    frames.append((TEXT, payload.decode()))
                except UnicodeDecodeError:
                    raise FrameError(CLOSE_UNSUPPORTED_DATA, "text is not UTF-8") from None
            else:
                frames.append((opcode, payload))


def _check_close(payload: bytes) -> None:
    if not payload:
        return
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame of 1 byte")
    if not _valid_close_code(_U16.unpack_from(payload)[0]):
        raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid close code")
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CLOSE_UNSUPPORTED_DATA, "close reason is not UTF-8") from None

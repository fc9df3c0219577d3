"""Server-Sent Events framing and resume cursors. No I/O.

Framing follows the WHATWG ``text/event-stream`` format: a message is ``field: value`` lines
ended by a blank line; a line starting with ``:`` is a comment. Every payload Croupier sends
is JSON, and one ``data:`` line carries it: published data is stored as it was sent, and a
line break in valid JSON can only be whitespace between tokens (inside a string it must be
escaped), so :func:`data_frame` turns each one into a space. The value is the same, and every
client, including those that read one ``data:`` line per event, parses it.

A stream of one stored channel uses the channel's plain offset as the SSE ``id``. A stream of
several channels needs one id that says where *every* channel stands; that is the cursor: an
opaque, compact, URL-safe string. Inside (not a contract, clients must not parse it): a tag
of the channel list, then each channel's offset, with its epoch written only where it differs
from the previous channel's, base64url-encoded without padding.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Sequence

from ..events import Position

__all__ = [
    "Cursor",
    "channel_tag",
    "comment",
    "data_frame",
    "decode_cursor",
    "encode_cursor",
    "id_line",
    "parse_offset",
    "retry_line",
]

_EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_ID = 4096  # longer Last-Event-ID values are refused unread
_ONE_LINE = bytes.maketrans(b"\r\n", b"  ")


def data_frame(payload: bytes, offset: int | None = None) -> bytes:
    """One message: ``id: <offset>`` (stored events only) and ``data: <payload>``.

    ``payload`` is JSON; its line breaks (whitespace) become spaces, so it stays one line.
    """
    if b"\n" in payload or b"\r" in payload:
        payload = payload.translate(_ONE_LINE)
    if offset is None:
        return b"data: " + payload + b"\n\n"
    return b"id: %d\ndata: %b\n\n" % (offset, payload)


def id_line(value: str | int) -> bytes:
    return b"id: %b\n" % str(value).encode()


def retry_line(milliseconds: int) -> bytes:
    """Tells ``EventSource`` how long to wait before it reconnects."""
    return b"retry: %d\n" % milliseconds


def comment(text: str) -> bytes:
    """A comment message (``: text``), which clients ignore: keep-alives, greetings."""
    return b": " + text.replace("\n", " ").replace("\r", " ").encode() + b"\n\n"


def parse_offset(value: str) -> int | None:
    """A plain-offset ``Last-Event-ID``, or ``None`` if ``value`` is not one."""
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


class Cursor:
    """Where each channel of a multi-channel stream stands, as one SSE ``id``.

    ``positions[i]`` belongs to ``channels[i]``; ``None`` for a channel without stored events
    (ephemeral) or not known. :meth:`advance` is called for every stored event sent, so the
    id of a message always describes the stream up to and including that message.
    """

    __slots__ = ("_index", "_parts", "_tag", "positions")

    def __init__(self, channels: Sequence[str], positions: Sequence[Position | None]) -> None:
        self._tag = channel_tag(channels)
        self._index = {name: i for i, name in enumerate(channels)}
        self.positions = list(positions)
        self._parts = _parts(self.positions)

    def advance(self, channel: str, offset: int, epoch: str | None) -> bytes:
        """Record ``offset`` on ``channel`` and return the new ``id:`` line."""
        i = self._index[channel]
        old = self.positions[i]
        new = Position(offset, epoch if epoch is not None else (old.epoch if old else ""))
        self.positions[i] = new
        if old is not None and old.epoch == new.epoch:
            # Same epoch: only this channel's offset changes, in the form it had.
            part = self._parts[i]
            self._parts[i] = f"{offset}.{new.epoch}" if "." in part else str(offset)
        else:
            self._parts = _parts(self.positions)
        return b"id: " + self._encode() + b"\n"

    def value(self) -> str:
        return self._encode().decode()

    def _encode(self) -> bytes:
        text = self._tag + "|" + ",".join(self._parts)
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=")


def channel_tag(channels: Sequence[str]) -> str:
    """A short digest of a stream's channel list: a cursor only fits the same list."""
    return format(zlib.crc32("\n".join(channels).encode()), "x")


def _part(position: Position | None, previous: Position | None) -> str:
    if position is None:
        return ""
    if previous is not None and previous.epoch == position.epoch:
        return str(position.offset)
    return f"{position.offset}.{position.epoch}"


def _parts(positions: Sequence[Position | None]) -> list[str]:
    parts = []
    previous: Position | None = None
    for position in positions:
        parts.append(_part(position, previous))
        if position is not None:
            previous = position
    return parts


def encode_cursor(channels: Sequence[str], positions: Sequence[Position | None]) -> str:
    """The cursor of ``channels`` standing at ``positions``."""
    return Cursor(channels, positions).value()


def decode_cursor(value: str, channels: Sequence[str]) -> list[Position | None] | None:
    """The positions a cursor holds, or ``None`` if it is not a cursor of ``channels``."""
    value = value.strip()
    if not value or len(value) > _MAX_ID or not value.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    tag, sep, body = text.partition("|")
    if not sep or tag != channel_tag(channels):
        return None
    parts = body.split(",")
    if len(parts) != len(channels):
        return None
    positions: list[Position | None] = []
    epoch: str | None = None
    for part in parts:
        if not part:
            positions.append(None)
            continue
        offset_text, dot, own_epoch = part.partition(".")
        if dot:
            if not _EPOCH.fullmatch(own_epoch):
                return None
            epoch = own_epoch
        offset = parse_offset(offset_text)
        if offset is None or epoch is None:
            return None
        positions.append(Position(offset, epoch))
    return positions

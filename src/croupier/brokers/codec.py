"""How an event travels between nodes: a JSON header line, then the payload untouched.

The payload (already JSON) is appended after the header rather than nested in it, so a node
that receives an event hands the same payload bytes on without decoding them.
"""

from __future__ import annotations

import orjson

from ..events import Event

__all__ = ["decode_event", "encode_event"]


def encode_event(event: Event) -> bytes:
    """``[channel, type, ts, offset, epoch]`` (then ``exclude`` and ``only`` when set) +
    newline + payload."""
    fields = [event.channel, event.type, event.ts, event.offset, event.epoch]
    if event.exclude is not None or event.only is not None:
        fields.append(event.exclude)
    if event.only is not None:
        fields.append(event.only)
    return orjson.dumps(fields) + b"\n" + event.payload


def decode_event(raw: bytes) -> Event:
    """Raises ValueError (or orjson.JSONDecodeError) on a message not made by encode_event."""
    header, sep, payload = raw.partition(b"\n")
    if not sep:
        raise ValueError("not a Croupier broker message")
    channel, type_, ts, offset, epoch, *rest = orjson.loads(header)
    exclude = rest[0] if rest else None
    only = rest[1] if len(rest) > 1 else None
    return Event(channel, type_, payload, ts, offset, epoch, exclude, only)

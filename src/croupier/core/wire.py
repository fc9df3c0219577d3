"""The native protocol's messages: decoding what clients send, encoding what they receive.

Decoding validates the shape with msgspec and keeps ``data`` as the raw JSON the client sent,
so a published payload is stored and fanned out without being encoded again. Encoding builds
the whole WebSocket frame once per event: server frames are unmasked, so the same bytes go to
every subscriber.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Any

import msgspec
import orjson

from ..errors import BadRequest, shown
from ..events import Event

__all__ = [
    "Auth",
    "ClientMessage",
    "Ping",
    "Publish",
    "Since",
    "Subscribe",
    "Unsubscribe",
    "control",
    "decode_client",
    "encode_event",
    "subscribes_in_query",
    "ws_frame",
]

MessageId = int | str | None


class Since(msgspec.Struct, frozen=True):
    """Where the client stands; without ``epoch``, in the channel's current epoch."""

    offset: int
    epoch: str | None = None


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", frozen=True):
    channel: str
    since: Since | None = None
    id: MessageId = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", frozen=True):
    channel: str
    id: MessageId = None


class Publish(msgspec.Struct, tag="publish", tag_field="type", frozen=True):
    channel: str
    event: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    id: MessageId = None


class Auth(msgspec.Struct, tag="auth", tag_field="type", frozen=True):
    token: str
    id: MessageId = None


class Ping(msgspec.Struct, tag="ping", tag_field="type", frozen=True):
    id: MessageId = None


ClientMessage = Subscribe | Unsubscribe | Publish | Auth | Ping
KNOWN_TYPES = ("subscribe", "unsubscribe", "publish", "auth", "ping")
_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client(raw: bytes | str) -> ClientMessage:
    """Decode one client message.

    Raises:
        BadRequest: with code ``bad_json`` (not JSON), ``unknown_type`` (a ``type`` this
            protocol does not have) or ``bad_message`` (a known type with wrong fields).
    """
    try:
        message: ClientMessage = _decoder.decode(raw)
        return message
    except msgspec.ValidationError as exc:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        kind = doc.get("type") if isinstance(doc, dict) else None
        if not isinstance(doc, dict):
            raise BadRequest("a message must be a JSON object", code="bad_message") from None
        if kind not in KNOWN_TYPES:
            said = "has no type" if kind is None else f"has the unknown type {shown(kind, 64)}"
            raise BadRequest(
                f"the message {said}; expected one of " + ", ".join(KNOWN_TYPES),
                code="unknown_type",
            ) from None
        raise BadRequest(f"invalid {kind} message: {exc}", code="bad_message") from None
    except (msgspec.DecodeError, UnicodeEncodeError):
        # A str holding lone surrogates cannot even be encoded as UTF-8.
        raise BadRequest("the message is not valid JSON", code="bad_json") from None


_SINCE = re.compile(r"(\d{1,18})(?:\.([A-Za-z0-9_-]{1,64}))?")


def subscribes_in_query(pairs: Iterable[tuple[str, str]], limit: int) -> list[Subscribe]:
    """The subscriptions a connect URL asks for, in order: each ``channel=<name>``, resuming
    after the ``since=<offset>[.<epoch>]`` that follows it, if one does (no epoch: the
    channel's current one). A channel named twice is subscribed once.

    Raises:
        BadRequest: a ``since`` that is malformed or follows no channel, or more than
            ``limit`` channels.
    """
    wanted: dict[str, Since | None] = {}
    last: str | None = None
    for name, value in pairs:
        if name == "channel":
            last = value
            wanted.setdefault(value, None)
        elif name == "since":
            found = _SINCE.fullmatch(value)
            if last is None or found is None:
                raise BadRequest(
                    f"since={shown(value, 80)}: write since=<offset> or since=<offset>.<epoch> "
                    "right after the channel=<name> it belongs to"
                )
            wanted[last] = Since(int(found[1]), found[2])
            last = None
    if len(wanted) > limit:
        raise BadRequest(f"at most {limit} channels per connection", code="too_many_subscriptions")
    return [Subscribe(channel, since) for channel, since in wanted.items()]


def ws_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame holding ``payload`` (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def encode_event(event: Event) -> bytes:
    """The event as JSON, with its own ``type`` at the top level."""
    if event.offset is None:
        return orjson.dumps(
            {
                "type": event.type,
                "channel": event.channel,
                "ts": event.ts,
                "data": orjson.Fragment(event.payload),
            }
        )
    return orjson.dumps(
        {
            "type": event.type,
            "channel": event.channel,
            "offset": event.offset,
            "epoch": event.epoch,
            "ts": event.ts,
            "data": orjson.Fragment(event.payload),
        }
    )


def control(kind: str, **fields: Any) -> bytes:
    """A control message (``connected``, ``subscribed``, ``error`` …) as JSON."""
    fields = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
    return orjson.dumps(fields)

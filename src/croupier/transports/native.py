"""The native protocol as a codec: JSON text frames on ``GET /ws`` (see the README).

Its messages are also the base of the seed-compatible WebSocket endpoints (``/ws/room``,
``/ws/events``): they speak the native replies and add their own messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..config import Settings
from ..core import commands as c
from ..core.wire import (
    Auth,
    Ping,
    Publish,
    Subscribe,
    Unsubscribe,
    control,
    decode_client,
    subscribes_in_query,
    ws_frame,
)
from .connection import BaseCodec
from .websocket import Endpoint, Upgrade

__all__ = [
    "ENDPOINT",
    "NativeCodec",
    "close_code",
    "native_command",
    "native_message",
    "open_native",
]

PING_FRAME = b"\x89\x00"

# Neutral reasons and their WebSocket close codes (RFC 6455 §7.4.1); any other: 1001.
CLOSE_CODES = {
    "slow_consumer": 1013,  # try again later
    "token_expired": 1008,  # policy violation
    "abuse": 1008,
    "internal_error": 1011,
    "shutdown": 1001,
    "idle_timeout": 1001,
}


def close_code(reason: str) -> int:
    """The WebSocket close code of a neutral reason."""
    return CLOSE_CODES.get(reason, 1001)


def _interval(seconds: float) -> float:
    return int(seconds) if seconds == int(seconds) else seconds


def _subscribed(reply: c.Subscribed) -> bytes:
    doc: dict[str, Any] = {"type": "subscribed", "channel": reply.channel}
    if reply.id is not None:
        doc["id"] = reply.id
    doc["recovered"] = reply.recovered
    position = reply.position
    if position is not None:
        doc["position"] = {"offset": position.offset, "epoch": position.epoch}
    if reply.presence is not None:
        doc["presence"] = {"count": reply.presence}
    return orjson.dumps(doc)


def _connected(reply: c.Connected) -> bytes:
    doc: dict[str, Any] = {
        "type": "connected",
        "client": reply.client,
        "ping_interval": _interval(reply.ping_interval),
    }
    if reply.expires_in is not None:
        doc["expires_in"] = reply.expires_in
    return orjson.dumps(doc)


def _refused(reply: c.Refused) -> bytes:
    return control(
        "error", id=reply.id, channel=reply.channel, code=reply.code, message=reply.message
    )


def _published(reply: c.Published) -> bytes | None:
    if reply.id is None:
        return None
    return control("published", id=reply.id, channel=reply.channel)


def _authenticated(reply: c.Authenticated) -> bytes:
    return control("authenticated", id=reply.id, user=reply.claims.sub, exp=reply.claims.exp)


# Each reply type's native JSON, looked up by type: a connection's greeting and its
# subscriptions' replies are encoded once per client of a reconnect storm.
_MESSAGES: dict[type, Callable[[Any], bytes | None]] = {
    c.Subscribed: _subscribed,
    c.Connected: _connected,
    c.Snapshot: lambda reply: reply.payload,
    c.Refused: _refused,
    c.Pong: lambda reply: control("pong", id=reply.id),
    c.Published: _published,
    c.Unsubscribed: lambda reply: control("unsubscribed", channel=reply.channel, id=reply.id),
    c.Authenticated: _authenticated,
    c.Reset: lambda reply: control("reset", channel=reply.channel),
    c.Disconnect: lambda reply: control("disconnect", code=reply.reason, reconnect=reply.reconnect),
}


def native_message(reply: c.Reply) -> bytes | None:
    """The native JSON of ``reply`` (``None``: the native protocol sends nothing)."""
    encode = _MESSAGES.get(type(reply))
    return None if encode is None else encode(reply)


def native_command(message: Any) -> c.Command:
    """A decoded native message as a neutral command."""
    if isinstance(message, Subscribe):
        since = (
            None if message.since is None else c.Since(message.since.offset, message.since.epoch)
        )
        return c.Subscribe(message.channel, message.id, since)
    if isinstance(message, Publish):
        return c.Publish(message.channel, message.event, bytes(message.data), message.id)
    if isinstance(message, Ping):
        return c.Ping(message.id)
    if isinstance(message, Unsubscribe):
        return c.Unsubscribe(message.channel, message.id)
    assert isinstance(message, Auth)
    return c.Auth(message.token, message.id)


class NativeCodec(BaseCodec):
    """The native protocol (``GET /ws``); ``subscribes`` are the connect URL's channels,
    subscribed before the client's first message (their replies follow ``connected`` in
    the same write)."""

    name = "native"
    wire = "ws"

    def __init__(self, settings: Settings, subscribes: Sequence[Subscribe] = ()) -> None:
        super().__init__(settings)
        self.subscribes = subscribes

    def opening(self) -> Sequence[c.Command]:
        out: list[c.Command] = []
        for message in self.subscribes:
            since = message.since
            resume = None if since is None else c.Since(since.offset, since.epoch)
            out.append(c.Subscribe(message.channel, None, resume))
        return out

    def decode(self, message: bytes | str) -> Sequence[c.Command]:
        return (native_command(decode_client(message)),)

    def encode(self, reply: c.Reply) -> bytes:
        payload = native_message(reply)
        return b"" if payload is None else ws_frame(payload)

    def heartbeat(self) -> bytes:
        return PING_FRAME

    def close_code(self, reason: str) -> int:
        return close_code(reason)


def open_native(upgrade: Upgrade) -> NativeCodec:
    """The codec of a ``GET /ws[?channel=<name>[&since=<offset>.<epoch>]…]`` connection.

    Raises:
        BadRequest: the URL's subscriptions are malformed (the upgrade is refused with 400).
    """
    settings = upgrade.gateway.settings
    if "channel" not in upgrade.query and "since" not in upgrade.query:
        return NativeCodec(settings)
    limit = settings.limits.max_subscriptions
    return NativeCodec(settings, subscribes_in_query(upgrade.query.items(), limit))


ENDPOINT = Endpoint("/ws", open_native)

"""Pusher Channels protocol 7 on the wire: the client's messages in, the server's out. No I/O.

Every message is a JSON object ``{"event", "data", "channel"?}``. The server's ``data`` is a
*string* holding JSON (``pusher:connection_established``, ``pusher_internal:*``, events),
except on ``pusher:error`` and ``pusher:pong``, where it is an object, as pusher-js reads
them. Clients send ``data`` as an object.

Close codes (the ranges pusher-js acts on): 4000-4099 the client must not reconnect,
4100-4199 it reconnects with backoff, 4200-4299 it reconnects at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import orjson

from ..errors import BadRequest

__all__ = [
    "CLOSE_CODES",
    "ClientMessage",
    "SigninData",
    "SubscribeData",
    "connection_established",
    "decode_client",
    "decode_data",
    "error",
    "event",
    "member_added",
    "member_removed",
    "pong",
    "presence_data",
    "signin_success",
    "subscription_count",
    "subscription_error",
    "subscription_succeeded",
]

# Neutral reasons of the connection core, as Pusher close codes.
CLOSE_CODES: Mapping[str, int] = {
    "app_not_found": 4001,  # no app has the URL's key: do not reconnect
    "bad_protocol": 4007,  # a protocol version other than 7
    "terminated": 4009,  # the backend terminated the user's connections
    "abuse": 4009,  # too many protocol errors in a row
    "slow_consumer": 4100,  # over capacity for this client: back off
    "shutdown": 4200,  # reconnect at once (to another node)
    "internal_error": 4200,
    "idle_timeout": 4201,  # no pong / nothing heard for too long
    "token_expired": 4200,
}


class ClientMessage(msgspec.Struct, frozen=True):
    event: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    channel: str | None = None


class SubscribeData(msgspec.Struct, frozen=True):
    channel: str
    auth: str | None = None
    channel_data: str | None = None


class SigninData(msgspec.Struct, frozen=True):
    auth: str
    user_data: str


_client = msgspec.json.Decoder(ClientMessage)


def decode_client(raw: bytes | str) -> ClientMessage:
    """Decode one client message.

    Raises:
        BadRequest: not JSON, or not an object with a string ``event``.
    """
    try:
        return _client.decode(raw)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"not a Pusher message: {exc}", code="bad_message") from None
    except msgspec.DecodeError:
        raise BadRequest("a Pusher message is a JSON object", code="bad_json") from None


def decode_data(message: ClientMessage, kind: type[Any]) -> Any:
    """The ``data`` of ``message`` as ``kind``.

    Raises:
        BadRequest: it does not fit.
    """
    try:
        return msgspec.json.decode(message.data, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"{message.event} data: {exc}", code="bad_message") from None


def _message(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def connection_established(socket_id: str, activity_timeout: int) -> bytes:
    inner = orjson.dumps({"socket_id": socket_id, "activity_timeout": activity_timeout})
    return _message({"event": "pusher:connection_established", "data": inner.decode()})


def subscription_succeeded(channel: str, data: str = "{}") -> bytes:
    return _message(
        {"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": data}
    )


def presence_data(members: Iterable[Mapping[str, Any]]) -> str:
    """The ``subscription_succeeded`` data of a presence channel: each user once."""
    users: dict[str, Any] = {}
    for member in members:
        user = member.get("id")
        if user is not None and str(user) not in users:
            users[str(user)] = member.get("info")
    doc = {"presence": {"ids": list(users), "hash": users, "count": len(users)}}
    return orjson.dumps(doc).decode()


def subscription_count(channel: str, count: int) -> bytes:
    data = orjson.dumps({"subscription_count": count}).decode()
    return _message(
        {"event": "pusher_internal:subscription_count", "channel": channel, "data": data}
    )


def subscription_error(channel: str, message: str, status: int) -> bytes:
    """A refused subscription, as pusher-js reports it on the channel."""
    data = {"type": "AuthError", "error": message, "status": status}
    return _message({"event": "pusher:subscription_error", "channel": channel, "data": data})


def error(code: int | None, message: str) -> bytes:
    return _message({"event": "pusher:error", "data": {"code": code, "message": message}})


def pong() -> bytes:
    return _message({"event": "pusher:pong", "data": {}})


def signin_success(user_data: str) -> bytes:
    return _message({"event": "pusher:signin_success", "data": {"user_data": user_data}})


def member_added(channel: str, user_id: str, user_info: Any) -> bytes:
    data = orjson.dumps({"user_id": user_id, "user_info": user_info}).decode()
    return _message({"event": "pusher_internal:member_added", "channel": channel, "data": data})


def member_removed(channel: str, user_id: str) -> bytes:
    data = orjson.dumps({"user_id": user_id}).decode()
    return _message({"event": "pusher_internal:member_removed", "channel": channel, "data": data})


def event(name: str, channel: str, data: str, user_id: str | None = None) -> bytes:
    doc: dict[str, Any] = {"event": name, "channel": channel, "data": data}
    if user_id is not None:
        doc["user_id"] = user_id
    return _message(doc)

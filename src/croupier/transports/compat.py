"""Event streams in the shapes existing casino and poker front ends already parse.

Both are the hub's channels seen through another envelope, with the same resume, outbox and
slow-consumer rules as ``GET /sse``:

* ``GET /api/tables/{tableId}/events`` — a poker table: the channel ``table:{tableId}``,
  each event's data exactly as published (``{"kind":"hand_action",…}``) under its plain
  offset as ``id:``, a ``: connected`` comment first and ``: heartbeat`` comments after.
* ``GET /gateway/sse/{brand_id}/stream`` — a casino player's stream: the channel
  ``player:{brand_id}:{player}`` of the token's player, each event as
  ``{"brand_id","player_id","event_type","event_data"}``, with ``connected``, ``keepalive``
  and ``error`` system events.
"""

from __future__ import annotations

import time

import orjson

from ..core.channels import check_subscribe, resolve
from ..core.ids import wire_id
from ..core.sse import comment, data_frame, id_line
from ..errors import Forbidden, Unauthorized, shown
from ..events import Event
from ..gateway import Gateway
from .common import check_origin, token_from_request
from .sse import Dialect, Plan, StreamEndpoint, StreamRequest, Want, resume

__all__ = [
    "CASINO",
    "PLAYER_STREAM",
    "POKER",
    "TABLE_EVENTS",
    "encode_casino",
    "encode_poker",
    "plan_player_stream",
    "plan_table_events",
]


# -- the poker table ---------------------------------------------------------------------------


def encode_poker(event: Event) -> bytes:
    """The event's data as published, under ``id: <offset>`` when stored.

    The gateway's own ``presence.*`` events are left out (an empty frame writes nothing):
    a table client switches on ``kind``, which they do not have.
    """
    if event.type.startswith("presence."):
        return b""
    return data_frame(event.payload, event.offset)


def _poker_greeting(start: str | None, retry: int) -> bytes:
    return comment("connected") + b"retry: %d\n\n" % retry


def _poker_reset(channel: str) -> bytes:
    return data_frame(orjson.dumps({"kind": "reset", "type": "reset", "channel": channel}))


def _poker_error(code: str, message: str) -> bytes:
    return data_frame(
        orjson.dumps({"kind": "error", "type": "error", "code": code, "message": message})
    )


def _poker_disconnect(reason: str, reconnect: bool) -> bytes:
    return comment(f"disconnect {reason}")


POKER = Dialect(
    "sse.poker",
    "sse.poker",
    _poker_greeting,
    lambda: comment("heartbeat"),
    _poker_reset,
    _poker_error,
    _poker_disconnect,
)


def plan_table_events(gateway: Gateway, request: StreamRequest) -> Plan:
    """``GET /api/tables/{tableId}/events?lastEventId=N``."""
    settings = gateway.settings
    check_origin(settings, request)
    channel, rules = resolve(settings, "table:" + request.match_info["tableId"])
    token = token_from_request(request)
    claims = gateway.auth.verify_token(token) if token else None
    check_subscribe(rules, channel, claims)  # refused before the stream: 401 or 403
    return Plan(POKER, resume([Want(channel, rules)], request), claims)


TABLE_EVENTS = StreamEndpoint(
    "/api/tables/{tableId}/events", plan_table_events, {POKER.wire: encode_poker}
)


# -- the casino player stream -----------------------------------------------------------------


def encode_casino(event: Event) -> bytes:
    """``{"brand_id","player_id","event_type","event_data"}`` from ``player:{brand}:{player}``."""
    _, brand, player = event.channel.split(":", 2)
    envelope = orjson.dumps(
        {
            "brand_id": wire_id(brand),
            "player_id": wire_id(player),
            "event_type": event.type,
            "event_data": orjson.Fragment(event.payload),
        }
    )
    return data_frame(envelope, event.offset)


def _utc(fmt: str) -> str:
    return time.strftime(fmt, time.gmtime())


def _casino_greeting(start: str | None, retry: int) -> bytes:
    head = b"retry: %d\n" % retry
    if start is not None:
        head += id_line(start)
    ts = _utc("%Y-%m-%dT%H:%M:%SZ")
    return head + data_frame(orjson.dumps({"type": "connected", "timestamp": ts}))


def _casino_keepalive() -> bytes:
    ts = _utc("%Y-%m-%d %H:%M:%S")
    return b": keepalive %b\ndata: %b\n\n" % (
        ts.encode(),
        orjson.dumps({"type": "keepalive", "timestamp": ts}),
    )


def _casino_reset(channel: str) -> bytes:
    return data_frame(orjson.dumps({"type": "reset", "channel": channel}))


def _casino_error(code: str, message: str) -> bytes:
    return data_frame(orjson.dumps({"type": "error", "message": message}))


def _casino_disconnect(reason: str, reconnect: bool) -> bytes:
    message = f"disconnected: {reason}" + ("; reconnect" if reconnect else "")
    return data_frame(orjson.dumps({"type": "error", "message": message}))


CASINO = Dialect(
    "sse.casino",
    "sse.casino",
    _casino_greeting,
    _casino_keepalive,
    _casino_reset,
    _casino_error,
    _casino_disconnect,
)


def plan_player_stream(gateway: Gateway, request: StreamRequest) -> Plan:
    """``GET /gateway/sse/{brand_id}/stream`` with the player's token in ``x-auth-token``."""
    settings = gateway.settings
    check_origin(settings, request)
    token = token_from_request(request)
    if not token:
        raise Unauthorized("send the player's token in the x-auth-token header")
    claims = gateway.auth.verify_token(token)
    brand = request.match_info["brand_id"]
    if claims.brand != brand:
        raise Forbidden(f"the token is not for brand {shown(brand, 64)}")
    channel, rules = resolve(settings, f"player:{brand}:{claims.sub}")
    check_subscribe(rules, channel, claims)
    return Plan(CASINO, resume([Want(channel, rules)], request), claims)


PLAYER_STREAM = StreamEndpoint(
    "/gateway/sse/{brand_id}/stream", plan_player_stream, {CASINO.wire: encode_casino}
)

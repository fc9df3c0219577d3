"""Centrifugo's client protocol v2 in its JSON format: commands in, replies and pushes out.

No I/O. The facts come from the protocol's public schema (``client.proto`` of the
centrifugal protocol repository) and from what the official SDKs send and expect:

* A frame holds one or more JSON commands, one per line. A command is
  ``{"id": N, "<method>": {params}}``: ``id`` is a uint32 the client picks, and exactly one
  method field is set. ``{}`` (no id, no method) is the client's pong to a server ping;
  ``send`` is the one method without an id (it gets no reply).
* A reply is ``{"id": N, "<method>": {result}}`` or ``{"id": N, "error": {"code",
  "message", "temporary"?}}``; an asynchronous push is ``{"push": {"channel", "<kind>": …}}``;
  a server ping is ``{}``. Fields with zero values are left out, as the server's JSON
  encoder does, and the SDKs read every field with a default.
* Binary fields that carry application data (``data`` of a publication, of an RPC …) are
  raw JSON in the JSON format, so an event's stored payload is spliced in unparsed.
* Disconnects are WebSocket close frames whose code says what happened and whether to
  reconnect (3000-3499 and 4000-4499: reconnect; 3500-3999 and 4500-4999: do not).

Croupier's event ``type`` travels in a publication's ``tags`` as ``{"type": …}``: the
protocol has no field for it, and tags are what its SDKs hand the application with the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import orjson

from ..errors import CroupierError
from ..events import Event, Position

__all__ = [
    "ERROR_CODES",
    "PING",
    "BadFrame",
    "Command",
    "ConnectRequest",
    "HistoryRequest",
    "Invalid",
    "PresenceRequest",
    "PresenceStatsRequest",
    "PublishRequest",
    "RefreshRequest",
    "RpcRequest",
    "SendRequest",
    "StreamPosition",
    "SubRefreshRequest",
    "SubscribeRequest",
    "UnsubscribeRequest",
    "close_reason",
    "decode_frame",
    "disconnect_for",
    "encode_error",
    "encode_push",
    "encode_reply",
    "error_for",
    "error_reply",
    "event_push",
    "history_result",
    "presence_result",
    "presence_stats_result",
    "publication",
    "subscribe_result",
]

PING = b"{}"
"""A server ping, and a client's pong: an empty reply or command."""

_ABSENT = msgspec.Raw(b"")  # msgspec.Raw takes no None: an empty one means "not sent"
_UINT32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
_UINT64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


# -- commands -----------------------------------------------------------------------------


class StreamPosition(msgspec.Struct, frozen=True):
    offset: _UINT64 = 0
    epoch: str = ""


class SubscribeRequest(msgspec.Struct, frozen=True):
    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: _UINT64 = 0
    data: msgspec.Raw = _ABSENT
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    flag: int = 0
    type: int = 0  # 0: a stream; others are map and shared-poll subscriptions
    tf: dict[str, Any] | None = None  # a filter on publication tags


class ConnectRequest(msgspec.Struct, frozen=True):
    token: str = ""
    data: msgspec.Raw = _ABSENT
    subs: dict[str, SubscribeRequest] = {}
    name: str = ""
    version: str = ""


class RefreshRequest(msgspec.Struct, frozen=True):
    token: str = ""


class SubRefreshRequest(msgspec.Struct, frozen=True):
    channel: str = ""
    token: str = ""


class UnsubscribeRequest(msgspec.Struct, frozen=True):
    channel: str = ""


class PublishRequest(msgspec.Struct, frozen=True):
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    type: int = 0  # 1: a map publish


class PresenceRequest(msgspec.Struct, frozen=True):
    channel: str = ""


class PresenceStatsRequest(msgspec.Struct, frozen=True):
    channel: str = ""


class HistoryRequest(msgspec.Struct, frozen=True):
    channel: str = ""
    limit: int = 0
    since: StreamPosition | None = None
    reverse: bool = False


class PingRequest(msgspec.Struct, frozen=True):
    pass


class RpcRequest(msgspec.Struct, frozen=True):
    method: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class SendRequest(msgspec.Struct, frozen=True):
    data: msgspec.Raw = msgspec.Raw(b"null")


class Command(msgspec.Struct, frozen=True):
    """One decoded command. :attr:`method` names the request it carries."""

    id: _UINT32 = 0
    connect: ConnectRequest | None = None
    subscribe: SubscribeRequest | None = None
    unsubscribe: UnsubscribeRequest | None = None
    publish: PublishRequest | None = None
    presence: PresenceRequest | None = None
    presence_stats: PresenceStatsRequest | None = None
    history: HistoryRequest | None = None
    ping: PingRequest | None = None
    send: SendRequest | None = None
    rpc: RpcRequest | None = None
    refresh: RefreshRequest | None = None
    sub_refresh: SubRefreshRequest | None = None

    @property
    def method(self) -> str | None:
        """The method of the one request set (``None``: a pong)."""
        for name in _METHODS:
            if getattr(self, name) is not None:
                return name
        return None

    @property
    def request(self) -> Any:
        method = self.method
        return None if method is None else getattr(self, method)


_METHODS = tuple(name for name in Command.__struct_fields__ if name != "id")
_decoder = msgspec.json.Decoder(Command)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A command with an id that cannot be carried out as sent: answer it with this error."""

    id: int
    code: int
    message: str


class BadFrame(Exception):
    """A frame the protocol has no answer for: the connection is closed with 3501."""


def decode_frame(raw: bytes | str) -> list[Command | Invalid]:
    """Decode the commands of one frame, in order.

    Raises:
        BadFrame: a line is not a JSON object, or a command that is not a pong has no id
            (and is not ``send``), or its id is not a uint32.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    commands: list[Command | Invalid] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        commands.append(_decode_line(line))
    if not commands:
        raise BadFrame("empty frame: send one JSON command per line")
    return commands


def _decode_line(line: bytes) -> Command | Invalid:
    try:
        command = _decoder.decode(line)
    except msgspec.ValidationError as exc:
        return _invalid(line, str(exc))
    except msgspec.DecodeError:
        raise BadFrame("a command is not valid JSON") from None
    set_methods = [name for name in _METHODS if getattr(command, name) is not None]
    if not set_methods:
        if command.id == 0:
            return command  # a pong
        return _invalid(line, "")
    if command.id == 0 and set_methods != ["send"]:
        raise BadFrame(f"a {set_methods[0]} command needs an id above 0")
    if len(set_methods) > 1:
        return Invalid(
            command.id, 107, "bad request: one request per command, got " + ", ".join(set_methods)
        )
    return command


def _invalid(line: bytes, problem: str) -> Invalid:
    """The answer to a line that decoded as JSON but not as a command we can carry out."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BadFrame("a command is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadFrame("a command must be a JSON object")
    ident = doc.get("id")
    if not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident <= 0xFFFFFFFF:
        raise BadFrame("a command needs an id from 1 to 4294967295")
    if problem:
        return Invalid(ident, 107, f"bad request: {problem}")
    unknown = sorted(k for k in doc if k != "id")
    named = ", ".join(str(k)[:32] for k in unknown[:3]) or "none"
    return Invalid(ident, 104, f"method not found: {named}")


# -- errors and disconnects -----------------------------------------------------------------

# Croupier's error codes → (the protocol's code, its standard message, temporary).
ERROR_CODES: Mapping[str, tuple[int, str, bool]] = {
    "internal": (100, "internal server error", True),
    "unavailable": (100, "internal server error", True),
    "unauthorized": (101, "unauthorized", False),
    "invalid_token": (101, "unauthorized", False),
    "unknown_namespace": (102, "unknown channel", False),
    "forbidden": (103, "permission denied", False),
    "identity_change": (103, "permission denied", False),
    "not_found": (104, "method not found", False),
    "already_subscribed": (105, "already subscribed", False),
    "too_many_subscriptions": (106, "limit exceeded", False),
    "too_large": (106, "limit exceeded", False),
    "not_available": (108, "not available", False),
    "not_supported": (108, "not available", False),
    "token_expired": (109, "token expired", False),
    "rate_limited": (111, "too many requests", True),
    "unrecoverable_position": (112, "unrecoverable position", False),
}
_BAD_REQUEST = (107, "bad request", False)


def error_for(code: str, message: str) -> tuple[int, str, bool]:
    """The protocol's (code, message, temporary) for a Croupier error code and message.

    The message starts with the protocol's standard text and goes on with Croupier's own,
    which says what to change.
    """
    number, text, temporary = ERROR_CODES.get(code, _BAD_REQUEST)
    return number, f"{text}: {message}" if message else text, temporary


# Croupier's disconnect reasons → (close code, the protocol's reason text).
_DISCONNECTS: Mapping[str, tuple[int, str]] = {
    "shutdown": (3001, "shutdown"),
    "internal_error": (3004, "internal server error"),
    "token_expired": (3005, "connection expired"),
    "slow_consumer": (3008, "slow"),
    "idle_timeout": (3012, "no pong"),
    "rate_limited": (3013, "too many requests"),
    "too_large": (1009, "message size limit exceeded"),
    "invalid_token": (3500, "invalid token"),
    "unauthorized": (3500, "invalid token"),
    "identity_change": (3500, "invalid token"),
    "bad_request": (3501, "bad request"),
    "too_many_subscriptions": (3505, "channel limit"),
    "forbidden": (3507, "permission denied"),
    "abuse": (3509, "too many errors"),
}


def disconnect_for(reason: str, reconnect: bool) -> tuple[int, str]:
    """The close code and reason text for a Croupier disconnect reason.

    An unknown reason keeps its own text, with a code in the range that tells the SDK
    whether to reconnect (3000 force reconnect-style, or 3503 force disconnect).
    """
    found = _DISCONNECTS.get(reason)
    if found is not None:
        return found
    if reason == "force":
        reason = "force reconnect" if reconnect else "force disconnect"
    return (3011, reason) if reconnect else (3503, reason)


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8)."""
    raw = text.encode("utf-8")
    if len(raw) <= 123:
        return text
    return raw[:123].decode("utf-8", "ignore")


def encode_error(command_id: int, code: int, message: str, temporary: bool = False) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if temporary:
        error["temporary"] = True
    return orjson.dumps({"id": command_id, "error": error})


def error_reply(command_id: int, exc: CroupierError) -> bytes:
    """The error reply to a command for ``exc``."""
    code, message, temporary = error_for(exc.code, exc.message)
    return encode_error(command_id, code, message, temporary)


# -- replies and pushes ---------------------------------------------------------------------


def encode_reply(command_id: int, method: str, result: Mapping[str, Any] | None = None) -> bytes:
    """``{"id": N, "<method>": {result}}``; ``None`` values are left out of ``result``."""
    body = {} if result is None else {k: v for k, v in result.items() if v is not None}
    return orjson.dumps({"id": command_id, method: body})


def encode_push(channel: str, kind: str, body: Mapping[str, Any]) -> bytes:
    """An asynchronous push: ``{"push": {"channel": …, "<kind>": {body}}}``."""
    return orjson.dumps({"push": {"channel": channel, kind: body}})


def publication(event: Event) -> dict[str, Any]:
    """``event`` as a Publication: its data, its offset when stored, its type in ``tags``."""
    pub: dict[str, Any] = {"data": orjson.Fragment(event.payload)}
    if event.offset is not None:
        pub["offset"] = event.offset
    pub["tags"] = {"type": event.type}
    return pub


def _client_info(data: Any) -> dict[str, Any]:
    """Croupier's presence member info (``{"id", "name"?}``) as a ClientInfo."""
    info: dict[str, Any] = {"user": "", "client": ""}
    if isinstance(data, Mapping):
        if data.get("id") is not None:
            info["user"] = str(data["id"])
        if data.get("client") is not None:
            info["client"] = str(data["client"])
        extra = {k: v for k, v in data.items() if k not in ("id", "client")}
        if extra:
            info["conn_info"] = extra
    return info


def event_push(event: Event) -> bytes:
    """The push that carries ``event``: a join or leave for presence notices, otherwise a
    publication. Built once per event; every subscriber gets the same bytes."""
    if event.offset is None and event.type in ("presence.join", "presence.leave"):
        kind = "join" if event.type == "presence.join" else "leave"
        return encode_push(event.channel, kind, {"info": _client_info(event.data)})
    return encode_push(event.channel, "pub", publication(event))


def subscribe_result(
    *,
    position: Position | None,
    recovered: bool,
    was_recovering: bool,
    events: Iterable[Event] = (),
    ttl: int | None = None,
) -> dict[str, Any]:
    """The SubscribeResult for a subscription.

    A stored channel (``position`` given) is recoverable and positioned: the SDK keeps its
    epoch and offset and asks to recover from them when it resubscribes. ``events`` are the
    recovered publications, in order.
    """
    result: dict[str, Any] = {}
    if ttl is not None:
        result["expires"] = True
        result["ttl"] = max(ttl, 1)
    if position is not None:
        result["recoverable"] = True
        result["positioned"] = True
        result["epoch"] = position.epoch
        if position.offset:
            result["offset"] = position.offset
    pubs = [publication(e) for e in events]
    if pubs:
        result["publications"] = pubs
    if recovered:
        result["recovered"] = True
    if was_recovering:
        result["was_recovering"] = True
    return result


def presence_result(members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A PresenceResult from Croupier's presence members (each with its ``client`` id)."""
    presence: dict[str, Any] = {}
    for member in members:
        client = str(member.get("client", ""))
        presence[client] = {**_client_info(member), "client": client}
    return {"presence": presence}


def presence_stats_result(members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A PresenceStatsResult: connections, and distinct players among them."""
    listed = list(members)
    users = {str(m["id"]) for m in listed if m.get("id") is not None}
    return {"num_clients": len(listed), "num_users": len(users)}


def history_result(events: Iterable[Event], position: Position) -> dict[str, Any]:
    result: dict[str, Any] = {}
    pubs = [publication(e) for e in events]
    if pubs:
        result["publications"] = pubs
    result["epoch"] = position.epoch
    if position.offset:
        result["offset"] = position.offset
    return result

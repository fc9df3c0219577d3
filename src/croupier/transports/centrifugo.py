"""Centrifugo's client protocol v2 (JSON) as a codec: ``GET /connection/websocket``.

Centrifugo's SDKs (JavaScript, Python, Swift, Java/Kotlin, Dart, Go, C#) connect here
unchanged. Their commands become the same neutral commands the native protocol's messages
do, so the connection runs on the same core: hub, log, namespace rules, presence, rate limits,
outbox bound and slow-consumer policy. The wire facts are in :mod:`croupier.core.centrifugo`.

Rules:

* The first command must be ``connect``; its ``token`` is a Croupier player JWT (``sub`` is
  the user, ``channels`` the grants, ``exp`` the expiry), checked as an ``auth`` message
  is. No token: an anonymous connection, which may read public namespaces. A connect that
  fails leaves the connection unusable: what follows closes it (3501).
* ``refresh`` takes a new token for the same player. The SDK is told to refresh a little
  before ``exp`` (the server closes the connection at ``exp`` with 3005).
* ``subscribe`` with ``recover`` resumes from ``offset``/``epoch`` all or nothing: the
  missed publications come inside the reply with ``recovered: true``, or none do and
  ``recovered: false`` says where the channel stands. Stored channels are ``recoverable``
  and ``positioned``; ephemeral ones neither.
* ``publish``: the event type is ``data.type`` when the data has one (it is taken out of
  the data), else the namespace's one type players may publish. The same checks as a native
  publish follow; the server sets ``data.from``.
* ``presence``, ``presence_stats`` and ``history`` are for whoever may subscribe to the
  channel, where its namespace keeps presence or history.
* ``rpc`` goes to the handler a service registered for its method (error 108 without one);
  ``send`` likewise, without a reply.
* The server pings with ``{}`` every ``ping_interval`` and the client answers ``{}``; a client
  silent for twice the interval is closed (3012).
* A frame that is not one JSON command per line, or a command that has no id, closes the
  connection with 3501 (bad request) as Centrifugo does; a command with an id that cannot be
  carried out is answered with an error and the connection stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .. import __version__
from ..config import Settings
from ..core import commands as c
from ..core.centrifugo import (
    PING,
    BadFrame,
    Command,
    ConnectRequest,
    HistoryRequest,
    Invalid,
    PublishRequest,
    SubscribeRequest,
    close_reason,
    decode_frame,
    disconnect_for,
    encode_error,
    encode_reply,
    error_for,
    error_reply,
    event_push,
    history_result,
    presence_result,
    presence_stats_result,
    subscribe_result,
)
from ..core.channels import Claims, namespace_of
from ..core.wire import ws_frame
from ..errors import BadRequest, CroupierError
from ..events import Event
from .codec import BaseCodec
from .websocket import Endpoint, Upgrade

__all__ = ["ENDPOINT", "WIRE", "CentrifugoCodec", "encode_event", "open_centrifugo"]

WIRE = "centrifugo"
VERSION = f"croupier {__version__}"
_PING_FRAME = ws_frame(PING)


def encode_event(event: Event) -> bytes:
    """The hub's encoder for this wire: the event's push, framed once for every client.

    Croupier's ``presence.count`` notices have no place in the protocol (a client asks
    ``presence_stats``): they encode to nothing.
    """
    if event.type == "presence.count" and event.offset is None:
        return b""
    return ws_frame(event_push(event))


def _ttl(exp: float | None) -> int | None:
    """Seconds the SDK waits before refreshing a token that runs out at ``exp``.

    A little before ``exp``: the SDK refreshes when the ttl is over, and the server closes
    the connection at ``exp``.
    """
    if exp is None:
        return None
    left = exp - time.time()
    return max(1, int(left - min(10.0, left / 5)))


class _Reply:
    """A reply the codec answers by itself, already encoded (no session rule applies)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class CentrifugoCodec(BaseCodec):
    """One connection's side of the protocol: where the connect stands, and which method
    each command id in flight belongs to (the neutral replies do not say)."""

    name = "centrifugo"
    wire = WIRE
    replay_in_reply = True

    def __init__(
        self,
        settings: Settings,
        verify: Callable[[str], Claims],
        claims_exp: float | None = None,
    ) -> None:
        super().__init__(settings)
        self.settings = settings
        self.verify = verify
        self.client = ""
        self.state = "new"  # new -> connected, or new -> failed
        self.claims_exp = claims_exp  # the upgrade's token, if one came with the URL
        self.methods: dict[int, str] = {}
        self.closing = ""  # why the connection is being closed, for the close frame
        self.reconnect = True  # whether the client is told to come back

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, message: bytes | str) -> Sequence[Any]:
        try:
            commands = decode_frame(message)
        except BadFrame as exc:
            return [self._bad(str(exc))]
        out: list[Any] = []
        for command in commands:
            if self.state == "failed" and out:
                break  # the connect before these in the frame failed: they go unanswered
            if isinstance(command, Invalid):
                out.append(_Reply(encode_error(command.id, command.code, command.message)))
                continue
            method = command.method
            if self.state != "connected" and method != "connect":
                return [*out, self._bad("the first command must be connect")]
            if method is None:
                continue  # a pong: the core counted the message as activity
            out.extend(self._command(method, command))
        return out

    def _bad(self, message: str) -> c.Close:
        self.closing = f"bad request: {message}"
        return c.Close("bad_request", message)

    def _command(self, method: str, command: Command) -> list[Any]:
        ident = command.id
        request = command.request
        if ident:
            self.methods[ident] = method
        if method == "connect":
            return self._connect(ident, request)
        if method == "subscribe":
            return [self._subscribe(ident, request)]
        if method == "unsubscribe":
            return [c.Unsubscribe(request.channel, ident)]
        if method == "publish":
            return [self._publish(ident, request)]
        if method == "presence" or method == "presence_stats":
            return [c.Presence(request.channel, ident)]
        if method == "history":
            return [self._history(ident, request)]
        if method == "ping":
            return [c.Ping(ident)]
        if method == "refresh":
            return [c.Auth(request.token, ident)]
        if method == "sub_refresh":
            # Croupier has no subscription tokens: nothing to refresh, nothing expires.
            return [self._answer(ident, "sub_refresh")]
        if method == "rpc":
            return [c.Rpc(request.method, bytes(request.data), ident)]
        assert method == "send"
        return [c.Rpc("", bytes(request.data), None)]

    def _answer(self, ident: int, method: str, result: dict[str, Any] | None = None) -> _Reply:
        self.methods.pop(ident, None)
        return _Reply(encode_reply(ident, method, result))

    def _connect(self, ident: int, request: ConnectRequest) -> list[Any]:
        if self.state != "new":
            return [self._bad("connect was already sent on this connection")]
        if request.token:
            # Checked here as well as by the session, so that the commands the SDK sends
            # in the same frame (its subscriptions) are never run for a failed connect.
            try:
                self.verify(request.token)
            except CroupierError as exc:
                self.state = "failed"
                self.methods.pop(ident, None)
                return [_Reply(error_reply(ident, exc))]
            self.state = "connected"
            return [c.Auth(request.token, ident)]
        self.state = "connected"
        return [self._answer(ident, "connect", self._connect_result(self.claims_exp))]

    def _connect_result(self, exp: float | None) -> dict[str, Any]:
        ttl = _ttl(exp)
        return {
            "client": self.client,
            "version": VERSION,
            "expires": True if ttl is not None else None,
            "ttl": ttl,
            "ping": max(1, round(self.ping_interval)),
            "pong": True,
        }

    def _subscribe(self, ident: int, request: SubscribeRequest) -> Any:
        if request.type:
            return c.Refuse(
                "not_available", "map and shared-poll subscriptions are not supported", ident
            )
        if request.tf is not None:
            return c.Refuse("not_available", "tag filters are not supported", ident)
        since = None
        if request.recover:
            since = c.Since(request.offset, request.epoch or None)
        return c.Subscribe(request.channel, ident, since, resume=request.recover)

    def _publish(self, ident: int, request: PublishRequest) -> Any:
        if request.type:
            return c.Refuse("not_available", "map publications are not supported", ident)
        data = bytes(request.data)
        kind: str | None = None
        if data[:1] == b"{":
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("type"), str):
                kind = doc.pop("type")
                data = orjson.dumps(doc)
        if kind is None:
            rules = self.settings.rules_for(namespace_of(request.channel))
            allowed = sorted(rules.client_publish) if rules is not None else []
            if len(allowed) > 1:
                return c.Refuse(
                    "bad_message",
                    f"{request.channel[:255]} takes {', '.join(allowed)}: "
                    'say which in the data\'s "type" field',
                    ident,
                )
            kind = allowed[0] if allowed else "publication"
        return c.Publish(request.channel, kind, data, ident)

    def _history(self, ident: int, request: HistoryRequest) -> c.History:
        since = None
        if request.since is not None:
            since = c.Since(request.since.offset, request.since.epoch or None)
        return c.History(request.channel, ident, request.limit, since, request.reverse)

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, reply: Any) -> bytes:
        payload = self._payload(reply)
        return ws_frame(payload) if payload else b""

    def _payload(self, reply: Any) -> bytes:
        if isinstance(reply, _Reply):
            return reply.payload
        if isinstance(reply, c.Connected):
            self.client = reply.client
            return b""  # the client speaks first: its connect is answered
        ident = getattr(reply, "id", None)
        method = self.methods.pop(ident, None) if isinstance(ident, int) else None
        if isinstance(reply, c.Refused):
            return self._refused(reply, ident, method)
        if not isinstance(ident, int) or method is None:
            return self._push(reply)
        if isinstance(reply, c.Authenticated):
            if method == "connect":
                return encode_reply(ident, "connect", self._connect_result(reply.claims.exp))
            ttl = _ttl(reply.claims.exp)
            expiry = {"expires": True if ttl is not None else None, "ttl": ttl}
            return encode_reply(
                ident, method, {"client": self.client, "version": VERSION, **expiry}
            )
        if isinstance(reply, c.Subscribed):
            return encode_reply(
                ident,
                "subscribe",
                subscribe_result(
                    position=reply.position,
                    recovered=reply.recovered,
                    was_recovering=reply.resumed,
                    events=reply.events,
                ),
            )
        if isinstance(reply, c.PresenceMembers):
            return self._presence(ident, method, reply)
        if isinstance(reply, c.HistoryPage):
            return encode_reply(ident, "history", history_result(reply.events, reply.position))
        if isinstance(reply, c.RpcResult):
            return encode_reply(ident, "rpc", {"data": orjson.Fragment(reply.data)})
        # Unsubscribed, Published, Pong: an empty result of the command's method.
        return encode_reply(ident, method)

    def _refused(self, reply: c.Refused, ident: Any, method: str | None) -> bytes:
        if not isinstance(ident, int) or not ident:
            return b""  # nothing to answer (a frame refused whole); see the docs
        if method == "unsubscribe" and reply.code == "not_subscribed":
            return encode_reply(ident, "unsubscribe")  # as Centrifugo: nothing to undo
        if method == "connect":
            self.state = "failed"
        code, message, temporary = error_for(reply.code, reply.message)
        return encode_error(ident, code, message, temporary)

    def _presence(self, ident: int, method: str, reply: c.PresenceMembers) -> bytes:
        if method == "presence_stats":
            return encode_reply(ident, method, presence_stats_result(reply.members))
        return encode_reply(ident, "presence", presence_result(reply.members))

    def _push(self, reply: Any) -> bytes:
        if isinstance(reply, c.Snapshot):
            # A service's starting point, in the native shape of an unstored event.
            doc = orjson.loads(reply.payload)
            event = Event(
                reply.channel,
                str(doc.get("type", "snapshot")),
                orjson.dumps(doc.get("data")),
                str(doc.get("ts", "")),
            )
            return event_push(event)
        if isinstance(reply, c.Disconnect):
            self.reconnect = reply.reconnect
            return b""  # a WebSocket close frame carries it (see close_code)
        return b""  # Reset: recovered:false in the subscribe reply says it; the rest: none

    # -- the rest of the protocol -----------------------------------------------------------

    def heartbeat(self) -> bytes:
        return _PING_FRAME

    def close_for(self, refusal: c.Refused) -> tuple[str, bool] | None:
        # Nothing can answer a frame whose commands were never read: Centrifugo closes.
        if refusal.code == "rate_limited":
            return "rate_limited", True
        if refusal.code == "too_large":
            return "too_large", False
        return None

    def close_code(self, reason: str) -> int:
        return disconnect_for(reason, self.reconnect)[0]

    def close_reason(self, reason: str) -> str:
        closing, self.closing = self.closing, ""
        if closing and reason == "bad_request":
            return close_reason(closing)
        return close_reason(disconnect_for(reason, self.reconnect)[1])


def open_centrifugo(upgrade: Upgrade) -> CentrifugoCodec:
    """The codec of a ``GET /connection/websocket`` connection.

    Raises:
        BadRequest: the client asks for the Protobuf format (only JSON is spoken).
    """
    protocols = upgrade.headers.get("Sec-WebSocket-Protocol", "")
    if "centrifuge-protobuf" in protocols:
        raise BadRequest(
            "the Protobuf format of Centrifugo's protocol is not supported: use the SDK's "
            "JSON format (its default)",
            code="not_supported",
        )
    claims = upgrade.claims
    gateway = upgrade.gateway
    exp = None if claims is None else claims.exp
    return CentrifugoCodec(gateway.settings, gateway.auth.verify_token, exp)


ENDPOINT = Endpoint("/connection/websocket", open_centrifugo, {WIRE: encode_event})

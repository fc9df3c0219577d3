"""Pusher Channels protocol 7 as a codec: ``ws://HOST/app/{key}`` (see docs/pusher.md).

The connection core runs the connection (outbox, presence, heartbeat, close); this module
says how Pusher's messages map onto its commands and replies:

* ``pusher:subscribe`` is a subscribe of the mapped Croupier channel, authorized by the
  channel's Pusher signature instead of a player token: public channels are open,
  ``private-`` ones need ``auth``, ``presence-`` ones ``auth`` and ``channel_data``, whose
  ``user_id`` is then who the connection is in presence (one user per connection).
* ``client-*`` events on a private or presence channel the client is subscribed to are
  published (ephemeral, never back to the sender), at most ``client_event_rate`` a second.
* ``pusher:signin`` with a valid user signature names the connection's user (for
  ``terminate_connections``).
* Events reach Pusher clients as ``{"event", "channel", "data"}`` with ``data`` a string;
  a presence channel's joins and leaves are ``pusher_internal:member_added`` / ``removed``,
  its counts ``pusher_internal:subscription_count``. Both are encoded once per event.
* Errors are ``pusher:error`` (a refused subscription also ``pusher:subscription_error`` on
  the channel); a connection the server ends gets a close code from Pusher's ranges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..config import NamespaceRules, PusherApp, Settings
from ..core import commands as c
from ..core import pusher_wire as pw
from ..core.channels import Claims, namespace_of
from ..core.pusher import (
    ChannelKind,
    check_channel_auth,
    check_user_auth,
    data_for_pusher,
    kind_of,
    new_socket_id,
    to_croupier,
    to_pusher,
    type_from_pusher,
)
from ..core.ratelimit import TokenBucket
from ..core.wire import ws_frame
from ..errors import BadRequest, CroupierError, Forbidden, RateLimited, Unauthorized, shown
from ..events import Event
from ..hooks import Start
from .codec import BaseCodec
from .native import PING_FRAME  # a WebSocket ping, as the native wire sends
from .websocket import Endpoint, Upgrade

__all__ = ["WIRE", "PusherCodec", "pusher_endpoint"]

WIRE = "pusher"
_STATUS = {"unauthorized": 401, "forbidden": 403}
_ERROR_CODES = {"rate_limited": 4301, "unauthorized": 4009}


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A reply only this codec sends: ``pusher:signin_success``."""

    user_data: str


@dataclass(frozen=True, slots=True)
class _Pending:
    name: str
    kind: ChannelKind
    auth: str | None
    channel_data: str | None


async def _no_start(channel: str, claims: Claims | None) -> Start:
    """Pusher clients start at the live edge: no service snapshot, no replay."""
    return Start()


class PusherCodec(BaseCodec):
    """One Pusher connection of ``app`` (``app`` None: the URL's key is no app's, and the
    connection is refused with 4001 once open)."""

    name = "pusher"
    wire = WIRE
    quiet_client = True  # pusher-js is silent while it hears from the server

    def __init__(
        self,
        settings: Settings,
        app: PusherApp | None,
        refusal: tuple[str, str] = ("app_not_found", ""),
    ) -> None:
        super().__init__(settings)
        self.settings = settings
        self.app = app
        self.refusal = refusal  # why an app-less connection is closed: (reason, message)
        self.last_words = ""  # the message of the error that ends the connection
        self.socket_id = new_socket_id()
        self.names: dict[str, str] = {}  # Croupier channel -> Pusher name, once subscribing
        self.pending: dict[str, _Pending] = {}
        self.user: dict[str, Any] | None = None  # who the connection is in presence
        self.signed_in: str | None = None  # the user id of pusher:signin
        rate = app.client_event_rate if app is not None else 1.0
        self.client_events = TokenBucket(rate, max(1, int(rate * 2)), time.monotonic())
        self.on_event: Callable[[bytes, Event], bytes | None] | None = self._on_event
        self.start = _no_start

    # -- client -> commands ----------------------------------------------------------------

    def opening(self) -> Sequence[c.Command]:
        if self.app is None:
            return (c.Close(*self.refusal),)  # type: ignore[return-value]
        return ()

    def decode(self, message: bytes | str) -> Sequence[Any]:
        app = self.app
        if app is None:
            return ()
        msg = pw.decode_client(message)
        event = msg.event
        if event == "pusher:ping":
            return (c.Ping(),)
        if event == "pusher:pong":
            return ()
        if event == "pusher:subscribe":
            data = pw.decode_data(msg, pw.SubscribeData)
            kind = kind_of(data.channel)
            channel = to_croupier(app, data.channel)
            if channel in self.names:
                raise BadRequest(f"already subscribed to {data.channel}", code="already_subscribed")
            self.pending[channel] = _Pending(data.channel, kind, data.auth, data.channel_data)
            self.names[channel] = data.channel
            return (c.Subscribe(channel, data.channel),)
        if event == "pusher:unsubscribe":
            data = pw.decode_data(msg, pw.SubscribeData)
            return (c.Unsubscribe(to_croupier(app, data.channel), data.channel),)
        if event == "pusher:signin":
            signin = pw.decode_data(msg, pw.SigninData)
            check_user_auth(app, self.socket_id, signin.user_data, signin.auth)
            self.signed_in = _user_id(signin.user_data, "user_data", "id")
            return (SignedIn(signin.user_data),)
        if event.startswith("client-"):
            return (self._client_event(app, event, msg),)
        raise BadRequest(f"unknown event {shown(event)}", code="unknown_type")

    def _client_event(self, app: PusherApp, event: str, msg: pw.ClientMessage) -> c.DoPublish:
        if not app.client_events:
            raise Forbidden("client events are not enabled for this app")
        name = msg.channel or ""
        channel = to_croupier(app, name)
        if self.names.get(channel) != name or channel in self.pending:
            raise BadRequest(f"not subscribed to {name[:200]}", code="not_subscribed")
        if kind_of(name) is ChannelKind.PUBLIC:
            raise Forbidden("client events are only for private and presence channels")
        if not self.client_events.take(time.monotonic()):
            raise RateLimited(f"client events are limited to {app.client_event_rate:g}/s")
        rules = self.settings.rules_for(namespace_of(channel))
        assert rules is not None  # the channel is subscribed, so its namespace has rules
        return c.DoPublish(
            channel, rules, type_from_pusher(event), bytes(msg.data), None, self.socket_id
        )

    def authorize(self, rules: NamespaceRules, channel: str, claims: Claims | None) -> None:
        app = self.app
        pending = self.pending.get(channel)
        if app is None or pending is None:
            raise Forbidden(f"{channel} is not a Pusher channel of this connection")
        if pending.kind is ChannelKind.PUBLIC:
            return
        data = pending.channel_data if pending.kind is ChannelKind.PRESENCE else None
        if pending.kind is ChannelKind.PRESENCE and data is None:
            raise Unauthorized(f"subscribing to {pending.name} needs channel_data")
        if pending.kind is ChannelKind.PRESENCE and not rules.presence:
            raise Forbidden(f"{channel} is in a namespace without presence")
        check_channel_auth(app, self.socket_id, pending.name, pending.auth, data)
        if data is not None:
            user = _user_id(data, "channel_data", "user_id")
            if self.user is not None and self.user["id"] != user:
                raise Forbidden("one connection is one user: reconnect to change user")
            info = orjson.loads(data).get("user_info")
            self.user = {"id": user, "info": info}

    def belongs_to(self, app: PusherApp, user_id: str) -> bool:
        """Whether this is a connection of ``app``'s user ``user_id`` (signed in, or a
        presence member): what ``terminate_connections`` closes."""
        if self.app is not app:
            return False
        return user_id in (self.signed_in, None if self.user is None else self.user["id"])

    def member(self, claims: Claims | None) -> dict[str, Any] | None:
        return self.user if self.user is not None else {"id": None}

    def member_list(self, channel: str) -> int:
        if self.app is not None and self.names.get(channel, "").startswith("presence-"):
            return self.app.max_presence_members
        return 0

    # -- replies -> Pusher -----------------------------------------------------------------

    def encode(self, reply: Any) -> bytes:
        if isinstance(reply, c.Refused):
            return self._refused(reply)
        payload = self._message(reply)
        return b"" if payload is None else ws_frame(payload)

    def _message(self, reply: Any) -> bytes | None:
        if isinstance(reply, c.Connected):
            if self.app is None:
                return None
            return pw.connection_established(self.socket_id, self.app.activity_timeout)
        if isinstance(reply, c.Subscribed):
            self.pending.pop(reply.channel, None)
            name = self.names.get(reply.channel, "")
            data = "{}"
            if name.startswith("presence-"):
                data = pw.presence_data(reply.members)
            return pw.subscription_succeeded(name, data)
        if isinstance(reply, c.Unsubscribed):
            self.names.pop(reply.channel, None)
            self.pending.pop(reply.channel, None)
            return None
        if isinstance(reply, c.Pong):
            return pw.pong()
        if isinstance(reply, SignedIn):
            return pw.signin_success(reply.user_data)
        if isinstance(reply, c.Disconnect):
            message = self.last_words or reply.reason
            return pw.error(self.close_code(reply.reason), message)
        return None  # published, authenticated, snapshots, resets: nothing in Pusher's protocol

    def _refused(self, reply: c.Refused) -> bytes:
        if reply.code in pw.CLOSE_CODES:
            # The connection ends with this: the disconnect's pusher:error says it.
            self.last_words = reply.message
            return b""
        error = ws_frame(pw.error(_ERROR_CODES.get(reply.code), reply.message))
        name = reply.id if isinstance(reply.id, str) else None
        channel = reply.channel or (None if name is None else _croupier_name(self, name))
        if name is not None and channel is not None and channel in self.pending:
            # A subscription that could not be made: pusher-js reports it on the channel.
            self.pending.pop(channel, None)
            self.names.pop(channel, None)
            status = _STATUS.get(reply.code, 400)
            return ws_frame(pw.subscription_error(name, reply.message, status)) + error
        return error

    def heartbeat(self) -> bytes:
        return PING_FRAME

    def close_code(self, reason: str) -> int:
        return pw.CLOSE_CODES.get(reason, 4200)

    def _on_event(self, frame: bytes, event: Event) -> bytes | None:
        if not frame:
            return None  # presence notices of channels that are not presence channels
        if event.exclude is not None and event.exclude == self.socket_id:
            return None
        if (
            event.type == "presence.join"
            and self.user is not None
            and str(orjson.loads(event.payload).get("id")) == self.user["id"]
        ):
            return None  # Pusher does not tell a member about their own arrival
        return frame


def _croupier_name(codec: PusherCodec, name: str) -> str | None:
    """The Croupier channel of a Pusher name, or None when it has none."""
    if codec.app is None:
        return None
    try:
        return to_croupier(codec.app, name)
    except CroupierError:
        return None


def _user_id(raw: str, field: str, key: str) -> str:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{field} must be JSON", code="bad_message") from None
    user = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(user, str | int) or isinstance(user, bool) or str(user) == "":
        raise BadRequest(f"{field} needs a {key} (a string)", code="bad_message")
    return str(user)


def _encoder(settings: Settings) -> Callable[[Event], bytes]:
    """The hub's encoder of the Pusher wire: each event once, whatever app it belongs to."""
    apps = settings.pusher_apps
    names: dict[str, str | None] = {}

    def pusher_name(channel: str) -> str | None:
        name = names.get(channel, "")
        if name == "":
            name = None
            for app in apps:
                name = to_pusher(app, channel)
                if name is not None:
                    break
            if len(names) > 50_000:
                names.clear()
            names[channel] = name
        return name

    def encode(event: Event) -> bytes:
        name = pusher_name(event.channel)
        if name is None:
            return b""
        kind = event.type
        if kind.startswith("presence."):
            return _presence_notice(kind, name, event.payload)
        return ws_frame(pw.event(kind, name, data_for_pusher(event.payload)))

    return encode


def _presence_notice(kind: str, name: str, payload: bytes) -> bytes:
    doc = orjson.loads(payload)
    if kind == "presence.count":
        count = doc.get("count", 0)
        return ws_frame(pw.subscription_count(name, count))
    if not name.startswith("presence-") or doc.get("id") is None:
        return b""
    if kind == "presence.join":
        return ws_frame(pw.member_added(name, str(doc["id"]), doc.get("info")))
    if kind == "presence.leave":
        return ws_frame(pw.member_removed(name, str(doc["id"])))
    return b""


def _open(upgrade: Upgrade) -> PusherCodec:
    settings = upgrade.gateway.settings
    key = upgrade.match_info["key"]
    app = settings.pusher_app(key=key)
    if app is None:
        refusal = ("app_not_found", f"no app has the key {shown(key, 64)}")
        return PusherCodec(settings, None, refusal)
    protocol = upgrade.query.get("protocol", "7")
    if protocol not in ("5", "6", "7"):
        message = f"protocol {shown(protocol, 8)} is not supported (7 is)"
        return PusherCodec(settings, None, ("bad_protocol", message))
    return PusherCodec(settings, app)


def pusher_endpoint(settings: Settings) -> Endpoint:
    """``/app/{key}`` for the configured Pusher apps."""
    return Endpoint("/app/{key}", _open, {WIRE: _encoder(settings)}, player_token=False)

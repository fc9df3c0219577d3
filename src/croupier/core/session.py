"""The per-connection protocol rules of the native WebSocket protocol. No I/O.

A transport feeds each received text frame to :meth:`Session.receive` and carries out the
actions it returns, in order: replies to send, and subscribe/unsubscribe/publish requests
that have already passed every check a session can make on its own (shape, size, rate,
channel name, namespace rules, permissions).

Rules:

* Every message costs one token of the connection's bucket; an empty bucket answers
  ``rate_limited``. Player publishes also cost a token of a bucket per (namespace, type).
* Each error answers the message (with its ``id``) and the connection stays, until
  ``abuse_errors`` errors in a row: then the session asks the transport to close it.
* ``auth`` may come at any time: it authenticates an anonymous connection or refreshes an
  expiring token, but never changes who the connection is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..config import NamespaceRules, Settings
from ..errors import (
    BadRequest,
    CroupierError,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from ..events import Position
from .channels import Claims, check_subscribe, resolve
from .ratelimit import TokenBucket
from .wire import Auth, MessageId, Ping, Publish, Subscribe, Unsubscribe, control, decode_client

__all__ = [
    "Action",
    "Authenticated",
    "Close",
    "DoPublish",
    "DoSubscribe",
    "DoUnsubscribe",
    "Reply",
    "Session",
]


@dataclass(frozen=True, slots=True)
class Reply:
    payload: bytes


@dataclass(frozen=True, slots=True)
class DoSubscribe:
    channel: str
    rules: NamespaceRules
    since: Position | None
    id: MessageId


@dataclass(frozen=True, slots=True)
class DoUnsubscribe:
    channel: str
    id: MessageId


@dataclass(frozen=True, slots=True)
class DoPublish:
    channel: str
    rules: NamespaceRules
    type: str
    payload: bytes
    id: MessageId


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The connection's token changed: the transport re-arms its expiry timer."""

    claims: Claims


@dataclass(frozen=True, slots=True)
class Close:
    code: str
    message: str


Action = Reply | DoSubscribe | DoUnsubscribe | DoPublish | Authenticated | Close


def _byte_size(raw: bytes | str) -> int:
    """The frame's size in UTF-8 bytes; a text frame's ``len`` counts characters."""
    if isinstance(raw, bytes) or raw.isascii():
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def error(exc: CroupierError, message_id: MessageId = None) -> Reply:
    return Reply(control("error", id=message_id, code=exc.code, message=exc.message))


class Session:
    """Args:
    settings: namespace rules and limits.
    verify: turns a token into claims, raising ``Unauthorized``.
    claims: the claims of the token given at connect time, if any.
    now: the clock reading at connect time (seconds, monotonic).
    """

    def __init__(
        self,
        settings: Settings,
        verify: Callable[[str], Claims],
        claims: Claims | None,
        now: float,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.verify = verify
        self.claims = claims
        self.channels: dict[str, NamespaceRules] = {}
        self.errors_in_a_row = 0
        self._bucket = TokenBucket(self.limits.client_rate, self.limits.client_burst, now)
        self._publish_buckets: dict[tuple[str, str], TokenBucket] = {}

    def receive(self, raw: bytes | str, now: float) -> list[Action]:
        """Check one client message and return what to do about it."""
        message_id: MessageId = None
        try:
            size = _byte_size(raw)
            if size > self.limits.max_frame_bytes:
                raise PayloadTooLarge(
                    f"message of {size} bytes is over the {self.limits.max_frame_bytes}-byte limit",
                )
            if not self._bucket.take(now):
                raise RateLimited("too many messages: slow down")
            message = decode_client(raw)
            message_id = message.id
            actions = self._dispatch(message, now)
        except CroupierError as exc:
            self.errors_in_a_row += 1
            actions = [error(exc, message_id)]
            if self.errors_in_a_row >= self.limits.abuse_errors:
                actions.append(Close("abuse", "too many protocol errors in a row"))
            return actions
        self.errors_in_a_row = 0
        return actions

    def _dispatch(
        self, message: Subscribe | Unsubscribe | Publish | Auth | Ping, now: float
    ) -> list[Action]:
        if isinstance(message, Ping):
            return [Reply(control("pong", id=message.id))]
        if isinstance(message, Subscribe):
            return [self._subscribe(message)]
        if isinstance(message, Unsubscribe):
            if message.channel not in self.channels:
                raise BadRequest(
                    f"not subscribed to {message.channel[:255]}", code="not_subscribed"
                )
            del self.channels[message.channel]
            return [DoUnsubscribe(message.channel, message.id)]
        if isinstance(message, Publish):
            return [self._publish(message, now)]
        return self._auth(message)

    def _subscribe(self, message: Subscribe) -> DoSubscribe:
        channel, rules = resolve(self.settings, message.channel)
        if channel in self.channels:
            raise BadRequest(f"already subscribed to {channel}", code="already_subscribed")
        if len(self.channels) >= self.limits.max_subscriptions:
            raise BadRequest(
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
                code="too_many_subscriptions",
            )
        check_subscribe(rules, channel, self.claims)
        since = None
        if message.since is not None:
            since = Position(message.since.offset, message.since.epoch)
        self.channels[channel] = rules
        return DoSubscribe(channel, rules, since, message.id)

    def _publish(self, message: Publish, now: float) -> DoPublish:
        channel, rules = resolve(self.settings, message.channel)
        rule = rules.client_publish.get(message.event)
        if rule is None:
            raise Forbidden(f"{message.event[:128]} is not allowed in {channel}")
        if self.claims is None:
            # Reading a public channel needs no token; speaking in it does, so every
            # reaction and chat line has a player behind it (and a rate limit per player).
            raise Unauthorized(f"publishing {message.event[:128]} needs a player token")
        check_subscribe(rules, channel, self.claims)
        raw = bytes(message.data)
        if len(raw) > rule.max_bytes:
            raise PayloadTooLarge(
                f"{message.event} data is {len(raw)} bytes; the limit in {channel} is "
                f"{rule.max_bytes}"
            )
        key = (channel.split(":", 1)[0], message.event)
        bucket = self._publish_buckets.get(key)
        if bucket is None:
            bucket = self._publish_buckets[key] = TokenBucket(rule.rate, rule.burst, now)
        if not bucket.take(now):
            raise RateLimited(f"{message.event} is limited to {rule.rate:g}/s in {key[0]}")
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # Valid JSON that orjson will not take, e.g. a number that overflows a double.
            raise BadRequest(f"{message.event} data: {exc}", code="bad_message") from None
        if not isinstance(data, dict):
            raise BadRequest(f"{message.event} data must be a JSON object", code="bad_message")
        # Who sent it is the server's word, never the client's.
        sender: dict[str, Any] = {"id": self.claims.sub}
        if self.claims.name:
            sender["name"] = self.claims.name
        data["from"] = sender
        return DoPublish(channel, rules, message.event, orjson.dumps(data), message.id)

    def _auth(self, message: Auth) -> list[Action]:
        claims = self.verify(message.token)
        if self.claims is not None and (claims.sub, claims.brand) != (
            self.claims.sub,
            self.claims.brand,
        ):
            raise BadRequest(
                "a token refresh must be for the same player; reconnect to change player",
                code="identity_change",
            )
        self.claims = claims
        return [
            Authenticated(claims),
            Reply(control("authenticated", id=message.id, user=claims.sub, exp=claims.exp)),
        ]

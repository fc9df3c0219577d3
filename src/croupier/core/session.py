"""The per-connection protocol rules, whatever the wire. No I/O, no wire format.

The connection core hands each client message to :meth:`Session.receive` with its codec's
``decode``; the session checks the message's size and the connection's rate, has the codec
turn it into :mod:`commands <croupier.core.commands>`, checks each, and returns outcomes in
order: replies for the codec to encode, and subscribe / unsubscribe / publish work that has
already passed every check a session can make on its own (size, rate, channel name,
namespace rules, permissions).

Rules:

* Every message costs one token of the connection's bucket; an empty bucket answers
  ``rate_limited``. Player publishes also cost a token of a bucket per (namespace, type).
* Each error answers the message (with its ``id``) and the connection stays, until
  ``abuse_errors`` errors in a row: then the session asks the core to close it (``abuse``).
* ``auth`` may come at any time: it authenticates an anonymous connection or refreshes an
  expiring token, but never changes who the connection is.
* Who may subscribe is the namespace's rule, checked by the ``authorize`` hook the session
  is given (by default :func:`~croupier.core.channels.check_subscribe`; a protocol with its
  own per-subscription proof, or a backend connection holding an API key, brings another).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from . import jsonsafe
from .channels import Claims, check_subscribe, resolve
from .commands import (
    Auth,
    Authenticated,
    Close,
    Command,
    DoHistory,
    DoPresence,
    DoPublish,
    DoRpc,
    DoSubscribe,
    DoUnsubscribe,
    History,
    MessageId,
    Outcome,
    Ping,
    Pong,
    Presence,
    Publish,
    Refuse,
    Refused,
    Rpc,
    Subscribe,
    Unsubscribe,
)
from .ratelimit import TokenBucket

__all__ = ["Authorize", "Decode", "Session", "refused"]

#: Turns one client message into commands. Raises ``CroupierError`` for a message it cannot
#: read (or returns a :class:`~croupier.core.commands.Refuse` to answer with an ``id``).
Decode = Callable[[bytes | str], Sequence[Any]]
#: The per-subscription check: raises ``CroupierError`` when ``claims`` may not subscribe.
Authorize = Callable[[NamespaceRules, str, Claims | None], None]


def _byte_size(raw: bytes | str) -> int:
    """The message's size in UTF-8 bytes; a text frame's ``len`` counts characters."""
    if isinstance(raw, bytes) or raw.isascii():
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def refused(
    exc: CroupierError, message_id: MessageId = None, channel: str | None = None
) -> Refused:
    """The reply to a message that failed with ``exc``."""
    return Refused(exc.code, exc.message, message_id, channel)


class Session:
    """One connection's protocol state: who it is, what it holds, its rate limits.

    Args:
        settings: namespace rules and limits.
        verify: turns a token into claims, raising ``Unauthorized``.
        claims: the claims of the token given at connect time, if any.
        now: the clock reading at connect time (seconds, monotonic).
        authorize: the per-subscription check (see the module's rules).
    """

    __slots__ = (
        "_bucket",
        "_publish_buckets",
        "authorize",
        "channels",
        "claims",
        "errors_in_a_row",
        "limits",
        "settings",
        "verify",
    )

    def __init__(
        self,
        settings: Settings,
        verify: Callable[[str], Claims],
        claims: Claims | None,
        now: float,
        authorize: Authorize = check_subscribe,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.verify = verify
        self.claims = claims
        self.authorize = authorize
        self.channels: dict[str, NamespaceRules] = {}
        self.errors_in_a_row = 0
        # Made at the first message (full, as it would be had it been made now): a connection
        # that only listens never needs one.
        self._bucket: TokenBucket | None = None
        self._publish_buckets: dict[tuple[str, str], TokenBucket] = {}

    # -- messages --------------------------------------------------------------------------

    def receive(self, raw: bytes | str, now: float, decode: Decode) -> list[Outcome]:
        """Check one client message, decode it with ``decode``, and return what to do."""
        try:
            size = _byte_size(raw)
            if size > self.limits.max_frame_bytes:
                raise PayloadTooLarge(
                    f"message of {size} bytes is over the {self.limits.max_frame_bytes}-byte limit",
                )
            bucket = self._bucket
            if bucket is None:
                limits = self.limits
                bucket = self._bucket = TokenBucket(limits.client_rate, limits.client_burst, now)
            if not bucket.take(now):
                raise RateLimited("too many messages: slow down")
            jsonsafe.check_depth(raw, self.limits.max_json_depth)  # decoders recurse
            commands = decode(raw)
        except CroupierError as exc:
            return self._failed(refused(exc))
        out: list[Outcome] = []
        for command in commands:
            out.extend(self.handle(command, now))
        return out

    def handle(self, command: Command | Any, now: float) -> list[Outcome]:
        """Check one command (already paid for) and return what to do about it.

        What is not a command (a reply a codec answers by itself) passes through as it is.
        """
        if type(command) is Subscribe:  # the most common, and every connect URL's: direct
            try:
                subscribe = self._subscribe(command)
            except CroupierError as exc:
                return self._failed(refused(exc, command.id, str(command.channel)[:255]))
            self.errors_in_a_row = 0
            return [subscribe]
        message_id: MessageId = getattr(command, "id", None)
        try:
            outcomes = self._dispatch(command, now)
        except CroupierError as exc:
            # A refused subscription names its channel (the codecs that show it, and the log).
            channel = str(command.channel)[:255] if isinstance(command, Subscribe) else None
            return self._failed(refused(exc, message_id, channel))
        if outcomes and isinstance(outcomes[0], Refused):
            return self._failed(outcomes[0])
        self.errors_in_a_row = 0
        return outcomes

    def fail(self, reply: Refused) -> list[Outcome]:
        """Count an error the core found (a failed subscribe …) and answer it."""
        return self._failed(reply)

    def _failed(self, reply: Refused) -> list[Outcome]:
        self.errors_in_a_row += 1
        out: list[Outcome] = [reply]
        if self.errors_in_a_row >= self.limits.abuse_errors:
            out.append(Close("abuse", "too many protocol errors in a row"))
        return out

    def _dispatch(self, command: Command | Any, now: float) -> list[Outcome]:
        if isinstance(command, Ping):
            return [Pong(command.id)]
        if isinstance(command, Subscribe):
            return [self._subscribe(command)]
        if isinstance(command, Unsubscribe):
            rules = self.channels.pop(command.channel, None)
            if rules is None:
                raise BadRequest(
                    f"not subscribed to {command.channel[:255]}", code="not_subscribed"
                )
            return [DoUnsubscribe(command.channel, rules, command.id)]
        if isinstance(command, Publish):
            return [self._publish(command, now)]
        if isinstance(command, Auth):
            return [self._auth(command)]
        if isinstance(command, Refuse):
            return [Refused(command.code, command.message, command.id)]
        if isinstance(command, Presence):
            channel, rules = self._readable(command.channel)
            if not rules.presence:
                raise BadRequest(f"{channel} keeps no presence", code="not_available")
            return [DoPresence(channel, command.id)]
        if isinstance(command, History):
            channel, rules = self._readable(command.channel)
            if not rules.stored:
                raise BadRequest(f"{channel} keeps no history", code="not_available")
            return [DoHistory(channel, command.id, command.limit, command.since, command.reverse)]
        if isinstance(command, Rpc):
            return [DoRpc(command.method, command.data, command.id)]
        return [command]

    def _readable(self, name: str) -> tuple[str, NamespaceRules]:
        """A channel whose presence or history the client may read: one it may subscribe to."""
        channel, rules = resolve(self.settings, name)
        self.authorize(rules, channel, self.claims)
        return channel, rules

    # -- subscriptions ---------------------------------------------------------------------

    def _subscribe(self, command: Subscribe) -> DoSubscribe:
        channel, rules = resolve(self.settings, command.channel)
        if channel in self.channels:
            raise BadRequest(f"already subscribed to {channel}", code="already_subscribed")
        if len(self.channels) >= self.limits.max_subscriptions:
            raise BadRequest(
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
                code="too_many_subscriptions",
            )
        self.authorize(rules, channel, self.claims)
        self.channels[channel] = rules
        return DoSubscribe(channel, rules, command.since, command.id, command.resume)

    def forget(self, channel: str) -> None:
        """A subscription the core could not make: the channel is free again."""
        self.channels.pop(channel, None)

    def release(self) -> dict[str, NamespaceRules]:
        """The connection ends: every subscription it held, now dropped."""
        channels = self.channels
        self.channels = {}
        return channels

    # -- publishing ------------------------------------------------------------------------

    def _publish(self, command: Publish, now: float) -> DoPublish:
        channel, rules = resolve(self.settings, command.channel)
        rule = rules.client_publish.get(command.type)
        if rule is None:
            raise Forbidden(f"{command.type[:128]} is not allowed in {channel}")
        if self.claims is None:
            # Reading a public channel needs no token; speaking in it does, so every
            # reaction and chat line has a player behind it (and a rate limit per player).
            raise Unauthorized(f"publishing {command.type[:128]} needs a player token")
        check_subscribe(rules, channel, self.claims)
        raw = command.data
        if len(raw) > rule.max_bytes:
            raise PayloadTooLarge(
                f"{command.type} data is {len(raw)} bytes; the limit in {channel} is "
                f"{rule.max_bytes}"
            )
        key = (channel.split(":", 1)[0], command.type)
        bucket = self._publish_buckets.get(key)
        if bucket is None:
            bucket = self._publish_buckets[key] = TokenBucket(rule.rate, rule.burst, now)
        if not bucket.take(now):
            raise RateLimited(f"{command.type} is limited to {rule.rate:g}/s in {key[0]}")
        jsonsafe.check_numbers(raw)  # so that the data decodes and encodes again unchanged
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # Valid JSON that orjson will not take, e.g. a number that overflows a double.
            raise BadRequest(f"{command.type} data: {exc}", code="bad_message") from None
        if not isinstance(data, dict):
            raise BadRequest(f"{command.type} data must be a JSON object", code="bad_message")
        # Who sent it is the server's word, never the client's.
        sender: dict[str, Any] = {"id": self.claims.sub}
        if self.claims.name:
            sender["name"] = self.claims.name
        data["from"] = sender
        only = self.claims.player if rule.private else None
        return DoPublish(channel, rules, command.type, orjson.dumps(data), command.id, only=only)

    # -- the token -------------------------------------------------------------------------

    def _auth(self, command: Auth) -> Authenticated:
        claims = self.verify(command.token)
        if self.claims is not None and (claims.sub, claims.brand) != (
            self.claims.sub,
            self.claims.brand,
        ):
            raise BadRequest(
                "a token refresh must be for the same player; reconnect to change player",
                code="identity_change",
            )
        self.claims = claims
        return Authenticated(claims, command.id)

"""What a connection does about each outcome of its session: the connection core's executor.

:class:`Outcomes` is the half of :class:`~croupier.transports.connection.Connection` that
carries out the session's outcomes: replies go to the codec and out; subscribe (presence
join, a service's starting point, history and the hub), unsubscribe, publish, presence and
history reads and RPCs are awaited in order. It holds no state of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..core.commands import (
    Authenticated,
    Close,
    DoHistory,
    DoPresence,
    DoPublish,
    DoRpc,
    DoSubscribe,
    DoUnsubscribe,
    HistoryPage,
    Outcome,
    PresenceMembers,
    Published,
    Refused,
    Reply,
    RpcResult,
    Snapshot,
    Subscribed,
    Unsubscribed,
)
from ..core.session import Session, refused
from ..errors import BadRequest, CroupierError, shown
from ..events import Event, Position
from ..gateway import Gateway, PublishRequest
from ..hub import SubscribeResult
from .codec import Codec

__all__ = ["Outcomes"]

log = logging.getLogger(__name__)

# The most presence members one answer lists.
PRESENCE_MAX = 10_000


class Outcomes:
    """Carries out a session's outcomes for a :class:`Connection` (a mixin: it holds no
    state; the connection's own attributes and methods, declared here, do the rest)."""

    __slots__ = ()

    gateway: Gateway
    codec: Codec
    session: Session
    client: str
    closed: bool
    seen: dict[str, Event]
    starts: dict[str, Position | None]

    wire: str
    # The connection's own methods this half calls.
    push: Callable[[bytes, Event], None]
    send: Callable[[bytes], None]
    disconnect: Callable[..., None]
    _log: Callable[..., None]
    _source: Callable[[], str]
    _refused: Callable[[Refused], None]

    def _apply_now(self, outcome: Outcome) -> bool:
        """Carry out an outcome that needs no await; return False for one that does."""
        if isinstance(outcome, DoSubscribe):
            return self._subscribe_now(outcome)
        if isinstance(outcome, DoUnsubscribe | DoPresence | DoHistory | DoRpc):
            return False
        if isinstance(outcome, DoPublish):
            handler = self.gateway.hooks.client_handler(outcome.channel, outcome.type)
            if handler is None:
                return False
            # A service summarises these (reactions): they never reach the hub one by one.
            try:
                handler(outcome.channel, outcome.payload)
            except CroupierError as exc:
                self.send(self.codec.encode(refused(exc, outcome.id)))
            else:
                self.send(self.codec.encode(Published(outcome.channel, outcome.id)))
        elif isinstance(outcome, Close):
            self.send(self.codec.encode(Refused(outcome.reason, outcome.message)))
            self.disconnect(outcome.reason, reconnect=outcome.reconnect)
        else:
            # A reply; Authenticated also changes the claims the sweep reads for expiry.
            if self.gateway.debug.watching:
                if isinstance(outcome, Refused):
                    self._refused(outcome)
                elif isinstance(outcome, Authenticated):
                    self._log("authenticated")
            if isinstance(outcome, Refused) and outcome.id is None:
                # A whole message refused (too large, over the rate): a protocol whose
                # replies need a command's id may close instead of leaving it unanswered.
                ending = self.codec.close_for(outcome)
                if ending is not None:
                    self.disconnect(ending[0], reconnect=ending[1])
                    return True
            self.send(self.codec.encode(outcome))
        return True

    async def _apply(self, outcome: Outcome) -> None:
        if self.closed or self._apply_now(outcome):
            return
        if isinstance(outcome, DoSubscribe):
            await self._subscribe(outcome)
        elif isinstance(outcome, DoUnsubscribe):
            self.gateway.hub.unsubscribe(self, outcome.channel)
            self.starts.pop(outcome.channel, None)
            self.seen.pop(outcome.channel, None)
            member = self.codec.member(self.session.claims)
            if member is not None:
                await self.gateway.leave(outcome.channel, self.client, member, outcome.rules)
            self.send(self.codec.encode(Unsubscribed(outcome.channel, outcome.id)))
        elif isinstance(outcome, DoPublish):
            try:
                await self.gateway.publish(
                    PublishRequest(
                        outcome.channel,
                        outcome.type,
                        outcome.payload,
                        ephemeral=True,
                        exclude=outcome.exclude,
                        only=outcome.only,
                        source=self._source(),
                    )
                )
            except CroupierError as exc:
                self.send(self.codec.encode(refused(exc, outcome.id)))
            else:
                self.send(self.codec.encode(Published(outcome.channel, outcome.id)))
        elif isinstance(outcome, DoPresence | DoHistory | DoRpc):
            try:
                reply = await self._read(outcome)
            except CroupierError as exc:
                reply = refused(exc, outcome.id)
            except Exception:
                if not isinstance(outcome, DoRpc):
                    raise
                # A service's handler failed: the caller hears it, the connection stays.
                log.exception("the RPC handler of %r failed", outcome.method)
                reply = refused(CroupierError("the RPC handler failed"), outcome.id)
            if reply is not None:
                self.send(self.codec.encode(reply))

    async def _read(self, outcome: DoPresence | DoHistory | DoRpc) -> Reply | None:
        """The answer to a presence, history or RPC request (``None``: nothing to send)."""
        gateway = self.gateway
        if isinstance(outcome, DoPresence):
            members = await gateway.presence.members(outcome.channel, PRESENCE_MAX)
            return PresenceMembers(outcome.channel, outcome.id, tuple(members))
        if isinstance(outcome, DoHistory):
            since = outcome.since
            history = await gateway.history(
                outcome.channel,
                limit=min(outcome.limit, gateway.settings.limits.recover_max)
                if outcome.limit >= 0
                else gateway.settings.limits.recover_max,
                since=None if since is None else (since.offset, since.epoch),
                reverse=outcome.reverse,
            )
            return HistoryPage(outcome.channel, outcome.id, history.events, history.position)
        handler = gateway.hooks.rpc_handler(outcome.method)
        if handler is None:
            if outcome.id is None:
                return None  # a one-way message nobody takes: nothing to answer
            raise BadRequest(
                f"no handler for the RPC method {shown(outcome.method, 64)}", code="not_available"
            )
        try:
            data = orjson.loads(outcome.data)
        except orjson.JSONDecodeError:
            raise BadRequest("RPC data must be JSON", code="bad_message") from None
        result = await handler(self.session.claims, data)
        if outcome.id is None:
            return None
        return RpcResult(outcome.id, orjson.dumps(result))

    def _subscribe_now(self, do: DoSubscribe) -> bool:
        """Subscribe with no await when nothing on the way needs one: presence kept in this
        process, no service's starting point, no member list in the reply, and where the
        subscriber starts known to the hub. Then no task is made, and the reply leaves with
        whatever else this turn writes. False, having done nothing: :meth:`_subscribe`."""
        gateway = self.gateway
        codec = self.codec
        channel, rules = do.channel, do.rules
        since: Position | None = None
        if do.since is not None:
            if do.since.epoch is None:
                return False  # the channel's current epoch is read from the log
            since = Position(do.since.offset, do.since.epoch)
        member = codec.member(self.session.claims)
        if member is not None and rules.presence and codec.member_list(channel):
            return False  # the reply lists the members: a presence read
        if codec.start is not None or gateway.starting_point(channel) is not None:
            return False  # a service's starting point answers asynchronously
        start = gateway.hub.start_now(channel, since=since, stored=rules.stored)
        if start is None:
            return False
        count = 0
        if member is not None:
            joined = gateway.join_now(channel, self.client, member, rules)
            if joined is None:
                return False  # presence is shared: joining is a round trip
            count = joined
        # Nothing awaited since start_now, so the hub has not moved.
        gateway.hub.subscribe_now(
            self,
            start,
            announce=self._announcer(do, since, count if rules.presence else None, (), (), ()),
            replay=not codec.replay_in_reply,
        )
        return True

    def _announcer(
        self,
        do: DoSubscribe,
        since: Position | None,
        presence: int | None,
        snapshot: tuple[bytes, ...],
        fallback: tuple[bytes, ...],
        members: tuple[Mapping[str, Any], ...],
    ) -> Callable[[SubscribeResult], None]:
        """What tells the client a subscription's outcome, called by the hub just before the
        subscription's first event (see :meth:`Hub.subscribe`)."""
        gateway = self.gateway
        codec = self.codec
        channel, rules = do.channel, do.rules
        resumed = do.since is not None or do.resume

        def announce(result: SubscribeResult) -> None:
            if gateway.debug.watching:
                self._log(
                    "resumed" if resumed else "subscribed",
                    channel=channel,
                    recovered=result.recovered if resumed else None,
                    replayed=result.replayed,
                    offset=None if result.position is None else result.position.offset,
                    since=None if since is None else since.offset,
                )
            position = result.position
            if snapshot and result.recovered:
                position = since  # the events that follow continue the snapshot
            start_at = since if result.recovered else result.position
            self.starts[channel] = start_at if rules.stored else None
            events = result.events if codec.replay_in_reply else ()
            self.send(
                codec.encode(
                    Subscribed(
                        channel,
                        do.id,
                        result.recovered,
                        position,
                        since if result.recovered else None,
                        presence,
                        resumed and not snapshot,
                        events,
                        members,
                    )
                )
            )
            for message in snapshot or (() if result.recovered else fallback):
                self.send(codec.encode(Snapshot(channel, message)))

        return announce

    async def _subscribe(self, do: DoSubscribe) -> None:
        gateway = self.gateway
        codec = self.codec
        channel, rules = do.channel, do.rules
        member = codec.member(self.session.claims)
        joined = False
        try:
            since: Position | None = None
            if do.since is not None:
                epoch = do.since.epoch
                if epoch is None:  # an offset alone is of the channel's current epoch
                    epoch = (await gateway.log.position(channel)).epoch
                since = Position(do.since.offset, epoch)
            count = 0
            if member is not None:
                joined = True
                try:
                    count = await gateway.join(channel, self.client, member, rules)
                except Exception:
                    log.exception("presence join failed for %s", channel)
            # A service's starting point: where a new subscriber starts, and its snapshot and
            # greeting. A resuming one keeps its own position; the messages are its fallback
            # when history cannot cover its gap (it reloads from them instead of from nothing).
            snapshot: tuple[bytes, ...] = ()
            fallback: tuple[bytes, ...] = ()
            start = codec.start or gateway.starting_point(channel)
            if start is not None:
                try:
                    begun = await start(channel, self.session.claims)
                    if since is None:
                        since, snapshot = begun.position, begun.messages
                    else:
                        fallback = begun.messages
                except CroupierError:
                    raise
                except Exception:
                    log.exception("the starting point of %s failed", channel)
            presence = count if rules.presence else None
            members: tuple[Mapping[str, Any], ...] = ()
            listed = codec.member_list(channel)
            if listed and joined and rules.presence:
                members = tuple(await gateway.presence.members(channel, listed))
            announce = self._announcer(do, since, presence, snapshot, fallback, members)
            await gateway.hub.subscribe(
                self,
                channel,
                since=since,
                stored=rules.stored,
                announce=announce,
                replay=not codec.replay_in_reply,
            )
        except CroupierError as exc:
            self.session.forget(channel)
            if joined and member is not None:
                await gateway.leave(channel, self.client, member, rules)
            answer = refused(exc, do.id, channel)
            if gateway.debug.watching:
                self._refused(answer)
            self.send(codec.encode(answer))

    # -- what the console shows ------------------------------------------------------------

"""The gateway: publish = Log.append, then Broker.publish; owns the parts and their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import msgspec
import orjson

from .auth import Authenticator
from .brokers import Broker, broker_from_url
from .cluster import Cluster
from .config import NamespaceRules, Settings
from .connections import OpenConnection
from .core.admission import Admission
from .core.channels import Claims, namespace_of, resolve, validate_type
from .debuglog import DebugLog
from .errors import BadRequest, Overloaded, PayloadTooLarge, Unavailable
from .events import Event, History
from .hooks import ChannelStart, Hooks, Start, StartingPoint
from .hub import Hub
from .logs import Append, Appended, Log, log_from_url, now_ts
from .metrics import Metrics
from .presence import Change, Presence, presence_from_url
from .tasks import Background

__all__ = [
    "Gateway",
    "PublishRequest",
    "PublishResult",
]

log = logging.getLogger(__name__)

_KNOWN_MAX = 50_000  # remembered channel names and types, each
START_REUSE = 1.0  # seconds a starting point's answer serves a channel where nothing moved
_PENDING = Appended(Event("", "", b"null", ""))  # a placeholder until the log answers
PRESENCE_THROTTLE = 1.0  # seconds between presence.count broadcasts on one channel
LEAVE_DELAY = 3.0  # a leave is announced only if the player has not come back by then


class PublishRequest(msgspec.Struct, frozen=True, gc=False):
    channel: str
    type: str
    payload: bytes  # the event's data as JSON
    idempotency_key: str | None = None
    ephemeral: bool = False
    exclude: str | None = None  # a client connection not to deliver it to (see Event)
    only: str | None = None  # the one player to deliver it to (see Event); never stored
    # Who publishes, for the live log: an API key's name ("key:backend") or a player
    # ("player:1001/p1"). Never a secret.
    source: str | None = None


# What a publish returns: the event (numbered, when stored) and whether an idempotency key
# made it a repeat of an earlier one. The log's own answer, passed through as it is.
PublishResult = Appended


def _excluding(result: PublishResult, exclude: str | None) -> PublishResult:
    """``result`` with its event marked not to reach ``exclude`` (a fresh event only)."""
    if exclude is None or result.duplicate or result.event.exclude == exclude:
        return result
    return PublishResult(msgspec.structs.replace(result.event, exclude=exclude))


class Gateway:
    """One node: its log, broker, presence and hub.

    Use as ``async with Gateway(settings):``. The parts are chosen by the settings' URLs
    unless given.

    ``node`` is this node's id (random per process); ``debug`` is its side of the live log
    (emit only ``if gateway.debug.watching``); ``cluster`` asks and tells the other nodes;
    ``hooks`` holds what services attached to it (:mod:`croupier.hooks`); ``connections``
    its open client connections (:class:`~croupier.connections.OpenConnection`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        log: Log | None = None,
        broker: Broker | None = None,
        presence: Presence | None = None,
    ) -> None:
        self.settings = settings
        self.log = log if log is not None else log_from_url(settings.database_url)
        self.broker = (
            broker if broker is not None else broker_from_url(settings.broker_url, self.log)
        )
        self.presence = (
            presence
            if presence is not None
            else presence_from_url(settings.presence_url or settings.broker_url)
        )
        self.hub = Hub(self.log, self.broker, recover_max=settings.limits.recover_max)
        self.broker.bind(self.hub.deliver, self.hub.resync)
        self.auth = Authenticator(settings)
        limits = settings.limits
        self.admission = Admission(limits.admit_rate, limits.admit_burst, time.monotonic())
        self.metrics = Metrics()
        self.node = "n-" + secrets.token_hex(4)
        self.debug = DebugLog(self.node)
        self.cluster = Cluster(self.node, self.hub, self.broker, self.debug)
        self.connections: set[OpenConnection] = set()
        self._stack = contextlib.AsyncExitStack()
        self._background = Background()  # retention, republishing, presence broadcasts
        self._presence_due: dict[str, asyncio.TimerHandle] = {}
        self._leaves: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._count_due: set[str] = set()  # channels whose count changed since last told
        # channel -> player -> the notice about them still to publish (presence.join/leave)
        self._notices: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        self.ready = False
        self._known_channels: dict[str, NamespaceRules] = {}
        self._known_types: set[str] = set()
        self.hooks = Hooks()
        # channel -> (its delivered offset when asked, when answered, the answer)
        self._starts: dict[str, tuple[int | None, float, asyncio.Future[Start]]] = {}
        self.metrics.add_source(self._counts)

    async def __aenter__(self) -> Self:
        await self._stack.enter_async_context(self.log)
        await self._stack.enter_async_context(self.broker)
        await self._stack.enter_async_context(self.presence)
        await self._stack.enter_async_context(self.cluster)
        self._background.spawn(self._trim_forever())
        self.ready = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ready = False
        for handle in [*self._presence_due.values(), *self._leaves.values()]:
            handle.cancel()
        await self._background.close()
        await self.hub.close()
        await self._stack.aclose()

    def _counts(self) -> dict[str, tuple[str, float, str]]:
        return {
            "croupier_connections": ("gauge", len(self.connections), "Open client connections."),
            "croupier_connections_opened": (
                "counter",
                self.metrics.connections_total,
                "Client connections accepted since start.",
            ),
            "croupier_subscriptions": (
                "gauge",
                sum(len(c.channels) for c in self.connections),
                "Channel subscriptions held by open connections.",
            ),
            "croupier_channels": ("gauge", self.hub.channel_count, "Channels with subscribers."),
            "croupier_events_published": (
                "counter",
                self.metrics.published,
                "Events published through this node.",
            ),
            "croupier_events_delivered": (
                "counter",
                self.hub.delivered,
                "Live event deliveries to subscribers.",
            ),
            "croupier_broker_failures": (
                "counter",
                self.metrics.broker_failures,
                "Stored events the broker could not fan out (delivered on resync or resume).",
            ),
            "croupier_slow_consumer_disconnects": (
                "counter",
                self.metrics.slow_consumers,
                "Connections cut off because their outbox overflowed.",
            ),
            "croupier_refused_connections": (
                "counter",
                self.metrics.refused_connections,
                "New connections refused over the admission budget (limits.admit_rate).",
            ),
        }

    # -- publishing ------------------------------------------------------------------------

    def check(self, request: PublishRequest) -> NamespaceRules:
        """Validate a request without storing it.

        Raises:
            BadRequest: bad channel name, unknown namespace, bad type.
            PayloadTooLarge: the payload is over the publish limit.
        """
        # Channel names and types repeat endlessly; each is checked once, then remembered.
        rules = self._known_channels.get(request.channel)
        if rules is None:
            _, rules = resolve(self.settings, request.channel)
            if len(self._known_channels) >= _KNOWN_MAX:
                self._known_channels.clear()
            self._known_channels[request.channel] = rules
        if request.type not in self._known_types:
            validate_type(request.type)
            if len(self._known_types) >= _KNOWN_MAX:
                self._known_types.clear()
            self._known_types.add(request.type)
        limit = self.settings.limits.max_publish_bytes
        if len(request.payload) > limit:
            raise PayloadTooLarge(
                f"event data is {len(request.payload)} bytes; the limit is {limit}"
            )
        return rules

    async def publish(self, request: PublishRequest) -> PublishResult:
        """Validate, store (unless ephemeral) and fan out one event.

        Raises:
            BadRequest, PayloadTooLarge: the request is invalid; nothing was stored.
            Unavailable: the log could not store it; nothing was delivered.
        """
        return (await self.publish_many([request]))[0]

    async def publish_many(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """Publish several events: all are validated first, stored ones in one log append.

        Either every stored event is stored, or none is (and ``Unavailable`` is raised).
        """
        started = time.perf_counter()
        ts = now_ts()
        results: list[PublishResult] = []
        appends: list[Append] = []
        where: list[int] = []
        check = self.check
        excluding = False
        for request in requests:
            excluding = excluding or request.exclude is not None
            rules = check(request)
            # Stored and sent as given: SSE framing takes care of line breaks (core.sse).
            payload = request.payload
            if request.ephemeral or not rules.stored or request.only is not None:
                event = Event(
                    request.channel,
                    request.type,
                    payload,
                    ts,
                    exclude=request.exclude,
                    only=request.only,
                )
                results.append(PublishResult(event))
            else:
                where.append(len(results))
                results.append(_PENDING)
                appends.append(
                    Append(request.channel, request.type, payload, ts, request.idempotency_key)
                )
        if appends:
            append_started = time.perf_counter()
            try:
                stored = await self.log.append(appends)
            except Unavailable:
                raise
            except Exception as exc:
                raise Unavailable(f"the log could not store the events: {exc}") from exc
            self.metrics.append_seconds.observe(time.perf_counter() - append_started)
            if len(where) == len(results):
                results = stored
            else:
                for i, appended in zip(where, stored, strict=True):
                    results[i] = appended
            if excluding:
                results = [_excluding(r, q.exclude) for r, q in zip(results, requests, strict=True)]
        done = results
        fresh = [r.event for r in done if not r.duplicate]
        if fresh:
            try:
                await self.broker.publish(fresh)
            except Unavailable as exc:
                if not appends:
                    raise  # ephemeral only: nothing was kept, so the caller must know
                # The events are durably stored: the answer is still yes. They are sent
                # again in the background until the broker takes them (nodes that resynced
                # meanwhile drop the copies by offset); a resuming client reads them anyway.
                self.metrics.broker_failures += 1
                log.warning("stored events not fanned out yet: %s", exc)
                self._background.spawn(self._republish([e for e in fresh if e.offset is not None]))
        self.metrics.published += len(fresh)
        if self.debug.watching:
            self._log_published(requests, done)
        self.hooks.published(fresh)
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        return done

    def _log_published(
        self, requests: Sequence[PublishRequest], results: list[PublishResult]
    ) -> None:
        emit = self.debug.emit
        for request, result in zip(requests, results, strict=True):
            event = result.event
            emit(
                "published",
                channel=event.channel,
                type=event.type,
                offset=event.offset,
                size=len(event.payload),
                by=request.source,
                duplicate=result.duplicate or None,
            )

    def admit(self) -> None:
        """Count one new connection against the node's budget (``limits.admit_rate``).

        Raises:
            Overloaded: over budget; its ``retry_after`` says when to come back.
        """
        wait = self.admission.admit(time.monotonic())
        if wait is not None:
            self.metrics.refused_connections += 1
            raise Overloaded(wait)

    def starting_point(self, channel: str) -> StartingPoint | None:
        """The starting point of ``channel``'s namespace. Its channel part is shared: the
        new subscribers of a channel that arrive while it runs take its answer instead of
        asking again, and so do those that arrive within :data:`START_REUSE` of it while
        nothing new was delivered on the channel (a crowd arriving at once costs the service
        one answer, not one each); a greeting's messages follow it, asked for each
        subscriber."""
        hooks = self.hooks.starting_point(channel)
        if hooks is None:
            return None
        start, greeting = hooks

        async def begin(channel: str, claims: Claims | None) -> Start:
            answer = Start() if start is None else await self._shared_start(start, channel)
            if greeting is None:
                return answer
            messages = await greeting(channel, claims)
            if not messages:
                return answer
            return Start(answer.position, (*answer.messages, *messages))

        return begin

    async def _shared_start(self, start: ChannelStart, channel: str) -> Start:
        at = self.hub.delivered_to(channel)
        found = self._starts.get(channel)
        if found is not None:
            asked_at, answered, future = found
            if not future.done() or (
                at is not None and asked_at == at and time.monotonic() - answered < START_REUSE
            ):
                return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._starts[channel] = (at, math.inf, future)
        try:
            answer = await start(channel)
        except BaseException as exc:
            if self._starts.get(channel, (None, 0.0, None))[2] is future:
                del self._starts[channel]
            future.set_exception(exc)
            future.exception()  # retrieved: the subscribers waiting see it through await
            raise
        future.set_result(answer)
        if self._starts.get(channel, (None, 0.0, None))[2] is future:
            self._starts[channel] = (at, time.monotonic(), future)
        if len(self._starts) > _KNOWN_MAX:
            self._starts = {c: v for c, v in self._starts.items() if not v[2].done()}
        return answer

    async def history(
        self,
        channel: str,
        *,
        limit: int,
        since: tuple[int, str | None] | None = None,
        reverse: bool = False,
    ) -> History:
        """Up to ``limit`` stored events of ``channel`` and where it stands.

        Oldest first: the oldest kept events, or every event after ``since`` (an offset and
        an epoch, ``None`` for the current one) if the log still holds them all. With
        ``reverse``: newest first, the latest ones (before ``since``'s offset, when given).
        ``limit`` 0 reads only the position.

        Raises:
            BadRequest: ``unrecoverable_position``: ``since`` is of another epoch, or events
                after it are no longer kept (nothing partial is returned).
        """
        log = self.log
        top = await log.position(channel)
        if since is not None and since[1] is not None and since[1] != top.epoch:
            raise BadRequest(
                f"the epoch of {channel} is {top.epoch}, not {since[1]}: its history was lost",
                code="unrecoverable_position",
            )
        if limit <= 0:
            return History((), top, top.offset + 1)
        if not reverse:
            after = 0 if since is None else since[0]
            history = await log.read(channel, after, limit)
            if since is not None and after < history.position.offset and history.first > after + 1:
                raise BadRequest(
                    f"{channel} no longer keeps the events after offset {after}",
                    code="unrecoverable_position",
                )
            return history
        before = top.offset + 1 if since is None else since[0]
        after = max(before - 1 - limit, 0)
        if before - 1 <= after:
            return History((), top, top.offset + 1)
        history = await log.read(channel, after, before - 1 - after)
        events = [e for e in history.events if e.offset is not None and e.offset < before]
        return History(tuple(reversed(events[-limit:])), history.position, history.first)

    async def _republish(self, events: list[Event]) -> None:
        delay = 0.2
        for _ in range(12):  # about a minute in all
            await asyncio.sleep(delay)
            try:
                await self.broker.publish(events)
                return
            except Unavailable:
                delay = min(delay * 2, 10.0)
        log.error("gave up fanning out %d stored events; clients get them on resume", len(events))

    async def publish_json(
        self, channel: str, type: str, data: Any, **options: Any
    ) -> PublishResult:
        """Publish ``data`` (any JSON-serialisable value) — the services' entry point."""
        return await self.publish(PublishRequest(channel, type, orjson.dumps(data), **options))

    # -- presence --------------------------------------------------------------------------
    #
    # Per channel, at most one publish per PRESENCE_THROTTLE: the players who arrived or went
    # meanwhile (one presence.join / presence.leave each, in the order it happened) and, if
    # anyone joined or left, the count. Deciding whether a join or leave is a player's first
    # or last connection costs the same whatever the channel's size (Presence.join/leave).

    def join_now(
        self, channel: str, client: str, info: dict[str, Any], rules: NamespaceRules
    ) -> int | None:
        """:meth:`join` done at once when presence needs no I/O for it (it is in-process);
        ``None``, having done nothing, when it does."""
        change: Change | None = None
        if rules.presence:
            change = self.presence.join_now(channel, client, info)
            if change is None:
                return None
        if self.hooks.hears_presence:
            self.hooks.presence(channel, client, info, True)
        return self._joined(channel, info, rules, change)

    async def join(
        self, channel: str, client: str, info: dict[str, Any], rules: NamespaceRules
    ) -> int:
        """Record a subscriber in presence; return the channel's count."""
        count = self.join_now(channel, client, info, rules)
        if count is not None:
            return count
        if self.hooks.hears_presence:
            self.hooks.presence(channel, client, info, True)
        change = await self.presence.join(channel, client, info)
        return self._joined(channel, info, rules, change)

    def _joined(
        self, channel: str, info: dict[str, Any], rules: NamespaceRules, change: Change | None
    ) -> int:
        """What follows a join recorded in presence (``change``; None: the namespace keeps
        no presence): the count due, a join notice."""
        if change is None:
            return 0
        self._presence_changed(channel)
        user = info.get("id")
        if rules.join_leave and user is not None:
            handle = self._leaves.pop((channel, str(user)), None)
            if handle is not None:
                handle.cancel()  # back within the grace period: nobody hears about it
            elif change.player:
                # A player's second connection (another tab) is not a second arrival.
                self._notice(channel, str(user), "presence.join", info)
        return change.total

    def leave_now(
        self, channel: str, client: str, info: dict[str, Any], rules: NamespaceRules
    ) -> bool:
        """:meth:`leave` done at once when presence needs no I/O for it (it is in-process);
        False, having done nothing, when it does."""
        change = self.presence.leave_now(channel, client) if rules.presence else None
        if rules.presence and change is None:
            return False
        if self.hooks.hears_presence:
            self.hooks.presence(channel, client, info, False)
        if change is not None:
            self._left(channel, info, rules, change.player)
        return True

    async def leave(
        self, channel: str, client: str, info: dict[str, Any], rules: NamespaceRules
    ) -> None:
        """Forget a subscriber in presence."""
        if self.leave_now(channel, client, info, rules):
            return
        if self.hooks.hears_presence:
            self.hooks.presence(channel, client, info, False)
        try:
            last = (await self.presence.leave(channel, client)).player
        except Exception:
            log.exception("presence leave failed for %s", channel)
            last = True  # the grace period's check decides
        self._left(channel, info, rules, last)

    def _left(self, channel: str, info: dict[str, Any], rules: NamespaceRules, last: bool) -> None:
        """What follows a leave recorded in presence (``last``: the player's last connection
        there, as far as is known): the count due, a leave notice after the grace period."""
        self._presence_changed(channel)
        if rules.join_leave and last and info.get("id") is not None:
            key = (channel, str(info["id"]))
            loop = asyncio.get_running_loop()
            old = self._leaves.pop(key, None)
            if old is not None:
                old.cancel()
            self._leaves[key] = loop.call_later(LEAVE_DELAY, self._announce_leave, key, info)

    def _announce_leave(self, key: tuple[str, str], info: dict[str, Any]) -> None:
        self._leaves.pop(key, None)
        self._background.spawn(self._leave_unless_present(key[0], key[1], info))

    async def _leave_unless_present(self, channel: str, user: str, info: dict[str, Any]) -> None:
        """Announce that ``user`` left, unless a connection of theirs is in again (on any
        node)."""
        try:
            if await self.presence.connections(channel, user):
                return
        except Unavailable as exc:
            log.warning("presence of %s unavailable: %s", channel, exc)
        self._notice(channel, user, "presence.leave", info)

    def _notice(self, channel: str, user: str, type: str, info: dict[str, Any]) -> None:
        """Queue a join or leave notice for the channel's next presence publish.

        A player whose opposite notice is still queued cancels it and stays silent: a join
        then a leave (or a leave then a join) within one window changed nothing visible.
        """
        queued = self._notices.setdefault(channel, {})
        previous = queued.pop(user, None)
        if previous is None or previous[0] == type:
            queued[user] = (type, info)
        elif not queued:
            del self._notices[channel]
        self._presence_due_at(channel)

    def _presence_changed(self, channel: str) -> None:
        self._count_due.add(channel)
        self._presence_due_at(channel)

    def _presence_due_at(self, channel: str) -> None:
        if channel in self._presence_due:
            return
        loop = asyncio.get_running_loop()
        self._presence_due[channel] = loop.call_later(
            PRESENCE_THROTTLE, lambda: self._background.spawn(self._broadcast_presence(channel))
        )

    async def _broadcast_presence(self, channel: str) -> None:
        """Publish what changed in ``channel``'s presence since the last time, in one go."""
        self._presence_due.pop(channel, None)
        notices = self._notices.pop(channel, {})
        requests = [
            PublishRequest(channel, type, orjson.dumps(info), ephemeral=True)
            for type, info in notices.values()
        ]
        if channel in self._count_due:
            self._count_due.discard(channel)
            try:
                count = await self.presence.count(channel)
            except Unavailable as exc:
                log.warning("presence count of %s unavailable: %s", channel, exc)
            else:
                body = orjson.dumps({"count": count})
                requests.append(PublishRequest(channel, "presence.count", body, ephemeral=True))
        if requests:
            await self._publish_quietly(requests)

    async def _publish_quietly(self, requests: list[PublishRequest]) -> None:
        """Publish presence notices; a broker outage costs only these notices."""
        try:
            await self.publish_many(requests)
        except Unavailable as exc:
            log.warning("presence of %s not sent: %s", requests[0].channel, exc)

    # -- retention -------------------------------------------------------------------------

    def retention(self, channel: str) -> tuple[int, float] | None:
        rules = self.settings.rules_for(namespace_of(channel))
        if rules is None:
            return None
        return rules.history_size, rules.history_ttl

    async def _trim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.trim_interval)
            try:
                removed = await self.log.trim(self.retention)
                if removed:
                    log.info("retention removed %d events", removed)
            except Exception:
                log.exception("retention trim failed")

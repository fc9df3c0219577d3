"""The live sports service: sporting events, score updates, reaction summaries, viewer counts.

Rules:

* Score updates of one event are numbered 1, 2, 3 … (``seq``) in a transaction that locks the
  event's row, then published as stored ``score.updated`` events on ``match:{id}`` with the
  idempotency key ``sports:{id}:{seq}``. An update stored but not yet published (the log was
  down) is published again before the next one, so ``seq`` has no gap on the channel.
* Reactions players publish on ``match:*`` never reach the hub: the gateway hands them to
  :meth:`Sports.react`, which counts them. Once a second every node publishes its partial
  tally on the internal channel :data:`PARTIALS`; every node merges all partials and hands
  the merged ``reactions.summary`` to its own viewers only. One small message per node, per
  event with reactions, per second crosses the broker, and one summary per event per second
  reaches each viewer.
* A viewer is counted on join (any subscription to ``match:{id}``: ``/ws``, SSE or
  ``/ws/events``) and uncounted when gone for :data:`~.viewers.GRACE` seconds. Counted
  viewers are mirrored into the gateway's presence under ``sports-viewers:{id}``, so with
  Redis presence the count covers every node. ``viewers.count`` goes to this node's viewers
  at most once a second, when the count changed; the peak is kept in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...api.openapi import Operation
from ...errors import Conflict, NotFound
from ...events import Event, Position
from ...gateway import Gateway
from ...hooks import Start
from ...logs import now_ts
from ...storage import Database
from ...tasks import stop_task
from . import api, rules, store
from .reactions import Summary, Tally, validate_reaction
from .rules import Status
from .store import SportEvent
from .viewers import ViewerBook

__all__ = ["PARTIALS", "VIEWERS_PREFIX", "Sports"]

log = logging.getLogger(__name__)

PARTIALS = "sports.reactions"  # internal broker channel of the nodes' partial tallies
VIEWERS_PREFIX = "sports-viewers:"  # presence key of an event's counted viewers
_FLUSH_AT = 0.02  # seconds past each second: drain the local tally and publish it
_SUMMARY_AT = 0.1  # seconds past each second: merged summaries and viewer counts go out


def iso(seconds: float) -> str:
    return now_ts(seconds)


class _Partials:
    """The listener of :data:`PARTIALS`: merges every node's partial tally."""

    def __init__(self, merged: Tally) -> None:
        self.merged = merged

    def __call__(self, event: Event) -> None:
        try:
            doc = orjson.loads(event.payload)
            for event_id, part in doc["events"].items():
                self.merged.merge(
                    event_id,
                    Summary(
                        float(part["start"]),
                        float(part["end"]),
                        int(part["total"]),
                        {str(k): int(v) for k, v in part["counts"].items()},
                        list(part["samples"]),
                    ),
                )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("dropped a malformed reaction partial")


class Sports:
    """Use as ``async with``: migrates, hooks into the gateway, runs the once-a-second tick."""

    def __init__(self, gateway: Gateway, database: Database) -> None:
        self.gateway = gateway
        self.db = database
        self.local = Tally()  # this node's reactions since the last flush
        self.merged = Tally()  # every node's partials since the last summary
        self.book = ViewerBook()
        self._partials = _Partials(self.merged)
        # One lock per event while anyone holds or waits for it: (lock, users).
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._joined: list[tuple[str, str]] = []  # newly counted, not yet in presence
        self._left: list[tuple[str, str]] = []  # uncounted, not yet out of presence
        self._dirty: set[str] = set()
        self._sent: dict[str, int] = {}  # the last viewers.count sent per event
        self._peaks: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.window_start = math.floor(time.time())
        self.warnings = 0  # consistency findings on score updates taken, since the start
        gateway.metrics.add_source(
            lambda: {
                "croupier_sports_update_warnings": (
                    "counter",
                    self.warnings,
                    "Consistency findings on score updates that were taken with warnings.",
                )
            }
        )

    async def __aenter__(self) -> Self:
        await self.db.migrate("sports", store.MIGRATIONS)
        gateway = self.gateway
        gateway.hooks.handle_client_publish("match", "reaction", self.react)
        gateway.hooks.on_presence(self._on_presence)
        gateway.hooks.on_fresh_subscribe("match", self.starting_point)
        await gateway.hub.listen(PARTIALS, self._partials)
        self._task = asyncio.ensure_future(self._tick_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None
        self.gateway.hub.unlisten(PARTIALS, self._partials)

    @contextlib.asynccontextmanager
    async def _serial(self, event_id: str) -> AsyncIterator[None]:
        """Run the block alone among this node's changes of ``event_id``."""
        lock, users = self._locks.get(event_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[event_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[event_id]
            if users == 1:
                del self._locks[event_id]
            else:
                self._locks[event_id] = (lock, users - 1)

    def routes(self) -> list[web.RouteDef]:
        return api.routes(self)

    @property
    def operations(self) -> Sequence[Operation]:
        return api.OPERATIONS

    # -- sporting events ---------------------------------------------------------------------

    async def create(
        self,
        event_id: str,
        sport: str,
        title: str,
        competitors: tuple[str, ...],
        starts_at: str | None,
    ) -> SportEvent:
        """Store a new scheduled event.

        Raises:
            Conflict: the id is taken.
        """
        event = SportEvent(
            id=event_id,
            sport=sport,
            title=title,
            competitors=competitors,
            status=Status.SCHEDULED,
            starts_at=starts_at,
            created_ms=int(time.time() * 1000),
            seq=0,
            published_seq=0,
            snapshot={},
            last_update=None,
            pub_snapshot={},
            snap_offset=None,
            snap_epoch=None,
            peak=0,
        )
        if not await store.insert(self.db, event):
            raise Conflict(f"a sporting event {event_id} exists already")
        return event

    async def get(self, event_id: str) -> SportEvent:
        event = await store.get(self.db, event_id)
        if event is None:
            raise NotFound(f"no sporting event {event_id}")
        return event

    async def find(self, status: Status | None, limit: int) -> list[SportEvent]:
        return await store.list_events(self.db, status, limit)

    async def set_status(self, event_id: str, wanted: Status) -> SportEvent:
        """Move the event to ``wanted`` and publish ``sport.event.updated``.

        Asking for the status it already has publishes the notice again (a retry after a
        failed publish), without a second copy on the channel.

        Raises:
            NotFound, Conflict: no such event; the move is not allowed.
            Unavailable: the log could not take the notice (the status is changed).
        """
        async with self._serial(event_id):
            async with self.db.transaction() as tx:
                event = await store.get(tx, event_id, lock=True)
                if event is None:
                    raise NotFound(f"no sporting event {event_id}")
                if event.status is not wanted:
                    event = replace(event, status=rules.transition(event.status, wanted))
                    await store.save(tx, event)
            await self.gateway.publish_json(
                event.channel,
                "sport.event.updated",
                self.view(event),
                idempotency_key=f"sports:{event_id}:status:{wanted.value}",
            )
            return event

    async def update(
        self, event_id: str, doc: dict[str, Any]
    ) -> tuple[SportEvent, Event, list[rules.Finding]]:
        """Validate, number, store and publish one score update.

        The published ``score.updated`` carries ``doc`` exactly as the feed sent it (its own
        keys, its string values) beside Croupier's ``eventId``, ``sport``, ``seq``, the
        canonical ``update`` and the folded ``snapshot``.

        Returns the event after it, the published ``score.updated`` event, and the
        consistency findings on the update (it was taken all the same).

        Raises:
            NotFound: no such event.
            BadRequest: the update is not of the sport's shape; nothing changed.
            Conflict: the event is not live.
            Unavailable: the log is down. The update is stored and is published before the
                next one.
        """
        async with self._serial(event_id):
            event = await self.get(event_id)
            if event.published_seq < event.seq and event.last_update is not None:
                await self._publish_score(event, event.last_update, event.snapshot)
            async with self.db.transaction() as tx:
                locked = await store.get(tx, event_id, lock=True)
                if locked is None:
                    raise NotFound(f"no sporting event {event_id}")
                event = locked
                if event.status is not Status.LIVE:
                    raise Conflict(
                        f"{event_id} is {event.status.value}: score updates are taken while live"
                    )
                update = rules.validate_update(event.sport, doc, event.competitors)
                snapshot, findings = rules.fold(
                    event.sport, event.snapshot, update, event.competitors
                )
                seq = event.seq + 1
                # Croupier's fields win over a feed key of the same name (no sport's shape
                # has one: unknown keys are refused).
                data = {**doc, "eventId": event.id, "sport": event.sport, "seq": seq}
                data["update"] = update
                event = replace(event, seq=seq, snapshot=snapshot, last_update=data)
                await store.save(tx, event)
            self.warnings += len(findings)
            published = await self._publish_score(event, data, snapshot)
            return event, published, findings

    async def _publish_score(
        self, event: SportEvent, data: dict[str, Any], snapshot: dict[str, Any]
    ) -> Event:
        """Publish the ``score.updated`` of ``data`` (a stored update, see :meth:`update`)."""
        if "update" not in data:  # stored before updates kept the feed's own payload
            data = {"eventId": event.id, "sport": event.sport, "seq": event.seq, "update": data}
        seq = int(data["seq"])
        result = await self.gateway.publish_json(
            event.channel,
            "score.updated",
            {**data, "snapshot": snapshot},
            idempotency_key=f"sports:{event.id}:{seq}",
        )
        published = result.event
        await store.mark_published(
            self.db, event.id, seq, snapshot, published.offset, published.epoch
        )
        return published

    async def starting_point(self, channel: str) -> Start:
        """Where a new subscriber of ``channel`` starts: the snapshot, and its position (the
        same for every viewer: see :data:`~croupier.gateway.ChannelStart`)."""
        event = await store.get(self.db, channel[6:]) if channel.startswith("match:") else None
        if event is None:
            return Start()  # a match channel without a sporting event: a plain channel
        return await self.start_of(event)

    async def start_of(self, event: SportEvent) -> Start:
        """The ``snapshot`` message of ``event`` and the channel position it stands at.

        Subscribing from that position gives every later update exactly once: the snapshot
        and the position are of the same published update.
        """
        if event.snap_offset is not None and event.snap_epoch is not None:
            since = Position(event.snap_offset, event.snap_epoch)
        else:
            # No update published yet: every stored event of the channel is new to a viewer.
            since = Position(0, (await self.gateway.log.position(event.channel)).epoch)
        # Shaped as an (unstored) event of the channel, so clients route it as they do events.
        snapshot = orjson.dumps(
            {
                "type": "snapshot",
                "channel": event.channel,
                "ts": now_ts(),
                "data": {
                    "eventId": event.id,
                    "sport": event.sport,
                    "seq": event.published_seq,
                    "snapshot": event.pub_snapshot,
                    "position": None if event.snap_offset is None else since.as_dict(),
                    "event": self.view(event),
                },
            }
        )
        return Start(since, (snapshot,))

    def view(self, event: SportEvent) -> dict[str, Any]:
        """The sporting event resource."""
        return {
            "id": event.id,
            "sport": event.sport,
            "title": event.title,
            "competitors": list(event.competitors),
            "status": event.status.value,
            "startsAt": event.starts_at,
            "channel": event.channel,
            "seq": event.published_seq,
        }

    # -- viewers -----------------------------------------------------------------------------

    def _on_presence(self, channel: str, client: str, info: dict[str, Any], joined: bool) -> None:
        if not channel.startswith("match:"):
            return
        event_id = channel[6:]
        viewer = info.get("id")
        viewer = client if viewer is None else str(viewer)
        if joined:
            if self.book.join(event_id, viewer):
                self._joined.append((event_id, viewer))
                self._dirty.add(event_id)
        else:
            self.book.leave(event_id, viewer, time.monotonic())

    async def viewers(self, event_id: str) -> tuple[int, int]:
        """Current viewers of the event (every node's, with Redis presence) and the peak."""
        event = await self.get(event_id)
        count = await self.gateway.presence.count(VIEWERS_PREFIX + event_id)
        return count, max(count, event.peak, self._peaks.get(event_id, 0))

    async def _sync_viewers(self) -> None:
        presence = self.gateway.presence
        self._left.extend(self.book.expire(time.monotonic()))
        # Joins and leaves the presence store has not taken yet are kept for the next tick.
        while self._joined:
            event_id, viewer = self._joined[0]
            await presence.join(VIEWERS_PREFIX + event_id, viewer, {"id": viewer})
            self._joined.pop(0)
        while self._left:
            event_id, viewer = self._left[0]
            self._dirty.add(event_id)
            await presence.leave(VIEWERS_PREFIX + event_id, viewer)
            self._left.pop(0)
        watched = {*self.book.events(), *self._sent}
        # With presence shared between nodes, another node's viewers move the count too.
        for event_id in watched | self._dirty:
            count = await presence.count(VIEWERS_PREFIX + event_id)
            if self._sent.get(event_id) == count:
                continue
            peak = self._peaks.get(event_id, 0)
            if count > peak:
                # A match channel without a sporting event has no row: its peak is its own.
                peak = max(count, await store.raise_peak(self.db, event_id, count))
                self._peaks[event_id] = peak
            self._deliver(
                event_id, "viewers.count", {"eventId": event_id, "viewers": count, "peak": peak}
            )
            if count or self.book.count(event_id):
                self._sent[event_id] = count
            else:
                self._sent.pop(event_id, None)
                self._peaks.pop(event_id, None)
        self._dirty.clear()

    # -- reactions ---------------------------------------------------------------------------

    def react(self, channel: str, payload: bytes) -> None:
        """Count one reaction a player published on ``channel`` (the gateway's handler).

        Raises:
            BadRequest: not a reaction (code ``bad_reaction``).
        """
        data = orjson.loads(payload)
        sender = data.get("from") or {}
        reaction = validate_reaction(str(sender.get("id")), data)
        start = self.window_start
        self.local.add(channel[6:], reaction, start, start + 1.0)

    async def _flush(self) -> None:
        """Publish this node's tally to every node (this one included)."""
        self.window_start = math.floor(time.time())
        drained = self.local.drain()
        if not drained:
            return
        # One small message per event: the PostgreSQL broker carries at most 8,000 bytes.
        ts = now_ts()
        await self.gateway.broker.publish(
            [
                Event(PARTIALS, "reactions.partial", orjson.dumps({"events": {k: v.as_dict()}}), ts)
                for k, v in drained.items()
            ]
        )

    def _summaries(self) -> None:
        for event_id, summary in self.merged.drain().items():
            self._deliver(
                event_id,
                "reactions.summary",
                {
                    "eventId": event_id,
                    "window": {"start": iso(summary.start), "end": iso(summary.end)},
                    "total": summary.total,
                    "counts": summary.counts,
                    "samples": summary.samples,
                },
            )

    def _deliver(self, event_id: str, type: str, data: dict[str, Any]) -> None:
        """Hand an ephemeral event to this node's subscribers of the match only."""
        self.gateway.hub.deliver(Event(f"match:{event_id}", type, orjson.dumps(data), now_ts()))

    # -- the clock ---------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            now = time.time()
            await asyncio.sleep(math.floor(now) + 1 + _FLUSH_AT - now)
            try:
                await self._flush()
            except Exception:
                log.exception("publishing the reaction tally failed")
            now = time.time()
            await asyncio.sleep(max(0.0, math.floor(now) + _SUMMARY_AT - now))
            try:
                self._summaries()
                await self._sync_viewers()
            except Exception:
                log.exception("the sports tick failed")

"""The notification centre as a service: create, list, mark read, publish, maintain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from ...api.openapi import Operation
from ...errors import Conflict, CroupierError
from ...gateway import Gateway
from ...storage import Database, Row
from ...tasks import Background, stop_task
from ..players import Player, now_ms, parse_cursor
from . import store
from .api import OPERATIONS, routes
from .rules import CURSOR, RETENTION_DAYS, encode_details, validate_event, validate_message_id
from .schemas import NewNotification

__all__ = ["NotificationsService"]

log = logging.getLogger(__name__)

_GROUP = 256  # single creates that share one transaction, at most


class NotificationsService:
    """Use as ``async with``: migrates its table and runs the maintenance task.

    Args:
        retention: seconds a notification is kept.
        interval: seconds between maintenance runs (re-publishing what could not be
            published, purging what is past ``retention``).
    """

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        *,
        retention: float = RETENTION_DAYS * 86400.0,
        interval: float = 60.0,
    ) -> None:
        self.gateway = gateway
        self.db = database
        self.retention_ms = int(retention * 1000)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._published: list[tuple[str]] = []
        self._flush: asyncio.TimerHandle | None = None
        self._flushing = Background()
        self._queued: list[tuple[store.Prepared, int, asyncio.Future[tuple[Row, bool]]]] = []
        self._inserter: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await store.migrate_table(self.db)
        self._task = asyncio.ensure_future(self._maintain())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None
        if self._inserter is not None:
            await asyncio.gather(self._inserter, return_exceptions=True)
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await self._flushing.wait()
        await self._mark_published()

    # -- operations ----------------------------------------------------------------------

    async def create(
        self, items: Sequence[tuple[Player, NewNotification]]
    ) -> list[tuple[Player, dict[str, Any], bool]]:
        """Store ``items`` (all or none), then publish the new ones.

        Returns ``(player, notification, duplicate)`` per item, in order.

        Raises:
            BadRequest, PayloadTooLarge: an item is invalid; nothing was stored.
            Conflict: a ``message_id`` belongs to another player; nothing was stored.
        """
        prepared = [
            (
                who,
                validate_message_id(item.message_id),
                validate_event(item.event),
                encode_details(item.event_details).decode(),
            )
            for who, item in items
        ]
        created = now_ms()
        if len(prepared) == 1:
            rows = [await self._insert_grouped(prepared[0], created)]
        else:
            async with self.db.transaction() as tx:
                rows = [await store.insert(tx, *p, created) for p in prepared]
        # A duplicate that was never published (the log was down) is published now.
        await self._push([row for row, _ in rows if not row["pushed"]])
        return [
            (Player(row["brand"], row["player"]), store.notification_of(row), duplicate)
            for row, duplicate in rows
        ]

    async def _insert_grouped(self, prepared: store.Prepared, created: int) -> tuple[Row, bool]:
        """Insert one notification, in one statement with those arriving meanwhile.

        Single creates are the common case and each alone would cost a statement and a
        commit; while one insert runs, the next ones queue and go in together (at most
        ``_GROUP``).
        """
        fut: asyncio.Future[tuple[Row, bool]] = asyncio.get_running_loop().create_future()
        self._queued.append((prepared, created, fut))
        if self._inserter is None or self._inserter.done():
            self._inserter = asyncio.ensure_future(self._insert_queued())
        return await fut

    async def _insert_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:_GROUP], self._queued[_GROUP:]
            outcomes: list[tuple[Row, bool] | CroupierError] = []
            try:
                # One statement for the whole group (atomic without a transaction around it);
                # the rare repeat of a message_id is then looked at on its own.
                inserted = await store.insert_many(self.db, [(p, c) for p, c, _ in batch])
                fresh = {row["message_id"]: row for row in inserted}
                for prepared, created, _ in batch:
                    row = fresh.pop(prepared[1], None)
                    if row is not None:
                        outcomes.append((row, False))
                        continue
                    try:
                        outcomes.append(await store.insert(self.db, *prepared, created))
                    except Conflict as exc:  # nothing written for it: the rest go on
                        outcomes.append(exc)
            except Exception as exc:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, _, fut), outcome in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if isinstance(outcome, CroupierError):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    async def _push(self, rows: list[Row]) -> None:
        """Publish ``rows`` and mark them published; on failure they wait for maintenance."""
        if not rows:
            return
        try:
            await self.gateway.publish_many([store.publish_request(row) for row in rows])
        except CroupierError as exc:
            log.warning("%d notifications stored but not published yet: %s", len(rows), exc)
            return
        for row in rows:
            row["pushed"] = 1
        # Marked in batches: one write for many notifications, off the request's path. A mark
        # lost in a crash only means maintenance publishes again under the same key.
        self._published += [(row["message_id"],) for row in rows]
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(0.1, self._spawn_flush)

    def _spawn_flush(self) -> None:
        self._flush = None
        self._flushing.spawn(self._mark_published())

    async def _mark_published(self) -> None:
        marks, self._published = self._published, []
        if not marks:
            return
        try:
            await store.mark_pushed(self.db, marks)
        except CroupierError as exc:
            log.warning("could not mark %d notifications published: %s", len(marks), exc)

    async def page(
        self, who: Player, *, unread_only: bool, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """One page of ``who``'s notifications, newest first, and their unread count."""
        found = parse_cursor(cursor, CURSOR)
        after = None if found is None else (int(found[1]), found[2])
        rows = await store.page_rows(
            self.db,
            who,
            since_ms=now_ms() - self.retention_ms,
            unread_only=unread_only,
            after=after,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return {
            "notifications": [store.notification_of(row) for row in rows],
            "next_cursor": (
                f"{last['created_ms']}_{last['message_id']}" if more and last is not None else None
            ),
            "unread": await self.unread(who),
        }

    async def unread(self, who: Player) -> int:
        return await store.count_unread(self.db, who, since_ms=now_ms() - self.retention_ms)

    async def mark_read(self, who: Player, message_ids: Sequence[str], *, everything: bool) -> int:
        """Mark ``message_ids`` (or, with ``everything``, all) of ``who``'s read.

        Returns how many were unread. Ids that are unknown, another player's, or already
        read are left alone.
        """
        ids = None
        if not everything:
            ids = sorted({validate_message_id(m) for m in message_ids})
            if not ids:
                return 0
        return await store.mark_read(self.db, who, ids, now_ms())

    # -- maintenance ----------------------------------------------------------------------

    async def purge(self, now: int | None = None) -> int:
        """Delete notifications older than the retention; return how many."""
        cutoff = (now_ms() if now is None else now) - self.retention_ms
        return await store.delete_older(self.db, cutoff)

    async def push_pending(self, older_than: float = 10.0, limit: int = 500) -> int:
        """Publish notifications stored over ``older_than`` seconds ago but not yet published."""
        await self._mark_published()
        rows = await store.unpushed(
            self.db, created_by_ms=now_ms() - int(older_than * 1000), limit=limit
        )
        await self._push(rows)
        return len(rows)

    async def _maintain(self) -> None:
        purged_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.push_pending()
                if loop.time() - purged_at >= 3600.0:
                    purged = await self.purge()
                    purged_at = loop.time()
                    if purged:
                        log.info("purged %d notifications past their retention", purged)
            except Exception:
                log.exception("notification maintenance failed; trying again later")

    # -- the Service face ------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Operation]:
        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        return routes(self)

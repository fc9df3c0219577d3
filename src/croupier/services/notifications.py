"""The player notification centre: stored, pushed at once, listed, marked read, purged.

A backend creates a notification (or a batch of them) for a player. Each is stored, then
published as a ``notification`` event on ``player:{brand}:{player}``, whose data is exactly
what the casino front end parses::

    {"message_id": "…uuid…", "event": "bonus_granted", "event_details": {…},
     "is_read": false, "time": "2025-10-22 14:30:45"}

Rules:

* ``message_id`` is a UUID, made here when the backend sends none. A repeated id is a no-op
  that answers with the notification already stored (``duplicate: true``); an id already
  used for another player is a conflict.
* ``event`` is one of :data:`EVENTS` or a custom name of ``[a-z0-9_.-]{1,64}``;
  ``event_details`` a JSON object of at most :data:`MAX_DETAILS_BYTES` encoded.
* ``time`` is the creation time in UTC, ``YYYY-MM-DD HH:MM:SS``.
* Storing comes first: a notification that could not be published (the log is down) is
  kept and published again by the maintenance task, with ``message_id`` as the idempotency
  key, so a retry never shows a player the same notification twice.
* Notifications are kept :data:`RETENTION_DAYS` days, then purged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Annotated, Any, Self

import msgspec
import orjson
from aiohttp import web

from ..api.openapi import Operation
from ..api.toolkit import int_query, json_response, query, read_body, require_key
from ..errors import BadRequest, Conflict, CroupierError, PayloadTooLarge
from ..gateway import Gateway, PublishRequest
from ..storage import Database, Row, Transaction
from ..tasks import stop_task
from .players import (
    LIMIT_PARAM,
    PLAYER_PARAMS,
    Player,
    authorize,
    casino_time,
    check_id,
    cursor_param,
    now_ms,
    parse_cursor,
    player_from_path,
)

__all__ = [
    "EVENTS",
    "MAX_DETAILS_BYTES",
    "RETENTION_DAYS",
    "NewNotification",
    "Notification",
    "NotificationsService",
    "keep_published",
    "migrate_table",
    "validate_event",
    "validate_message_id",
]

log = logging.getLogger(__name__)

_GROUP = 256  # single creates that share one transaction, at most
# (player, message_id, event, event_details as JSON): one notification, validated.
_Prepared = tuple["Player", str, str, str]

EVENTS = frozenset(
    {
        "bonus_granted",
        "promotion_available",
        "deposit_success",
        "withdrawal_approved",
        "kyc_approved",
        "kyc_rejected",
        "account_update",
        "tournament_update",
        "tournament_win",
        "limit_reminder",
        "document_required",
    }
)
RETENTION_DAYS = 90
MAX_DETAILS_BYTES = 16 * 1024
MAX_BATCH = 1000
EVENT_TYPE = "notification"

_EVENT = re.compile(r"[a-z0-9_.-]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A page ends at a notification: "{created_ms}_{message_id}".
_CURSOR = re.compile(
    r"([0-9]{1,15})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
CURSOR_PATTERN = f"^{_CURSOR.pattern}$"

_MIGRATIONS = [
    [
        "CREATE TABLE croupier_notifications ("
        "message_id TEXT PRIMARY KEY, brand TEXT NOT NULL, player TEXT NOT NULL, "
        "event TEXT NOT NULL, details TEXT NOT NULL, created_ms BIGINT NOT NULL, "
        "read_ms BIGINT, pushed BIGINT NOT NULL DEFAULT 0)",
        "CREATE INDEX croupier_notifications_player "
        "ON croupier_notifications (brand, player, created_ms, message_id)",
        "CREATE INDEX croupier_notifications_unread "
        "ON croupier_notifications (brand, player) WHERE read_ms IS NULL",
        "CREATE INDEX croupier_notifications_unpushed "
        "ON croupier_notifications (created_ms) WHERE pushed = 0",
        "CREATE INDEX croupier_notifications_created ON croupier_notifications (created_ms)",
    ]
]
_COLUMNS = "message_id, brand, player, event, details, created_ms, read_ms, pushed"


# -- what comes in and goes out ------------------------------------------------------------

EventName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern="^[a-z0-9_.-]+$",
        description="`bonus_granted`, `promotion_available`, `deposit_success`, "
        "`withdrawal_approved`, `kyc_approved`, `kyc_rejected`, `account_update`, "
        "`tournament_update`, `tournament_win`, `limit_reminder`, `document_required`, "
        "or a custom name.",
        examples=["bonus_granted"],
    ),
]
MessageId = Annotated[
    str,
    msgspec.Meta(
        min_length=36,
        max_length=36,
        pattern=UUID_PATTERN,
        description="A UUID. A repeat is not stored again.",
        examples=["a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"],
    ),
]
PlayerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.@=-]+$")]
Details = Annotated[
    dict[str, Any],
    msgspec.Meta(description=f"Any JSON object, at most {MAX_DETAILS_BYTES} bytes encoded."),
]


class NewNotification(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One notification for the player in the path."""

    event: EventName
    event_details: Details = {}
    message_id: MessageId | None = None


class NotificationFor(NewNotification, forbid_unknown_fields=True, kw_only=True):
    """One notification of a batch, naming its player."""

    brand_id: PlayerId
    player_id: PlayerId


class NotificationBatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Notifications for any players, stored together: all or none."""

    notifications: Annotated[
        list[NotificationFor], msgspec.Meta(min_length=1, max_length=MAX_BATCH)
    ]


class MarkReadBody(msgspec.Struct, forbid_unknown_fields=True):
    """Which notifications to mark read: those listed, or every one with ``all``."""

    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_BATCH)] = []
    all: bool = False


class Notification(msgspec.Struct):
    """A notification as the player sees it (the data of its ``notification`` event)."""

    message_id: str
    event: str
    event_details: dict[str, Any]
    is_read: bool
    time: Annotated[str, msgspec.Meta(description="Created at, UTC, `YYYY-MM-DD HH:MM:SS`.")]


class NotificationCreated(msgspec.Struct):
    brand_id: str
    player_id: str
    notification: Notification
    duplicate: Annotated[
        bool, msgspec.Meta(description="True when the message_id was already stored.")
    ]


class NotificationsCreated(msgspec.Struct):
    results: list[NotificationCreated]


class NotificationPage(msgspec.Struct):
    """Newest first. ``next_cursor`` is null on the last page."""

    notifications: list[Notification]
    next_cursor: str | None
    unread: int


class UnreadCount(msgspec.Struct):
    unread: int


class MarkedRead(msgspec.Struct):
    marked: Annotated[int, msgspec.Meta(description="Notifications that were unread before.")]
    unread: int


# -- rules without I/O ----------------------------------------------------------------------


def validate_event(event: str) -> str:
    """Return ``event`` if it is a well-formed name (known or custom).

    Raises:
        BadRequest: not 1-64 characters of ``[a-z0-9_.-]``.
    """
    if not _EVENT.fullmatch(event):
        raise BadRequest(
            f"invalid event {event[:80]!r}: use 1-64 characters of a-z 0-9 _ . -",
            code="bad_event",
        )
    return event


def validate_message_id(message_id: str | None) -> str:
    """A fresh UUID when ``message_id`` is None, else ``message_id`` in lower case.

    Raises:
        BadRequest: not a UUID in its 8-4-4-4-12 hexadecimal form.
    """
    if message_id is None:
        return str(uuid.uuid4())
    if not _UUID.fullmatch(message_id):
        raise BadRequest(f"message_id {message_id[:80]!r} is not a UUID", code="bad_message_id")
    return message_id.lower()


def encode_details(details: dict[str, Any]) -> bytes:
    """``details`` as JSON.

    Raises:
        PayloadTooLarge: over :data:`MAX_DETAILS_BYTES`.
    """
    # msgspec, not orjson: it also writes the integers beyond 64 bits that JSON allows.
    raw = msgspec.json.encode(details)
    if len(raw) > MAX_DETAILS_BYTES:
        raise PayloadTooLarge(
            f"event_details is {len(raw)} bytes encoded; the limit is {MAX_DETAILS_BYTES}"
        )
    return raw


def _notification(row: Row) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "event": row["event"],
        "event_details": orjson.Fragment(row["details"]),
        "is_read": row["read_ms"] is not None,
        "time": casino_time(row["created_ms"]),
    }


def _event(row: Row) -> PublishRequest:
    channel = Player(row["brand"], row["player"]).channel
    payload = orjson.dumps(_notification(row))
    return PublishRequest(channel, EVENT_TYPE, payload, row["message_id"])


async def migrate_table(database: Database) -> None:
    """Create or upgrade the notification centre's table (idempotent)."""
    await database.migrate("notifications", _MIGRATIONS)


async def keep_published(
    tx: Transaction, who: Player, notification: dict[str, Any], created: float
) -> None:
    """Keep in the notification centre a ``notification`` another service publishes itself.

    The caller publishes ``notification`` (the event's data) through its own outbox, in the
    transaction ``tx``; here it is only stored, marked published, so the player can list it
    and mark it read. A repeated ``message_id`` is a no-op. The caller runs
    :func:`migrate_table` when it starts.
    """
    await tx.execute(
        f"INSERT INTO croupier_notifications ({_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, NULL, 1) ON CONFLICT (message_id) DO NOTHING",
        notification["message_id"],
        who.brand,
        who.player,
        validate_event(notification["event"]),
        encode_details(notification["event_details"]).decode(),
        int(created * 1000),
    )


# -- the service ------------------------------------------------------------------------------


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
        self._flushing: set[asyncio.Task[None]] = set()
        self._queued: list[tuple[_Prepared, int, asyncio.Future[tuple[Row, bool]]]] = []
        self._inserter: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await migrate_table(self.db)
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
        await asyncio.gather(*self._flushing, return_exceptions=True)
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
                rows = [await self._insert(tx, *p, created) for p in prepared]
        # A duplicate that was never published (the log was down) is published now.
        await self._push([row for row, _ in rows if not row["pushed"]])
        return [
            (Player(row["brand"], row["player"]), _notification(row), duplicate)
            for row, duplicate in rows
        ]

    async def _insert_grouped(self, prepared: _Prepared, created: int) -> tuple[Row, bool]:
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
                params: list[Any] = []
                values = []
                for (who, message_id, event, details), created, _ in batch:
                    n = len(params)
                    values.append(
                        f"(${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, ${n + 5}, ${n + 6}, NULL, 0)"
                    )
                    params += [message_id, who.brand, who.player, event, details, created]
                inserted = await self.db.fetch(
                    f"INSERT INTO croupier_notifications ({_COLUMNS}) VALUES {', '.join(values)} "
                    f"ON CONFLICT (message_id) DO NOTHING RETURNING {_COLUMNS}",
                    *params,
                )
                fresh = {row["message_id"]: row for row in inserted}
                for prepared, created, _ in batch:
                    row = fresh.pop(prepared[1], None)
                    if row is not None:
                        outcomes.append((row, False))
                        continue
                    try:
                        outcomes.append(await self._insert(self.db, *prepared, created))
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

    async def _insert(
        self,
        tx: Transaction,
        who: Player,
        message_id: str,
        event: str,
        details: str,
        created: int,
    ) -> tuple[Row, bool]:
        row = await tx.fetchrow(
            f"INSERT INTO croupier_notifications ({_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, NULL, 0) "
            f"ON CONFLICT (message_id) DO NOTHING RETURNING {_COLUMNS}",
            message_id,
            who.brand,
            who.player,
            event,
            details,
            created,
        )
        if row is not None:
            return row, False
        row = await tx.fetchrow(
            f"SELECT {_COLUMNS} FROM croupier_notifications WHERE message_id = $1", message_id
        )
        if row is None:  # purged between the two statements: a fresh start is right
            return await self._insert(tx, who, message_id, event, details, created)
        if (row["brand"], row["player"]) != (who.brand, who.player):
            raise Conflict(
                f"message_id {message_id} is already used for another player",
                code="message_id_taken",
            )
        return row, True

    async def _push(self, rows: list[Row]) -> None:
        """Publish ``rows`` and mark them published; on failure they wait for maintenance."""
        if not rows:
            return
        try:
            await self.gateway.publish_many([_event(row) for row in rows])
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
        task = asyncio.ensure_future(self._mark_published())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _mark_published(self) -> None:
        marks, self._published = self._published, []
        if not marks:
            return
        try:
            await self.db.executemany(
                "UPDATE croupier_notifications SET pushed = 1 WHERE message_id = $1", marks
            )
        except CroupierError as exc:
            log.warning("could not mark %d notifications published: %s", len(marks), exc)

    async def page(
        self, who: Player, *, unread_only: bool, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        """One page of ``who``'s notifications, newest first, and their unread count."""
        sql = (
            f"SELECT {_COLUMNS} FROM croupier_notifications "
            "WHERE brand = $1 AND player = $2 AND created_ms >= $3"
        )
        args: list[Any] = [who.brand, who.player, now_ms() - self.retention_ms]
        if unread_only:
            sql += " AND read_ms IS NULL"
        after = parse_cursor(cursor, _CURSOR)
        if after is not None:
            sql += " AND (created_ms < $4 OR (created_ms = $4 AND message_id < $5))"
            args += [int(after[1]), after[2]]
        sql += f" ORDER BY created_ms DESC, message_id DESC LIMIT {limit + 1}"
        rows = await self.db.fetch(sql, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        return {
            "notifications": [_notification(row) for row in rows],
            "next_cursor": (
                f"{last['created_ms']}_{last['message_id']}" if more and last is not None else None
            ),
            "unread": await self.unread(who),
        }

    async def unread(self, who: Player) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM croupier_notifications "
            "WHERE brand = $1 AND player = $2 AND read_ms IS NULL AND created_ms >= $3",
            who.brand,
            who.player,
            now_ms() - self.retention_ms,
        )
        return int(row["n"]) if row is not None else 0

    async def mark_read(self, who: Player, message_ids: Sequence[str], *, everything: bool) -> int:
        """Mark ``message_ids`` (or, with ``everything``, all) of ``who``'s read.

        Returns how many were unread. Ids that are unknown, another player's, or already
        read are left alone.
        """
        sql = (
            "UPDATE croupier_notifications SET read_ms = $3 "
            "WHERE brand = $1 AND player = $2 AND read_ms IS NULL"
        )
        args: list[Any] = [who.brand, who.player, now_ms()]
        if not everything:
            ids = sorted({validate_message_id(m) for m in message_ids})
            if not ids:
                return 0
            marks = ", ".join(f"${i}" for i in range(4, 4 + len(ids)))
            sql += f" AND message_id IN ({marks})"
            args += ids
        return await self.db.execute(sql, *args)

    # -- maintenance ----------------------------------------------------------------------

    async def purge(self, now: int | None = None) -> int:
        """Delete notifications older than the retention; return how many."""
        cutoff = (now_ms() if now is None else now) - self.retention_ms
        return await self.db.execute(
            "DELETE FROM croupier_notifications WHERE created_ms < $1", cutoff
        )

    async def push_pending(self, older_than: float = 10.0, limit: int = 500) -> int:
        """Publish notifications stored over ``older_than`` seconds ago but not yet published."""
        await self._mark_published()
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM croupier_notifications "
            "WHERE pushed = 0 AND created_ms <= $1 ORDER BY created_ms LIMIT $2",
            now_ms() - int(older_than * 1000),
            limit,
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

    # -- HTTP -----------------------------------------------------------------------------

    async def _create_one(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish", players=False)
        body = await read_body(request, NewNotification)
        ((_, notification, duplicate),) = await self.create([(who, body)])
        return json_response(_created(who, notification, duplicate))

    async def _create_batch(self, request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, NotificationBatchBody)
        items = [
            (Player(check_id("brand_id", n.brand_id), check_id("player_id", n.player_id)), n)
            for n in body.notifications
        ]
        results = await self.create(items)
        return json_response({"results": [_created(w, n, d) for w, n, d in results]})

    async def _list(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        unread_only = _bool_query(request, "unread")
        limit = int_query(request, "limit", 50, 1, 200)
        cursor = query(request, "cursor")
        page = await self.page(who, unread_only=unread_only, limit=limit, cursor=cursor)
        return json_response(page)

    async def _unread(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        return json_response({"unread": await self.unread(who)})

    async def _mark_read(self, request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish")
        body = await read_body(request, MarkReadBody)
        marked = await self.mark_read(who, body.message_ids, everything=body.all)
        return json_response({"marked": marked, "unread": await self.unread(who)})

    def routes(self) -> list[web.RouteDef]:
        base = "/api/v1/players/{brand}/{player}/notifications"
        return [
            web.post(base, self._create_one),
            web.get(base, self._list, allow_head=False),
            web.get(base + "/unread-count", self._unread, allow_head=False),
            web.post(base + "/read", self._mark_read),
            web.post("/api/v1/notifications/batch", self._create_batch),
        ]

    @property
    def operations(self) -> Sequence[Operation]:
        return _OPERATIONS


def _bool_query(request: web.Request, name: str) -> bool:
    raw = query(request, name)
    if raw is None:
        return False
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, not {raw[:32]!r}")


def _created(who: Player, notification: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    return {
        "brand_id": who.brand,
        "player_id": who.player,
        "notification": notification,
        "duplicate": duplicate,
    }


# -- the OpenAPI document -----------------------------------------------------------------------

_BASE = "/api/v1/players/{brand}/{player}/notifications"
_EXAMPLE = {
    "message_id": "a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c",
    "event": "bonus_granted",
    "event_details": {"bonus_amount": 100, "bonus_type": "welcome", "currency": "USD"},
    "is_read": False,
    "time": "2025-10-22 14:30:45",
}
_NEW = {k: _EXAMPLE[k] for k in ("message_id", "event", "event_details")}
_CREATED = {"brand_id": "1001", "player_id": "12345", "notification": _EXAMPLE, "duplicate": False}

_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        _BASE,
        "create_notification",
        "Store a notification for a player and push it on their channel",
        "notifications",
        scope="publish",
        body=NewNotification,
        body_example=_NEW,
        reply=NotificationCreated,
        reply_example=_CREATED,
        errors=(400, 401, 403, 409, 413, 503),
        params=PLAYER_PARAMS,
    ),
    Operation(
        "post",
        "/api/v1/notifications/batch",
        "create_notifications",
        "Store notifications for many players at once (all or none) and push them",
        "notifications",
        scope="publish",
        body=NotificationBatchBody,
        body_example={
            "notifications": [
                {**_NEW, "brand_id": "1001", "player_id": "12345"},
                {
                    "brand_id": "1001",
                    "player_id": "777",
                    "event": "promotion_available",
                    "event_details": {"promo_id": "spring-25"},
                },
            ]
        },
        reply=NotificationsCreated,
        reply_example={"results": [_CREATED]},
        errors=(400, 401, 403, 409, 413, 503),
    ),
    Operation(
        "get",
        _BASE,
        "list_notifications",
        "A player's notifications, newest first (API key or the player's own token)",
        "notifications",
        scope="read",
        reply=NotificationPage,
        reply_example={"notifications": [_EXAMPLE], "next_cursor": None, "unread": 1},
        errors=(400, 401, 403, 503),
        params=(
            *PLAYER_PARAMS,
            (
                "unread",
                "query",
                {
                    "description": "Only unread notifications.",
                    "schema": {"type": "boolean", "default": False},
                },
            ),
            ("limit", "query", LIMIT_PARAM),
            (
                "cursor",
                "query",
                cursor_param(CURSOR_PATTERN, "1761143445000_a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"),
            ),
        ),
    ),
    Operation(
        "get",
        _BASE + "/unread-count",
        "count_unread_notifications",
        "How many of a player's notifications are unread",
        "notifications",
        scope="read",
        reply=UnreadCount,
        reply_example={"unread": 3},
        errors=(400, 401, 403, 503),
        params=PLAYER_PARAMS,
    ),
    Operation(
        "post",
        _BASE + "/read",
        "mark_notifications_read",
        "Mark some or all of a player's notifications read",
        "notifications",
        scope="publish",
        body=MarkReadBody,
        body_example={"message_ids": ["a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"]},
        reply=MarkedRead,
        reply_example={"marked": 1, "unread": 2},
        errors=(400, 401, 403, 413, 503),
        params=PLAYER_PARAMS,
    ),
)

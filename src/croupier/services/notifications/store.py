"""The notification centre's table and the SQL that reads and writes it.

Every function takes a :class:`~croupier.storage.Transaction` (a Database is one too), so
the service decides what runs inside one transaction. Times are milliseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ...errors import Conflict
from ...gateway import PublishRequest
from ...storage import Database, Row, Transaction
from ..players import Player, casino_time
from .rules import EVENT_TYPE, encode_details, validate_event

__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "Prepared",
    "count_unread",
    "delete_older",
    "insert",
    "insert_many",
    "keep_published",
    "mark_pushed",
    "mark_read",
    "migrate_table",
    "notification_of",
    "page_rows",
    "publish_request",
    "unpushed",
]

# (player, message_id, event, event_details as JSON): one notification, validated.
Prepared = tuple[Player, str, str, str]

MIGRATIONS = [
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
COLUMNS = "message_id, brand, player, event, details, created_ms, read_ms, pushed"


def notification_of(row: Row) -> dict[str, Any]:
    """A stored notification as the player sees it (the data of its event)."""
    return {
        "message_id": row["message_id"],
        "event": row["event"],
        "event_details": orjson.Fragment(row["details"]),
        "is_read": row["read_ms"] is not None,
        "time": casino_time(row["created_ms"]),
    }


def publish_request(row: Row) -> PublishRequest:
    """The ``notification`` event of a stored notification, keyed by its ``message_id``."""
    channel = Player(row["brand"], row["player"]).channel
    payload = orjson.dumps(notification_of(row))
    return PublishRequest(channel, EVENT_TYPE, payload, row["message_id"])


async def migrate_table(database: Database) -> None:
    """Create or upgrade the notification centre's table (idempotent)."""
    await database.migrate("notifications", MIGRATIONS)


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
        f"INSERT INTO croupier_notifications ({COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, NULL, 1) ON CONFLICT (message_id) DO NOTHING",
        notification["message_id"],
        who.brand,
        who.player,
        validate_event(notification["event"]),
        encode_details(notification["event_details"]).decode(),
        int(created * 1000),
    )


async def insert_many(tx: Transaction, batch: Sequence[tuple[Prepared, int]]) -> list[Row]:
    """Insert ``(notification, created_ms)`` pairs in one statement; return the new rows.

    A ``message_id`` already stored is skipped (it is not among the rows returned).
    """
    params: list[Any] = []
    values = []
    for (who, message_id, event, details), created in batch:
        n = len(params)
        values.append(f"(${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}, ${n + 5}, ${n + 6}, NULL, 0)")
        params += [message_id, who.brand, who.player, event, details, created]
    return await tx.fetch(
        f"INSERT INTO croupier_notifications ({COLUMNS}) VALUES {', '.join(values)} "
        f"ON CONFLICT (message_id) DO NOTHING RETURNING {COLUMNS}",
        *params,
    )


async def insert(
    tx: Transaction,
    who: Player,
    message_id: str,
    event: str,
    details: str,
    created: int,
) -> tuple[Row, bool]:
    """Insert one notification; return its row and whether it was stored already.

    Raises:
        Conflict: ``message_id`` is stored for another player.
    """
    row = await tx.fetchrow(
        f"INSERT INTO croupier_notifications ({COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, NULL, 0) "
        f"ON CONFLICT (message_id) DO NOTHING RETURNING {COLUMNS}",
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
        f"SELECT {COLUMNS} FROM croupier_notifications WHERE message_id = $1", message_id
    )
    if row is None:  # purged between the two statements: a fresh start is right
        return await insert(tx, who, message_id, event, details, created)
    if (row["brand"], row["player"]) != (who.brand, who.player):
        raise Conflict(
            f"message_id {message_id} is already used for another player",
            code="message_id_taken",
        )
    return row, True


async def mark_pushed(tx: Transaction, message_ids: list[tuple[str]]) -> None:
    """Mark the notifications ``message_ids`` (one-tuples) published."""
    await tx.executemany(
        "UPDATE croupier_notifications SET pushed = 1 WHERE message_id = $1", message_ids
    )


async def page_rows(
    tx: Transaction,
    who: Player,
    *,
    since_ms: int,
    unread_only: bool,
    after: tuple[int, str] | None,
    limit: int,
) -> list[Row]:
    """``who``'s notifications created at ``since_ms`` or later, newest first, at most
    ``limit``, starting after the notification ``after`` (created_ms, message_id)."""
    sql = (
        f"SELECT {COLUMNS} FROM croupier_notifications "
        "WHERE brand = $1 AND player = $2 AND created_ms >= $3"
    )
    args: list[Any] = [who.brand, who.player, since_ms]
    if unread_only:
        sql += " AND read_ms IS NULL"
    if after is not None:
        sql += " AND (created_ms < $4 OR (created_ms = $4 AND message_id < $5))"
        args += [after[0], after[1]]
    sql += f" ORDER BY created_ms DESC, message_id DESC LIMIT {int(limit)}"
    return await tx.fetch(sql, *args)


async def count_unread(tx: Transaction, who: Player, *, since_ms: int) -> int:
    """How many of ``who``'s notifications created at ``since_ms`` or later are unread."""
    row = await tx.fetchrow(
        "SELECT COUNT(*) AS n FROM croupier_notifications "
        "WHERE brand = $1 AND player = $2 AND read_ms IS NULL AND created_ms >= $3",
        who.brand,
        who.player,
        since_ms,
    )
    return int(row["n"]) if row is not None else 0


async def mark_read(tx: Transaction, who: Player, ids: Sequence[str] | None, now: int) -> int:
    """Mark ``ids`` (None: every one) of ``who``'s unread notifications read at ``now``;
    return how many were unread."""
    sql = (
        "UPDATE croupier_notifications SET read_ms = $3 "
        "WHERE brand = $1 AND player = $2 AND read_ms IS NULL"
    )
    args: list[Any] = [who.brand, who.player, now]
    if ids is not None:
        marks = ", ".join(f"${i}" for i in range(4, 4 + len(ids)))
        sql += f" AND message_id IN ({marks})"
        args += list(ids)
    return await tx.execute(sql, *args)


async def delete_older(tx: Transaction, cutoff_ms: int) -> int:
    """Delete the notifications created before ``cutoff_ms``; return how many."""
    return await tx.execute("DELETE FROM croupier_notifications WHERE created_ms < $1", cutoff_ms)


async def unpushed(tx: Transaction, *, created_by_ms: int, limit: int) -> list[Row]:
    """Notifications created by ``created_by_ms`` and not published yet, oldest first."""
    return await tx.fetch(
        f"SELECT {COLUMNS} FROM croupier_notifications "
        "WHERE pushed = 0 AND created_ms <= $1 ORDER BY created_ms LIMIT $2",
        created_by_ms,
        limit,
    )

"""Sporting events and their latest scoreboard in the services database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ...storage import Row, Transaction
from .rules import Status

__all__ = [
    "MIGRATIONS",
    "SportEvent",
    "get",
    "insert",
    "list_events",
    "mark_published",
    "raise_peak",
    "save",
]

MIGRATIONS = [
    [
        "CREATE TABLE croupier_sports_events ("
        "id TEXT PRIMARY KEY, sport TEXT NOT NULL, title TEXT NOT NULL, "
        "competitors TEXT NOT NULL, status TEXT NOT NULL, starts_at TEXT, "
        "created_ms BIGINT NOT NULL, seq BIGINT NOT NULL DEFAULT 0, "
        "published_seq BIGINT NOT NULL DEFAULT 0, snapshot TEXT NOT NULL, "
        "last_update TEXT, pub_snapshot TEXT NOT NULL, snap_offset BIGINT, snap_epoch TEXT, "
        "peak BIGINT NOT NULL DEFAULT 0)",
        "CREATE INDEX croupier_sports_events_status ON croupier_sports_events (status, created_ms)",
    ]
]
_COLUMNS = (
    "id, sport, title, competitors, status, starts_at, created_ms, seq, published_seq, "
    "snapshot, last_update, pub_snapshot, snap_offset, snap_epoch, peak"
)


@dataclass(frozen=True, slots=True)
class SportEvent:
    """One sporting event as stored.

    ``seq`` numbers its score updates (1, 2, 3 …) and ``snapshot`` is the scoreboard after
    the last one. ``published_seq`` is the last update whose ``score.updated`` event the log
    took, ``pub_snapshot`` the scoreboard after it and ``snap_offset``/``snap_epoch`` that
    event's channel position (None before the first): together, what a newcomer is shown
    and where its live stream starts.
    """

    id: str
    sport: str
    title: str
    competitors: tuple[str, ...]
    status: Status
    starts_at: str | None
    created_ms: int
    seq: int
    published_seq: int
    snapshot: dict[str, Any]
    last_update: dict[str, Any] | None
    pub_snapshot: dict[str, Any]
    snap_offset: int | None
    snap_epoch: str | None
    peak: int

    @property
    def channel(self) -> str:
        return f"match:{self.id}"

    @classmethod
    def from_row(cls, row: Row) -> SportEvent:
        return cls(
            id=row["id"],
            sport=row["sport"],
            title=row["title"],
            competitors=tuple(orjson.loads(row["competitors"])),
            status=Status(row["status"]),
            starts_at=row["starts_at"],
            created_ms=int(row["created_ms"]),
            seq=int(row["seq"]),
            published_seq=int(row["published_seq"]),
            snapshot=orjson.loads(row["snapshot"]),
            last_update=None if row["last_update"] is None else orjson.loads(row["last_update"]),
            pub_snapshot=orjson.loads(row["pub_snapshot"]),
            snap_offset=None if row["snap_offset"] is None else int(row["snap_offset"]),
            snap_epoch=row["snap_epoch"],
            peak=int(row["peak"]),
        )


async def insert(tx: Transaction, event: SportEvent) -> bool:
    """Store a new event; False if its id is taken."""
    changed = await tx.execute(
        f"INSERT INTO croupier_sports_events ({_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, NULL, $8, NULL, NULL, 0) "
        "ON CONFLICT (id) DO NOTHING",
        event.id,
        event.sport,
        event.title,
        orjson.dumps(list(event.competitors)).decode(),
        event.status.value,
        event.starts_at,
        event.created_ms,
        orjson.dumps(event.snapshot).decode(),
    )
    return changed == 1


async def get(tx: Transaction, event_id: str, *, lock: bool = False) -> SportEvent | None:
    row = await tx.fetchrow(
        f"SELECT {_COLUMNS} FROM croupier_sports_events WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        event_id,
    )
    return None if row is None else SportEvent.from_row(row)


async def list_events(tx: Transaction, status: Status | None, limit: int) -> list[SportEvent]:
    if status is None:
        rows = await tx.fetch(
            f"SELECT {_COLUMNS} FROM croupier_sports_events ORDER BY created_ms DESC, id LIMIT $1",
            limit,
        )
    else:
        rows = await tx.fetch(
            f"SELECT {_COLUMNS} FROM croupier_sports_events WHERE status = $1 "
            "ORDER BY created_ms DESC, id LIMIT $2",
            status.value,
            limit,
        )
    return [SportEvent.from_row(r) for r in rows]


async def save(tx: Transaction, event: SportEvent) -> None:
    """Write the event's status, numbering and working scoreboard."""
    await tx.execute(
        "UPDATE croupier_sports_events SET status = $2, seq = $3, snapshot = $4, "
        "last_update = $5 WHERE id = $1",
        event.id,
        event.status.value,
        event.seq,
        orjson.dumps(event.snapshot).decode(),
        None if event.last_update is None else orjson.dumps(event.last_update).decode(),
    )


async def mark_published(
    tx: Transaction,
    event_id: str,
    seq: int,
    snapshot: dict[str, Any],
    offset: int | None,
    epoch: str | None,
) -> None:
    """Record that update ``seq`` is in the log at ``offset`` (unless a later one is)."""
    await tx.execute(
        "UPDATE croupier_sports_events SET published_seq = $2, pub_snapshot = $3, "
        "snap_offset = $4, snap_epoch = $5 WHERE id = $1 AND published_seq < $2",
        event_id,
        seq,
        orjson.dumps(snapshot).decode(),
        offset,
        epoch,
    )


async def raise_peak(tx: Transaction, event_id: str, viewers: int) -> int:
    """Make the event's peak at least ``viewers``; return the peak."""
    await tx.execute(
        "UPDATE croupier_sports_events SET peak = $2 WHERE id = $1 AND peak < $2",
        event_id,
        viewers,
    )
    row = await tx.fetchrow("SELECT peak FROM croupier_sports_events WHERE id = $1", event_id)
    return 0 if row is None else int(row["peak"])

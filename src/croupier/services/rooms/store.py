"""Rooms in the services' database: one row per room holding its last snapshot and lease.

A snapshot is the whole :class:`~croupier.services.rooms.engine.Room` as JSON, with the log
position of the last step it includes (``log_offset`` / ``log_epoch`` of that step's
``room.state`` event on ``room:{id}``). The owner node and its lease (``owner``,
``lease_until``) say which node applies the room's actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ...storage import Database, Transaction
from .engine import Room, RoomStatus

__all__ = [
    "MIGRATIONS",
    "Stored",
    "claim",
    "expired_rooms",
    "get_room",
    "insert_room",
    "release",
    "renew",
    "save_room",
    "unposted_rooms",
]

MIGRATIONS = [
    [
        "CREATE TABLE rooms ("
        "id TEXT PRIMARY KEY, game TEXT NOT NULL, status TEXT NOT NULL, "
        "snapshot TEXT NOT NULL, brands TEXT NOT NULL, seq BIGINT NOT NULL, "
        "log_offset BIGINT NOT NULL, log_epoch TEXT, owner TEXT, "
        "lease_until DOUBLE PRECISION NOT NULL, posted BOOLEAN NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX rooms_by_status ON rooms (status, lease_until)",
    ]
]


@dataclass(frozen=True, slots=True)
class Stored:
    """A room as its row holds it."""

    room: Room
    brands: dict[str, str | None]
    log_offset: int
    log_epoch: str | None
    owner: str | None
    lease_until: float
    posted: bool


def _dump(room: Room) -> str:
    return orjson.dumps(
        {
            "id": room.id,
            "game": room.game,
            "players": list(room.players),
            "options": dict(room.options),
            "status": room.status.value,
            "round": room.round,
            "seq": room.seq,
            "values": dict(room.values),
            "stamps": dict(room.stamps),
            "totals": dict(room.totals),
            "deadline": room.deadline,
            "maxPlayers": room.max_players,
        }
    ).decode()


def _load(raw: str) -> Room:
    d: dict[str, Any] = orjson.loads(raw)
    return Room(
        id=d["id"],
        game=d["game"],
        players=tuple(d["players"]),
        options=d["options"],
        status=RoomStatus(d["status"]),
        round=d["round"],
        seq=d["seq"],
        values=d["values"],
        stamps=d["stamps"],
        totals=d["totals"],
        deadline=d["deadline"],
        max_players=d["maxPlayers"],
    )


def _stored(row: dict[str, Any]) -> Stored:
    return Stored(
        room=_load(row["snapshot"]),
        brands=orjson.loads(row["brands"]),
        log_offset=int(row["log_offset"]),
        log_epoch=row["log_epoch"],
        owner=row["owner"],
        lease_until=float(row["lease_until"]),
        posted=bool(row["posted"]),
    )


async def insert_room(db: Database, room: Room, brands: dict[str, str | None], now: float) -> bool:
    """Store a new room; ``False`` when the id is taken."""
    changed = await db.execute(
        "INSERT INTO rooms (id, game, status, snapshot, brands, seq, log_offset, log_epoch, "
        "owner, lease_until, posted, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, NULL, 0, FALSE, $7, $7) "
        "ON CONFLICT (id) DO NOTHING",
        room.id,
        room.game,
        room.status.value,
        _dump(room),
        orjson.dumps(brands).decode(),
        room.seq,
        now,
    )
    return changed > 0


async def get_room(tx: Transaction, room_id: str, *, lock: bool = False) -> Stored | None:
    row = await tx.fetchrow(
        "SELECT * FROM rooms WHERE id = $1" + (" FOR UPDATE" if lock else ""), room_id
    )
    return None if row is None else _stored(row)


async def save_room(
    tx: Transaction,
    room: Room,
    *,
    brands: dict[str, str | None] | None = None,
    log_offset: int | None = None,
    log_epoch: str | None = None,
    posted: bool | None = None,
    now: float,
) -> None:
    """Write ``room``'s snapshot (and what else is given)."""
    await tx.execute(
        "UPDATE rooms SET status = $2, snapshot = $3, seq = $4, "
        "brands = COALESCE($5, brands), log_offset = COALESCE($6, log_offset), "
        "log_epoch = COALESCE($7, log_epoch), posted = COALESCE($8, posted), updated_at = $9 "
        "WHERE id = $1",
        room.id,
        room.status.value,
        _dump(room),
        room.seq,
        None if brands is None else orjson.dumps(brands).decode(),
        log_offset,
        log_epoch,
        posted,
        now,
    )


async def claim(
    db: Database, room_id: str, node: str, until: float, now: float, *, force: bool = False
) -> Stored | None:
    """Take the lease of a room no live node holds (``force``: whoever holds it); return the
    room, or ``None`` if another node holds it."""
    async with db.transaction() as tx:
        stored = await get_room(tx, room_id, lock=True)
        if stored is None:
            return None
        if not force and stored.owner not in (None, node) and stored.lease_until > now:
            return None
        await tx.execute(
            "UPDATE rooms SET owner = $2, lease_until = $3 WHERE id = $1", room_id, node, until
        )
        return stored


async def renew(db: Database, node: str, until: float) -> None:
    """Extend every lease ``node`` holds on a room in play."""
    await db.execute(
        "UPDATE rooms SET lease_until = $2 WHERE owner = $1 AND status = 'playing'", node, until
    )


async def release(db: Database, room_id: str, node: str) -> None:
    await db.execute(
        "UPDATE rooms SET owner = NULL, lease_until = 0 WHERE id = $1 AND owner = $2",
        room_id,
        node,
    )


async def expired_rooms(db: Database, now: float, limit: int, *, any_owner: bool) -> list[str]:
    """Rooms in play whose lease ran out (``any_owner``: every room in play)."""
    if any_owner:
        rows = await db.fetch(
            "SELECT id FROM rooms WHERE status = 'playing' ORDER BY id LIMIT $1", limit
        )
    else:
        rows = await db.fetch(
            "SELECT id FROM rooms WHERE status = 'playing' AND lease_until < $1 "
            "ORDER BY lease_until LIMIT $2",
            now,
            limit,
        )
    return [r["id"] for r in rows]


async def unposted_rooms(db: Database, limit: int) -> list[str]:
    """Finished rooms whose results have not reached the leaderboard yet."""
    rows = await db.fetch(
        "SELECT id FROM rooms WHERE status = 'finished' AND posted = FALSE LIMIT $1", limit
    )
    return [r["id"] for r in rows]

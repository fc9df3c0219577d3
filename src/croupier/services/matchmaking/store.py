"""Matchmaking in the services' database: queues, tickets, the pass lease, brackets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ...core.matching import QueueRules, Ticket, TicketStatus
from ...storage import Database, Transaction

__all__ = [
    "MIGRATIONS",
    "Queue",
    "StoredTicket",
    "all_modes",
    "finish_many",
    "get_queue",
    "get_ticket",
    "insert_ticket",
    "latest_ticket",
    "newest_tickets",
    "put_queue",
    "rules_from",
    "set_status",
    "take_lease",
    "waiting",
]

MIGRATIONS = [
    [
        "CREATE TABLE matchmaking_queues ("
        "mode TEXT PRIMARY KEY, rules TEXT NOT NULL, game TEXT NOT NULL, options TEXT NOT NULL, "
        "owner TEXT, lease_until DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE matchmaking_tickets ("
        "id TEXT PRIMARY KEY, mode TEXT NOT NULL, player TEXT NOT NULL, brand TEXT, "
        "rating DOUBLE PRECISION, properties TEXT NOT NULL, queued_at DOUBLE PRECISION NOT NULL, "
        "status TEXT NOT NULL, match_id TEXT, room_id TEXT, players TEXT, "
        "updated_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX matchmaking_tickets_waiting ON matchmaking_tickets (mode, status)",
        "CREATE INDEX matchmaking_tickets_player ON matchmaking_tickets (mode, player, queued_at)",
        "CREATE TABLE brackets ("
        "id TEXT PRIMARY KEY, channel TEXT NOT NULL, doc TEXT NOT NULL, "
        "version BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
    ],
    # A player's newest ticket in every mode (may they queue again?).
    ["CREATE INDEX matchmaking_tickets_by_player ON matchmaking_tickets (player, mode, queued_at)"],
]

_RULE_FIELDS = {
    "groupSize": "group_size",
    "window": "window",
    "widenBy": "widen_by",
    "widenEvery": "widen_every",
    "maxWindow": "max_window",
    "timeout": "timeout",
}


@dataclass(frozen=True, slots=True)
class Queue:
    """A game mode's queue: how it matches, the room its groups are sent to, and the
    leaderboard its players' ratings are read from when they queue themselves."""

    mode: str
    rules: QueueRules
    game: str
    options: dict[str, Any]
    rating_board: str | None = None

    def rules_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {k: getattr(self.rules, v) for k, v in _RULE_FIELDS.items()}
        if self.rating_board is not None:
            doc["ratingBoard"] = self.rating_board
        return doc


def rules_from(doc: dict[str, Any]) -> QueueRules:
    return QueueRules(**{v: doc[k] for k, v in _RULE_FIELDS.items() if k in doc})


@dataclass(frozen=True, slots=True)
class StoredTicket:
    ticket: Ticket
    mode: str
    status: TicketStatus
    match_id: str | None
    room_id: str | None
    players: list[str]
    updated_at: float = 0.0


def _ticket(row: dict[str, Any]) -> StoredTicket:
    props = orjson.loads(row["properties"])
    return StoredTicket(
        Ticket(
            row["id"],
            row["player"],
            float(row["queued_at"]),
            None if row["rating"] is None else float(row["rating"]),
            tuple((k, v) for k, v in props),
            row["brand"],
        ),
        row["mode"],
        TicketStatus(row["status"]),
        row["match_id"],
        row["room_id"],
        orjson.loads(row["players"]) if row["players"] else [],
        float(row["updated_at"]),
    )


async def put_queue(db: Database | Transaction, queue: Queue) -> None:
    await db.execute(
        "INSERT INTO matchmaking_queues (mode, rules, game, options, owner, lease_until) "
        "VALUES ($1, $2, $3, $4, NULL, 0) ON CONFLICT (mode) DO UPDATE SET "
        "rules = excluded.rules, game = excluded.game, options = excluded.options",
        queue.mode,
        orjson.dumps(queue.rules_doc()).decode(),
        queue.game,
        orjson.dumps(queue.options).decode(),
    )


async def get_queue(db: Database | Transaction, mode: str, *, lock: bool = False) -> Queue | None:
    row = await db.fetchrow(
        "SELECT * FROM matchmaking_queues WHERE mode = $1" + (" FOR UPDATE" if lock else ""),
        mode,
    )
    if row is None:
        return None
    doc = orjson.loads(row["rules"])
    return Queue(
        row["mode"],
        rules_from(doc),
        row["game"],
        orjson.loads(row["options"]),
        doc.get("ratingBoard"),
    )


async def all_modes(db: Database) -> list[str]:
    return [r["mode"] for r in await db.fetch("SELECT mode FROM matchmaking_queues ORDER BY mode")]


async def take_lease(db: Database, mode: str, node: str, until: float, now: float) -> bool:
    """Hold the right to run ``mode``'s matching passes until ``until``; ``False`` if another
    node holds it."""
    changed = await db.execute(
        "UPDATE matchmaking_queues SET owner = $2, lease_until = $3 "
        "WHERE mode = $1 AND (owner = $2 OR owner IS NULL OR lease_until < $4)",
        mode,
        node,
        until,
        now,
    )
    return changed > 0


async def insert_ticket(tx: Transaction, mode: str, t: Ticket) -> None:
    await tx.execute(
        "INSERT INTO matchmaking_tickets (id, mode, player, brand, rating, properties, "
        "queued_at, status, match_id, room_id, players, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', NULL, NULL, NULL, $7)",
        t.id,
        mode,
        t.player,
        t.brand,
        t.rating,
        orjson.dumps([list(p) for p in t.properties]).decode(),
        t.queued_at,
    )


async def get_ticket(db: Database | Transaction, ticket_id: str) -> StoredTicket | None:
    row = await db.fetchrow("SELECT * FROM matchmaking_tickets WHERE id = $1", ticket_id)
    return None if row is None else _ticket(row)


async def latest_ticket(db: Database | Transaction, mode: str, player: str) -> StoredTicket | None:
    row = await db.fetchrow(
        "SELECT * FROM matchmaking_tickets WHERE mode = $1 AND player = $2 "
        "ORDER BY queued_at DESC LIMIT 1",
        mode,
        player,
    )
    return None if row is None else _ticket(row)


async def newest_tickets(db: Database | Transaction, player: str) -> list[StoredTicket]:
    """The player's newest ticket in every mode they ever queued in, newest first."""
    rows = await db.fetch(
        "SELECT * FROM matchmaking_tickets t WHERE player = $1 AND queued_at = ("
        "SELECT MAX(queued_at) FROM matchmaking_tickets u "
        "WHERE u.player = t.player AND u.mode = t.mode) ORDER BY queued_at DESC",
        player,
    )
    return [_ticket(r) for r in rows]


async def waiting(db: Database | Transaction, mode: str) -> list[Ticket]:
    """The waiting tickets of ``mode`` (the matching pass's input: kept lean)."""
    rows = await db.fetch(
        "SELECT id, player, brand, rating, properties, queued_at FROM matchmaking_tickets "
        "WHERE mode = $1 AND status = 'waiting'",
        mode,
    )
    # Few distinct property sets among many tickets: each is parsed once.
    parsed: dict[str, tuple[tuple[str, str], ...]] = {}
    out = []
    for r in rows:
        raw = r["properties"]
        props = parsed.get(raw)
        if props is None:
            props = parsed[raw] = tuple((k, v) for k, v in orjson.loads(raw))
        rating = r["rating"]
        out.append(
            Ticket(
                r["id"],
                r["player"],
                float(r["queued_at"]),
                None if rating is None else float(rating),
                props,
                r["brand"],
            )
        )
    return out


async def set_status(
    tx: Transaction,
    ticket_id: str,
    status: TicketStatus,
    now: float,
    *,
    match_id: str | None = None,
    room_id: str | None = None,
    players: list[str] | None = None,
) -> bool:
    """Move a waiting ticket to ``status``; ``False`` when it was no longer waiting."""
    changed = await tx.execute(
        "UPDATE matchmaking_tickets SET status = $2, match_id = $3, room_id = $4, "
        "players = $5, updated_at = $6 WHERE id = $1 AND status = 'waiting'",
        ticket_id,
        status.value,
        match_id,
        room_id,
        None if players is None else orjson.dumps(players).decode(),
        now,
    )
    return changed > 0


async def finish_many(
    tx: Transaction, rows: list[tuple[str, str, str | None, str | None, str | None, float]]
) -> None:
    """Set (id, status, match_id, room_id, players JSON, now) for tickets still waiting."""
    await tx.executemany(
        "UPDATE matchmaking_tickets SET status = $2, match_id = $3, room_id = $4, "
        "players = $5, updated_at = $6 WHERE id = $1 AND status = 'waiting'",
        rows,
    )

"""The tournaments' tables and the SQL that reads and writes them.

Money is kept in minor units (cents) as integers. Times are seconds since the epoch.
Every function takes a :class:`~croupier.storage.Transaction` (a Database is one too), so
the service decides what runs inside one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ...storage import Row, Transaction
from .rules import Counting, PointsRule, PrizeRange, Schedule, Scoring, Status, TieMode

__all__ = [
    "MIGRATIONS",
    "Config",
    "Outgoing",
    "Player",
    "Rebuy",
    "Tournament",
]

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE tournaments ("
        " id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL,"
        " current_round BIGINT NOT NULL, round_started_at DOUBLE PRECISION,"
        " players BIGINT NOT NULL, collected BIGINT NOT NULL, seq BIGINT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION,"
        " ended_at DOUBLE PRECISION, next_due DOUBLE PRECISION)",
        "CREATE INDEX tournaments_due ON tournaments (next_due)",
        "CREATE TABLE tournament_players ("
        " tournament_id TEXT NOT NULL, player_id TEXT NOT NULL, brand TEXT NOT NULL,"
        " display_name TEXT NOT NULL, registered_at DOUBLE PRECISION NOT NULL,"
        " entries BIGINT NOT NULL, paid BIGINT NOT NULL, entry_scores TEXT NOT NULL,"
        " score DOUBLE PRECISION NOT NULL, reached_at DOUBLE PRECISION NOT NULL,"
        " eliminated_at DOUBLE PRECISION, elimination_round BIGINT,"
        " bets DOUBLE PRECISION NOT NULL, wins DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (tournament_id, player_id))",
        "CREATE TABLE tournament_submissions ("
        " tournament_id TEXT NOT NULL, submission_id TEXT NOT NULL, player_id TEXT NOT NULL,"
        " points DOUBLE PRECISION, round BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (tournament_id, submission_id))",
        "CREATE TABLE tournament_rebuys ("
        " tournament_id TEXT NOT NULL, request_id TEXT NOT NULL, player_id TEXT NOT NULL,"
        " status TEXT NOT NULL, amount BIGINT NOT NULL, requested_at DOUBLE PRECISION NOT NULL,"
        " decided_at DOUBLE PRECISION, error TEXT, entries BIGINT NOT NULL,"
        " PRIMARY KEY (tournament_id, request_id))",
        "CREATE TABLE tournament_results ("
        " tournament_id TEXT NOT NULL, player_id TEXT NOT NULL, position BIGINT NOT NULL,"
        " points DOUBLE PRECISION NOT NULL, prize BIGINT NOT NULL,"
        " PRIMARY KEY (tournament_id, player_id))",
        "CREATE TABLE tournament_refunds ("
        " tournament_id TEXT NOT NULL, player_id TEXT NOT NULL, brand TEXT NOT NULL,"
        " amount BIGINT NOT NULL, PRIMARY KEY (tournament_id, player_id))",
        # Events decided inside a transaction, published after it commits (and again after
        # a crash): what makes the money events exactly-once.
        "CREATE TABLE tournament_outbox ("
        " tournament_id TEXT NOT NULL, seq BIGINT NOT NULL, channel TEXT NOT NULL,"
        " type TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tournament_id, seq))",
    ],
    # A player's tournaments, for the tournament.connected a late subscriber is greeted with.
    ["CREATE INDEX tournament_players_player ON tournament_players (player_id, brand)"],
]


@dataclass(frozen=True, slots=True)
class Config:
    """What a tournament is created with; fixed afterwards."""

    opens_at: float | None
    starts_at: float | None
    ends_at: float | None
    rounds: int
    round_seconds: float | None
    max_players: int | None
    min_players: int
    entry_fee: int
    max_entries: int
    rebuy_price: int
    guaranteed: int
    prizes: tuple[PrizeRange, ...]
    rule: PointsRule
    ties: TieMode
    template_id: str | None = None

    def dump(self) -> str:
        doc = {
            "opens_at": self.opens_at,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "rounds": self.rounds,
            "round_seconds": self.round_seconds,
            "max_players": self.max_players,
            "min_players": self.min_players,
            "entry_fee": self.entry_fee,
            "max_entries": self.max_entries,
            "rebuy_price": self.rebuy_price,
            "guaranteed": self.guaranteed,
            "prizes": [[p.first, p.last, p.amount, p.percent] for p in self.prizes],
            "rule": [self.rule.scoring.value, self.rule.min_bet, self.rule.counting.value],
            "ties": self.ties.value,
            "template_id": self.template_id,
        }
        return orjson.dumps(doc).decode()

    @classmethod
    def load(cls, raw: str) -> Config:
        doc = orjson.loads(raw)
        scoring, min_bet, counting = doc["rule"]
        return cls(
            opens_at=doc["opens_at"],
            starts_at=doc["starts_at"],
            ends_at=doc["ends_at"],
            rounds=doc["rounds"],
            round_seconds=doc["round_seconds"],
            max_players=doc["max_players"],
            min_players=doc["min_players"],
            entry_fee=doc["entry_fee"],
            max_entries=doc["max_entries"],
            rebuy_price=doc["rebuy_price"],
            guaranteed=doc["guaranteed"],
            prizes=tuple(PrizeRange(*p) for p in doc["prizes"]),
            rule=PointsRule(Scoring(scoring), min_bet, Counting(counting)),
            ties=TieMode(doc["ties"]),
            template_id=doc.get("template_id"),  # stored before templates: none
        )


@dataclass(frozen=True, slots=True)
class Tournament:
    id: str
    name: str
    status: Status
    config: Config
    current_round: int
    round_started_at: float | None
    players: int
    collected: int
    seq: int  # the last outbox sequence number used
    created_at: float
    started_at: float | None
    ended_at: float | None

    @property
    def channel(self) -> str:
        return f"tournament:{self.id}"

    def schedule(self) -> Schedule:
        c = self.config
        return Schedule(
            self.status,
            c.opens_at,
            c.starts_at,
            c.ends_at,
            c.round_seconds,
            self.round_started_at,
            self.current_round,
            c.rounds,
            self.players,
            c.min_players,
        )


@dataclass(frozen=True, slots=True)
class Player:
    tournament_id: str
    player_id: str
    brand: str
    display_name: str
    registered_at: float
    entries: int
    paid: int
    entry_scores: tuple[float, ...]
    score: float
    reached_at: float
    eliminated_at: float | None
    elimination_round: int | None
    bets: float
    wins: float

    @property
    def channel(self) -> str:
        return f"player:{self.brand}:{self.player_id}"


@dataclass(frozen=True, slots=True)
class Rebuy:
    tournament_id: str
    request_id: str
    player_id: str
    status: str  # pending, confirmed, declined, failed
    amount: int
    requested_at: float
    decided_at: float | None
    error: str | None
    entries: int  # the player's entries when requested, or after a confirmation


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event waiting in the outbox."""

    tournament_id: str
    seq: int
    channel: str
    type: str
    data: bytes


def _f(value: float | None) -> float | None:
    return None if value is None else float(value)


def _tournament(row: Row) -> Tournament:
    return Tournament(
        id=row["id"],
        name=row["name"],
        status=Status(row["status"]),
        config=Config.load(row["config"]),
        current_round=int(row["current_round"]),
        round_started_at=row["round_started_at"],
        players=int(row["players"]),
        collected=int(row["collected"]),
        seq=int(row["seq"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )


_T_COLUMNS = (
    "id, name, status, config, current_round, round_started_at, players, collected, seq,"
    " created_at, started_at, ended_at"
)


async def insert_tournament(tx: Transaction, t: Tournament, next_due: float | None) -> bool:
    """Insert ``t``; False if a tournament with its id exists."""
    changed = await tx.execute(
        f"INSERT INTO tournaments ({_T_COLUMNS}, next_due)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        " ON CONFLICT (id) DO NOTHING",
        t.id,
        t.name,
        t.status.value,
        t.config.dump(),
        t.current_round,
        _f(t.round_started_at),
        t.players,
        t.collected,
        t.seq,
        float(t.created_at),
        _f(t.started_at),
        _f(t.ended_at),
        _f(next_due),
    )
    return changed == 1


async def get_tournament(tx: Transaction, tid: str, *, lock: bool = False) -> Tournament | None:
    sql = f"SELECT {_T_COLUMNS} FROM tournaments WHERE id = $1"
    row = await tx.fetchrow(sql + (" FOR UPDATE" if lock else ""), tid)
    return None if row is None else _tournament(row)


async def list_tournaments(tx: Transaction, status: str | None, limit: int) -> list[Tournament]:
    if status is None:
        rows = await tx.fetch(
            f"SELECT {_T_COLUMNS} FROM tournaments ORDER BY created_at DESC, id LIMIT $1", limit
        )
    else:
        rows = await tx.fetch(
            f"SELECT {_T_COLUMNS} FROM tournaments WHERE status = $1"
            " ORDER BY created_at DESC, id LIMIT $2",
            status,
            limit,
        )
    return [_tournament(r) for r in rows]


async def save_tournament(tx: Transaction, t: Tournament, next_due: float | None) -> None:
    await tx.execute(
        "UPDATE tournaments SET status = $2, current_round = $3, round_started_at = $4,"
        " players = $5, collected = $6, seq = $7, started_at = $8, ended_at = $9, next_due = $10"
        " WHERE id = $1",
        t.id,
        t.status.value,
        t.current_round,
        _f(t.round_started_at),
        t.players,
        t.collected,
        t.seq,
        _f(t.started_at),
        _f(t.ended_at),
        _f(next_due),
    )


async def due_tournaments(tx: Transaction, now: float, limit: int = 100) -> list[str]:
    rows = await tx.fetch(
        "SELECT id FROM tournaments WHERE next_due IS NOT NULL AND next_due <= $1"
        " ORDER BY next_due LIMIT $2",
        float(now),
        limit,
    )
    return [r["id"] for r in rows]


# -- players ---------------------------------------------------------------------------------

_P_COLUMNS = (
    "tournament_id, player_id, brand, display_name, registered_at, entries, paid,"
    " entry_scores, score, reached_at, eliminated_at, elimination_round, bets, wins"
)


def _player(row: Row) -> Player:
    return Player(
        tournament_id=row["tournament_id"],
        player_id=row["player_id"],
        brand=row["brand"],
        display_name=row["display_name"],
        registered_at=row["registered_at"],
        entries=int(row["entries"]),
        paid=int(row["paid"]),
        entry_scores=tuple(orjson.loads(row["entry_scores"])),
        score=float(row["score"]),
        reached_at=float(row["reached_at"]),
        eliminated_at=row["eliminated_at"],
        elimination_round=(
            None if row["elimination_round"] is None else int(row["elimination_round"])
        ),
        bets=float(row["bets"]),
        wins=float(row["wins"]),
    )


def _player_args(p: Player) -> tuple[Any, ...]:
    return (
        p.tournament_id,
        p.player_id,
        p.brand,
        p.display_name,
        float(p.registered_at),
        p.entries,
        p.paid,
        orjson.dumps(list(p.entry_scores)).decode(),
        float(p.score),
        float(p.reached_at),
        _f(p.eliminated_at),
        p.elimination_round,
        float(p.bets),
        float(p.wins),
    )


async def insert_player(tx: Transaction, p: Player) -> None:
    await tx.execute(
        f"INSERT INTO tournament_players ({_P_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        *_player_args(p),
    )


async def save_player(tx: Transaction, p: Player) -> None:
    await tx.execute(
        "UPDATE tournament_players SET brand = $3, display_name = $4, registered_at = $5,"
        " entries = $6, paid = $7, entry_scores = $8, score = $9, reached_at = $10,"
        " eliminated_at = $11, elimination_round = $12, bets = $13, wins = $14"
        " WHERE tournament_id = $1 AND player_id = $2",
        *_player_args(p),
    )


_ACTIVE_PLAYERS = (
    "SELECT "
    + ", ".join(f"p.{c.strip()}" for c in _P_COLUMNS.split(","))
    + " FROM tournament_players p JOIN tournaments t ON t.id = p.tournament_id"
    " WHERE t.status IN ('registering', 'running')"
)  # players of tournaments that are registering or running; add conditions with AND


async def latest_active(tx: Transaction, brand: str, pid: str) -> Player | None:
    """The player's entry in the tournament they registered in last, of those registering
    or running; None if there is none."""
    row = await tx.fetchrow(
        f"{_ACTIVE_PLAYERS} AND p.player_id = $1 AND p.brand = $2"
        " ORDER BY p.registered_at DESC LIMIT 1",
        pid,
        brand,
    )
    return None if row is None else _player(row)


async def active_players(tx: Transaction, tid: str) -> list[Player]:
    """Every player of tournament ``tid`` if it is registering or running (one query); none
    otherwise."""
    rows = await tx.fetch(f"{_ACTIVE_PLAYERS} AND p.tournament_id = $1", tid)
    return [_player(r) for r in rows]


async def get_player(tx: Transaction, tid: str, pid: str, *, lock: bool = False) -> Player | None:
    sql = f"SELECT {_P_COLUMNS} FROM tournament_players WHERE tournament_id = $1 AND player_id = $2"
    row = await tx.fetchrow(sql + (" FOR UPDATE" if lock else ""), tid, pid)
    return None if row is None else _player(row)


async def players(tx: Transaction, tid: str) -> list[Player]:
    rows = await tx.fetch(
        f"SELECT {_P_COLUMNS} FROM tournament_players WHERE tournament_id = $1", tid
    )
    return [_player(r) for r in rows]


async def position(tx: Transaction, p: Player) -> int:
    """``p``'s place: score descending, earlier achievement first, then player id."""
    row = await tx.fetchrow(
        "SELECT COUNT(*) AS n FROM tournament_players WHERE tournament_id = $1 AND ("
        " score > $2 OR (score = $2 AND (reached_at < $3"
        " OR (reached_at = $3 AND player_id < $4))))",
        p.tournament_id,
        float(p.score),
        float(p.reached_at),
        p.player_id,
    )
    return 1 + (int(row["n"]) if row is not None else 0)


# -- submissions -----------------------------------------------------------------------------


async def get_submission(tx: Transaction, tid: str, sid: str) -> Row | None:
    return await tx.fetchrow(
        "SELECT player_id, points, round FROM tournament_submissions"
        " WHERE tournament_id = $1 AND submission_id = $2",
        tid,
        sid,
    )


async def insert_submission(
    tx: Transaction, tid: str, sid: str, pid: str, points: float | None, round: int, at: float
) -> None:
    await tx.execute(
        "INSERT INTO tournament_submissions"
        " (tournament_id, submission_id, player_id, points, round, at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        tid,
        sid,
        pid,
        _f(points),
        round,
        float(at),
    )


# -- rebuys ----------------------------------------------------------------------------------

_R_COLUMNS = (
    "tournament_id, request_id, player_id, status, amount, requested_at, decided_at, error, entries"
)


def _rebuy(row: Row) -> Rebuy:
    return Rebuy(
        tournament_id=row["tournament_id"],
        request_id=row["request_id"],
        player_id=row["player_id"],
        status=row["status"],
        amount=int(row["amount"]),
        requested_at=row["requested_at"],
        decided_at=row["decided_at"],
        error=row["error"],
        entries=int(row["entries"]),
    )


async def get_rebuy(tx: Transaction, tid: str, rid: str, *, lock: bool = False) -> Rebuy | None:
    sql = f"SELECT {_R_COLUMNS} FROM tournament_rebuys WHERE tournament_id = $1 AND request_id = $2"
    row = await tx.fetchrow(sql + (" FOR UPDATE" if lock else ""), tid, rid)
    return None if row is None else _rebuy(row)


async def pending_rebuy(tx: Transaction, tid: str, pid: str) -> Rebuy | None:
    row = await tx.fetchrow(
        f"SELECT {_R_COLUMNS} FROM tournament_rebuys"
        " WHERE tournament_id = $1 AND player_id = $2 AND status = 'pending'",
        tid,
        pid,
    )
    return None if row is None else _rebuy(row)


async def put_rebuy(tx: Transaction, r: Rebuy) -> None:
    await tx.execute(
        f"INSERT INTO tournament_rebuys ({_R_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (tournament_id, request_id) DO UPDATE SET status = $4,"
        " decided_at = $7, error = $8, entries = $9",
        r.tournament_id,
        r.request_id,
        r.player_id,
        r.status,
        r.amount,
        float(r.requested_at),
        _f(r.decided_at),
        r.error,
        r.entries,
    )


# -- results and refunds ---------------------------------------------------------------------


async def insert_results(
    tx: Transaction, tid: str, rows: Sequence[tuple[str, int, float, int]]
) -> None:
    """``rows``: (player, position, points, prize)."""
    await tx.executemany(
        "INSERT INTO tournament_results (tournament_id, player_id, position, points, prize)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(tid, p, pos, float(pts), prize) for p, pos, pts, prize in rows],
    )


async def results(tx: Transaction, tid: str) -> list[Row]:
    return await tx.fetch(
        "SELECT r.player_id, p.display_name, r.position, r.points, r.prize"
        " FROM tournament_results r JOIN tournament_players p"
        " ON p.tournament_id = r.tournament_id AND p.player_id = r.player_id"
        " WHERE r.tournament_id = $1 ORDER BY r.position, r.player_id",
        tid,
    )


async def insert_refunds(tx: Transaction, tid: str, rows: Sequence[tuple[str, str, int]]) -> None:
    """``rows``: (player, brand, amount)."""
    await tx.executemany(
        "INSERT INTO tournament_refunds (tournament_id, player_id, brand, amount)"
        " VALUES ($1, $2, $3, $4)",
        [(tid, p, b, a) for p, b, a in rows],
    )


async def refunds(tx: Transaction, tid: str) -> list[Row]:
    return await tx.fetch(
        "SELECT player_id, brand, amount FROM tournament_refunds WHERE tournament_id = $1"
        " ORDER BY player_id",
        tid,
    )


# -- the outbox ------------------------------------------------------------------------------


async def add_outgoing(tx: Transaction, rows: Sequence[Outgoing]) -> None:
    if rows:
        await tx.executemany(
            "INSERT INTO tournament_outbox (tournament_id, seq, channel, type, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(o.tournament_id, o.seq, o.channel, o.type, o.data.decode()) for o in rows],
        )


async def outgoing(tx: Transaction, limit: int) -> list[Outgoing]:
    rows = await tx.fetch(
        "SELECT tournament_id, seq, channel, type, data FROM tournament_outbox"
        " ORDER BY tournament_id, seq LIMIT $1",
        limit,
    )
    return [
        Outgoing(r["tournament_id"], int(r["seq"]), r["channel"], r["type"], r["data"].encode())
        for r in rows
    ]


async def remove_outgoing(tx: Transaction, rows: Sequence[Outgoing]) -> None:
    await tx.executemany(
        "DELETE FROM tournament_outbox WHERE tournament_id = $1 AND seq = $2",
        [(o.tournament_id, o.seq) for o in rows],
    )

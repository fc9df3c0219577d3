"""The leaderboards' tables and the SQL that reads and writes them.

Every function takes a :class:`~croupier.storage.Transaction` (a Database is one too), so
the service decides what runs inside one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson

from ...core.ranking import Entry
from ...storage import Database, Row, Transaction
from .rules import Watch

__all__ = [
    "MIGRATIONS",
    "board_entries",
    "claim_keys",
    "delete_watch",
    "entry_of",
    "has_entries",
    "migrate",
    "purge_keys",
    "save_watch",
    "upsert",
    "upsert_sql",
    "watch_of",
    "watches",
]

MIGRATIONS = [
    [
        "CREATE TABLE leaderboard_entries ("
        "board TEXT NOT NULL, player TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, "
        "achieved_at DOUBLE PRECISION NOT NULL, display_name TEXT, mode TEXT NOT NULL, "
        "version BIGINT NOT NULL, PRIMARY KEY (board, player))",
        "CREATE TABLE leaderboard_watches ("
        "board TEXT PRIMARY KEY, channel TEXT NOT NULL, tournament_id TEXT NOT NULL, "
        "ephemeral BOOLEAN NOT NULL)",
    ],
    # Keys of submissions already applied (see Leaderboards.submit), kept KEY_DAYS days.
    ["CREATE TABLE leaderboard_keys (key TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL)"],
]


# ``mode`` is stored with the row only so that the update can read it as excluded.mode.
_UPSERT_HEAD = (
    "INSERT INTO leaderboard_entries AS t "
    "(board, player, score, achieved_at, display_name, mode, version) VALUES "
)
_UPSERT_TAIL = """
ON CONFLICT (board, player) DO UPDATE SET
  score = CASE excluded.mode
    WHEN 'add' THEN t.score + excluded.score
    WHEN 'max' THEN CASE WHEN excluded.score > t.score THEN excluded.score ELSE t.score END
    ELSE excluded.score END,
  achieved_at = CASE excluded.mode
    WHEN 'add' THEN CASE WHEN excluded.score = 0 THEN t.achieved_at
                         ELSE excluded.achieved_at END
    WHEN 'max' THEN CASE WHEN excluded.score > t.score THEN excluded.achieved_at
                         ELSE t.achieved_at END
    ELSE CASE WHEN excluded.score = t.score THEN t.achieved_at
              ELSE excluded.achieved_at END END,
  display_name = COALESCE(excluded.display_name, t.display_name),
  mode = excluded.mode,
  version = t.version + 1
RETURNING board, player, score, achieved_at, display_name, version"""


@functools.cache
def upsert_sql(rows: int) -> str:
    """The upsert of ``rows`` rows of (board, player, score, achieved_at, name, mode)."""
    values = ",".join(
        f"(${i + 1},${i + 2},${i + 3},${i + 4},${i + 5},${i + 6},1)" for i in range(0, rows * 6, 6)
    )
    return _UPSERT_HEAD + values + _UPSERT_TAIL


def entry_of(row: dict[str, Any]) -> Entry:
    """The ranking entry of an ``leaderboard_entries`` row."""
    return Entry(
        row["player"],
        float(row["score"]),
        float(row["achieved_at"]),
        row["display_name"],
        int(row["version"]),
    )


async def migrate(database: Database) -> None:
    """Create or upgrade the tables, and size SQLite's page cache for large boards."""
    await database.migrate("leaderboards", MIGRATIONS)
    if database.dialect == "sqlite":
        # Updates land on random players of large boards: with SQLite's default 2 MB page
        # cache most of them read pages back from the OS. 64 MB holds millions of entries.
        await database.execute("PRAGMA cache_size = -65536")


async def upsert(tx: Transaction, rows: Sequence[tuple[Any, ...]]) -> list[Row]:
    """Apply ``rows`` of (board, player, score, achieved_at, display_name, mode); return
    each written row with its new score and version."""
    args: list[Any] = []
    for row in rows:
        args += row
    return await tx.fetch(upsert_sql(len(rows)), *args)


async def board_entries(tx: Transaction, board: str) -> list[Entry]:
    """Every entry of ``board``."""
    rows = await tx.fetch(
        "SELECT player, score, achieved_at, display_name, version "
        "FROM leaderboard_entries WHERE board = $1",
        board,
    )
    return [entry_of(row) for row in rows]


async def has_entries(tx: Transaction, board: str) -> bool:
    row = await tx.fetchrow(
        "SELECT 1 AS one FROM leaderboard_entries WHERE board = $1 LIMIT 1", board
    )
    return row is not None


async def purge_keys(tx: Transaction, before: float) -> None:
    """Forget the submission keys applied before ``before`` (seconds since the epoch)."""
    await tx.execute("DELETE FROM leaderboard_keys WHERE at < $1", before)


async def claim_keys(tx: Transaction, keys: Sequence[str], now: float) -> set[str]:
    """Record ``keys`` as applied at ``now``; return those that were not already."""
    values = ", ".join(f"(${i + 2}, $1)" for i in range(len(keys)))
    rows = await tx.fetch(
        f"INSERT INTO leaderboard_keys (key, at) VALUES {values} "
        "ON CONFLICT (key) DO NOTHING RETURNING key",
        now,
        *keys,
    )
    return {row["key"] for row in rows}


def _watch(row: Row) -> Watch:
    return Watch(row["channel"], orjson.loads(row["tournament_id"]), bool(row["ephemeral"]))


async def watches(tx: Transaction) -> list[tuple[str, Watch]]:
    """Every watched board and its watch."""
    return [
        (row["board"], _watch(row)) for row in await tx.fetch("SELECT * FROM leaderboard_watches")
    ]


async def watch_of(tx: Transaction, board: str) -> Watch | None:
    row = await tx.fetchrow("SELECT * FROM leaderboard_watches WHERE board = $1", board)
    return None if row is None else _watch(row)


async def save_watch(tx: Transaction, board: str, watch: Watch) -> None:
    """Watch ``board`` (replacing its watch, if any)."""
    await tx.execute(
        "INSERT INTO leaderboard_watches (board, channel, tournament_id, ephemeral) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (board) DO UPDATE SET "
        "channel = excluded.channel, tournament_id = excluded.tournament_id, "
        "ephemeral = excluded.ephemeral",
        board,
        watch.channel,
        orjson.dumps(watch.tournament_id).decode(),
        watch.ephemeral,
    )


async def delete_watch(tx: Transaction, board: str) -> None:
    await tx.execute("DELETE FROM leaderboard_watches WHERE board = $1", board)

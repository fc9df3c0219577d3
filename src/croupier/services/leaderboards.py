"""Leaderboards: named boards of player scores, live on every node, pushed once a second.

Rules:

* The database is the truth. A write is one atomic upsert per ``(board, player)``: the new
  score is computed by the database from the row it holds (``add`` and ``max`` read the row
  under its lock), and the row's ``version`` grows by one. The upsert mirrors
  :func:`croupier.core.ranking.apply_mode`.
* Every node holds a :class:`~croupier.core.ranking.Ranking` replica of each board it has
  used, loaded from the database on first use (and, for watched boards, on start). After a
  write, the writing node sends the rows it wrote (absolute values and versions) on the
  board's internal broker channel; every node with the board loaded takes each entry only if
  its version is newer than the one it holds. Replicas therefore converge whatever the order
  or repetition of those messages. A node subscribes to the channel *before* it reads the
  board, so no write falls between the two.
* On one node, submissions go through one writer task that upserts them in batches (one
  statement, one transaction per batch, rows in ``(board, player)`` order so that two nodes
  never lock rows in opposite orders); two submissions for the same player never share a
  batch, so each sees the other's result.
* A watched board pushes ``leaderboard.updated`` (top 10) on its channel at most once a
  second, and at most a second after a change: the first change after a quiet second
  schedules a push for one second after the last push. Across nodes, the node that pushes is
  the one that made the newest change it knows of (changes are ordered by time, then node
  id); every node learns of every change through the internal messages, so exactly one node
  believes itself the newest once they have arrived (two may push in the same second while
  they are in flight). A node that pushes tells the others, which then count their second
  from that push.

Known limits: a broker message lost on the way (a Redis reconnect) leaves that entry stale on
the nodes that missed it until the next write to it or a restart; if the node that made the
newest change stops before its push, the next change pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import orjson
from aiohttp import web

from ..core.ranking import MODES, Entry, Mode, Ranking, Standing
from ..errors import BadRequest, Conflict, CroupierError, Unavailable, shown
from ..events import Event
from ..gateway import Gateway, PublishRequest
from ..logs import now_ts

if TYPE_CHECKING:
    from ..api.openapi import Operation
    from ..storage import Database, Row

__all__ = [
    "BOARD_PATTERN",
    "PLAYER_PATTERN",
    "Leaderboards",
    "Watch",
    "check_board",
    "check_player",
    "number",
    "pushed_entry",
]

log = logging.getLogger(__name__)

BOARD_PATTERN = r"[A-Za-z0-9_.:-]{1,128}"
PLAYER_PATTERN = r"[A-Za-z0-9_.:@=-]{1,128}"
MAX_SCORE = 1e15  # scores (and what ``add`` makes of them) stay exact integers up to here
MAX_NAME = 128
MAX_KEY = 200
KEY_DAYS = 7  # a keyed submission repeated within this many days changes nothing
PUSH_INTERVAL = 1.0  # seconds between two leaderboard.updated pushes of one board
PUSHED_TOP = 10
MAX_BATCH = 500  # rows per upsert: 6 parameters each stays under SQLite's 32,766
SYNC_BYTES = 6000  # an internal message stays under PostgreSQL NOTIFY's 8,000-byte cap
SYNC_TYPE = "leaderboard.sync"
# Internal channels are not in any configured namespace, so clients cannot subscribe to
# them; they go straight to the broker, never through the log.
_SYNC_PREFIX = "croupier-leaderboards:"
CONTROL_CHANNEL = "croupier-leaderboards:control"
_WIRE = "croupier-leaderboards"

_BOARD = re.compile(BOARD_PATTERN)
_PLAYER = re.compile(PLAYER_PATTERN)

_MIGRATIONS = [
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


def _upsert_sql(rows: int) -> str:
    values = ",".join(
        f"(${i + 1},${i + 2},${i + 3},${i + 4},${i + 5},${i + 6},1)" for i in range(0, rows * 6, 6)
    )
    return _UPSERT_HEAD + values + _UPSERT_TAIL


def check_board(board: object) -> str:
    if not isinstance(board, str) or not _BOARD.fullmatch(board):
        raise BadRequest(
            f"invalid board name {shown((board), 80)}: use 1-128 characters from "
            "A-Z a-z 0-9 _ . : -",
            code="bad_board",
        )
    return board


def check_player(player: object) -> str:
    if not isinstance(player, str) or not _PLAYER.fullmatch(player):
        raise BadRequest(
            f"invalid player id {shown((player), 80)}: use 1-128 characters from "
            "A-Z a-z 0-9 _ . : @ = -",
            code="bad_player",
        )
    return player


def _sync_channel(board: str) -> str:
    # Board names may hold what channel names may not (a trailing ':', '::'): hash them.
    return _SYNC_PREFIX + hashlib.blake2b(board.encode(), digest_size=12).hexdigest()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def pushed_entry(s: Standing) -> dict[str, Any]:
    """One place of a ``leaderboard.updated``, in the casino UI's field names."""
    return {
        "position": s.rank,
        "playerId": s.player,
        "displayName": s.display_name,
        "score": number(s.score),
    }


def number(score: float) -> float | int:
    """``score`` as JSON should show it: whole numbers without a fraction."""
    return int(score) if score.is_integer() else score


@dataclass(frozen=True, slots=True)
class Watch:
    """Where a board's ``leaderboard.updated`` goes, and the tournament id it carries."""

    channel: str
    tournament_id: Any
    ephemeral: bool = True


@dataclass(slots=True)
class _Op:
    board: str
    player: str
    score: float
    mode: Mode
    at: float
    display_name: str | None
    done: asyncio.Future[Standing]
    key: str | None = None
    repeated: bool = False  # its key was applied before: it changes nothing


@dataclass(slots=True)
class _Board:
    name: str
    ranking: Ranking = field(default_factory=Ranking)
    loaded: asyncio.Future[None] | None = None
    watch: Watch | None = None
    dirty: bool = False
    latest: tuple[float, str] = (0.0, "")  # newest change known: (time, node)
    last_push: float = -math.inf  # loop time of the last push of this board, by any node
    timer: asyncio.TimerHandle | None = None


class _Sink:
    """The service as a hub subscriber of its internal channels."""

    wire = _WIRE

    def __init__(self, service: Leaderboards) -> None:
        self._service = service

    def push(self, frame: bytes, event: Event) -> None:
        try:
            self._service._received(event)
        except Exception:
            log.exception("a leaderboard sync message could not be applied")


def _no_frame(event: Event) -> bytes:
    return b""


class Leaderboards:
    """The leaderboards service. Use as ``async with Leaderboards(gateway, database):``.

    Boards are named by :data:`BOARD_PATTERN` (``tournament:42``); players by
    :data:`PLAYER_PATTERN`.
    """

    def __init__(self, gateway: Gateway, database: Database) -> None:
        self.gateway = gateway
        self.database = database
        self.node = secrets.token_hex(6)
        self._own = b'{"n":"' + self.node.encode() + b'"'  # how this node's messages start
        self.pushes = 0  # leaderboard.updated events this node published
        self._boards: dict[str, _Board] = {}
        self._queue: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._sink = _Sink(self)
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sql: dict[int, str] = {}
        self._keys_purged = 0.0
        self._subscribed: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Operation]:
        from .leaderboards_http import OPERATIONS

        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        from .leaderboards_http import routes

        return routes(self)

    async def __aenter__(self) -> Self:
        await self.database.migrate("leaderboards", _MIGRATIONS)
        if self.database.dialect == "sqlite":
            # Updates land on random players of large boards: with SQLite's default 2 MB page
            # cache most of them read pages back from the OS. 64 MB holds millions of entries.
            await self.database.execute("PRAGMA cache_size = -65536")
        self.gateway.hub.add_wire(_WIRE, _no_frame)
        await self._subscribe(CONTROL_CHANNEL)
        self._writer = asyncio.create_task(self._write_forever())
        for row in await self.database.fetch("SELECT * FROM leaderboard_watches"):
            board = await self._board(row["board"])
            board.watch = Watch(
                row["channel"], orjson.loads(row["tournament_id"]), bool(row["ephemeral"])
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        while self._queue:
            op = self._queue.popleft()
            if not op.done.done():
                op.done.set_exception(Unavailable("the leaderboards service is stopping"))
        for board in self._boards.values():
            if board.timer is not None:
                board.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._subscribed:
            self.gateway.hub.unsubscribe(self._sink, channel)
        self._subscribed.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, channel: str) -> None:
        await self.gateway.hub.subscribe(
            self._sink, channel, since=None, stored=False, announce=lambda result: None
        )
        self._subscribed.append(channel)

    # -- boards ----------------------------------------------------------------------------

    async def _board(self, name: str) -> _Board:
        """The board ``name``, loaded (subscribed to its sync channel, then read)."""
        board = self._boards.get(name)
        if board is None:
            board = self._boards[name] = _Board(name)
            board.loaded = asyncio.ensure_future(self._load(board))
        assert board.loaded is not None
        if not board.loaded.done():
            try:
                await asyncio.shield(board.loaded)
            except CroupierError:
                raise
            except Exception as exc:
                raise Unavailable(f"cannot load leaderboard {shown(name)}: {exc}") from exc
        elif board.loaded.exception() is not None:
            raise Unavailable(f"cannot load leaderboard {shown(name)}")
        return board

    async def _load(self, board: _Board) -> None:
        try:
            await self._subscribe(_sync_channel(board.name))
            rows = await self.database.fetch(
                "SELECT player, score, achieved_at, display_name, version "
                "FROM leaderboard_entries WHERE board = $1",
                board.name,
            )
        except BaseException:
            if self._boards.get(board.name) is board:
                del self._boards[board.name]
            with contextlib.suppress(ValueError):
                self._subscribed.remove(_sync_channel(board.name))
                self.gateway.hub.unsubscribe(self._sink, _sync_channel(board.name))
            raise
        put = board.ranking.put
        for row in rows:
            put(_entry(row))

    async def _loaded(self, name: str) -> _Board | None:
        """The board if it is loaded or has entries in the database; ``None`` otherwise (a
        query for a board nobody wrote to must not make this node hold it)."""
        check_board(name)
        if name not in self._boards:
            row = await self.database.fetchrow(
                "SELECT 1 AS one FROM leaderboard_entries WHERE board = $1 LIMIT 1", name
            )
            if row is None and name not in self._boards:
                return None
        return await self._board(name)

    # -- writing ---------------------------------------------------------------------------

    async def submit(
        self,
        board: str,
        player: str,
        score: float,
        *,
        mode: Mode = "set",
        at: float | None = None,
        display_name: str | None = None,
        key: str | None = None,
    ) -> Standing:
        """Record a score and return the player's standing once it is stored.

        Args:
            board: the board's name, e.g. ``tournament:42``.
            player: the player's id.
            score: the score (``set``), the points to add (``add``), or a candidate best
                (``max``); finite, at most 1e15 in absolute value.
            mode: ``set``, ``add`` or ``max`` (see :func:`~croupier.core.ranking.apply_mode`).
            at: when the score was achieved (seconds since the epoch); default: now.
            display_name: the player's name as boards show it; kept when ``None``.
            key: an idempotency key: a submission whose key was applied in the last
                :data:`KEY_DAYS` days changes nothing and answers the current standing
                (the key is stored in the transaction that applies the score, so a retry
                after a crash never counts an ``add`` twice).

        Raises:
            Conflict: ``key`` was applied to another player, who has no score here.

        Raises:
            BadRequest: a bad board name, player id, score, mode or name.
            Unavailable: the database did not take the write; nothing changed.
        """
        check_board(board)
        check_player(player)
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise BadRequest("score must be a number", code="bad_score")
        if not math.isfinite(score) or abs(score) > MAX_SCORE:
            raise BadRequest(f"score must be finite and at most {MAX_SCORE:.0e} in size")
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}", code="bad_mode")
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY):
            raise BadRequest(f"key must be 1-{MAX_KEY} characters", code="bad_key")
        if display_name is not None and (
            not isinstance(display_name, str) or not 0 < len(display_name) <= MAX_NAME
        ):
            raise BadRequest(f"display_name must be 1-{MAX_NAME} characters")
        when = time.time() if at is None else float(at)
        if not math.isfinite(when):
            raise BadRequest("at must be a finite time")
        await self._board(board)
        done: asyncio.Future[Standing] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(board, player, float(score), mode, when, display_name, done, key))
        self._wake.set()
        return await done

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                try:
                    await self._write(batch)
                except Exception as exc:
                    if not isinstance(exc, Unavailable):
                        log.exception("a leaderboard write failed")
                        exc = Unavailable(f"the leaderboard write failed: {exc}")
                    for op in batch:
                        if not op.done.done():
                            op.done.set_exception(exc)

    def _take(self) -> list[_Op]:
        """Up to :data:`MAX_BATCH` queued submissions, at most one per (board, player);
        the others stay queued in their order."""
        queue = self._queue
        batch: list[_Op] = []
        later: list[_Op] = []
        seen: set[tuple[str, str]] = set()
        while queue and len(batch) < MAX_BATCH:
            op = queue.popleft()
            key = (op.board, op.player)
            if key in seen:
                later.append(op)
            else:
                seen.add(key)
                batch.append(op)
        queue.extendleft(reversed(later))
        return batch

    async def _write(self, batch: list[_Op]) -> None:
        batch.sort(key=lambda op: (op.board, op.player))
        if any(op.key is not None for op in batch):
            rows = await self._write_keyed(batch)
        else:
            rows = await self.database.fetch(*self._upsert(batch))
        now = time.time()
        written: dict[str, list[Entry]] = {}
        for row in rows:
            written.setdefault(row["board"], []).append(_entry(row))
        for name, entries in written.items():
            self._apply(name, entries, (now, self.node))
        for op in batch:
            board = self._boards.get(op.board)
            standing = board.ranking.standing(op.player) if board is not None else None
            if not op.done.done():
                if standing is None and op.repeated:
                    message = f"key {shown(op.key)} was used for another submission"
                    op.done.set_exception(Conflict(message, code="key_used"))
                elif standing is None:
                    op.done.set_exception(Unavailable("the write was not confirmed"))
                else:
                    op.done.set_result(standing)
        for name, entries in written.items():
            await self._send(name, {"n": self.node, "t": now}, entries)

    def _upsert(self, ops: list[_Op]) -> list[Any]:
        """The upsert of ``ops``: its SQL, then its arguments."""
        args: list[Any] = []
        for op in ops:
            args += (op.board, op.player, op.score, op.at, op.display_name, op.mode)
        sql = self._sql.get(len(ops))
        if sql is None:
            sql = self._sql[len(ops)] = _upsert_sql(len(ops))
        return [sql, *args]

    async def _write_keyed(self, batch: list[_Op]) -> list[Row]:
        """Apply the ops whose key is new (and those without one), and store the keys, in
        one transaction; an op whose key was applied before is left out."""
        now = time.time()
        keys = list(dict.fromkeys(op.key for op in batch if op.key is not None))
        async with self.database.transaction() as tx:
            if now - self._keys_purged > 3600:
                stale = now - KEY_DAYS * 86400
                await tx.execute("DELETE FROM leaderboard_keys WHERE at < $1", stale)
                self._keys_purged = now
            values = ", ".join(f"(${i + 2}, $1)" for i in range(len(keys)))
            fresh = {
                row["key"]
                for row in await tx.fetch(
                    f"INSERT INTO leaderboard_keys (key, at) VALUES {values} "
                    "ON CONFLICT (key) DO NOTHING RETURNING key",
                    now,
                    *keys,
                )
            }
            ops = []
            for op in batch:  # a key twice in one batch: its first op only
                if op.key is None or op.key in fresh:
                    fresh.discard(op.key)
                    ops.append(op)
                else:
                    op.repeated = True
            return await tx.fetch(*self._upsert(ops)) if ops else []

    def _apply(self, name: str, entries: list[Entry], change: tuple[float, str]) -> None:
        board = self._boards.get(name)
        if board is None or board.loaded is None:
            return
        put = board.ranking.put
        changed = False
        for entry in entries:
            changed = put(entry) or changed
        if changed:
            if change > board.latest:
                board.latest = change
            self._changed(board)

    async def _send(self, name: str, head: dict[str, Any], entries: list[Entry]) -> None:
        """Send ``entries`` to the other nodes, in messages small enough for any broker."""
        channel = _sync_channel(name)
        events: list[Event] = []
        rows: list[Any] = []
        size = 0
        ts = now_ts()
        for entry in [*entries, None]:
            if entry is not None:
                row = (
                    entry.player,
                    entry.score,
                    entry.achieved_at,
                    entry.display_name,
                    entry.version,
                )
                rows.append(row)
                size += 40 + len(entry.player) + len(entry.display_name or "")
            if rows and (entry is None or size > SYNC_BYTES):
                payload = orjson.dumps({**head, "b": name, "e": rows})
                events.append(Event(channel, SYNC_TYPE, payload, ts))
                rows, size = [], 0
        if not entries:
            events.append(Event(channel, SYNC_TYPE, orjson.dumps({**head, "b": name}), ts))
        try:
            await self.gateway.broker.publish(events)
        except Exception as exc:
            log.warning("leaderboard %r: other nodes not told of a change: %s", name, exc)

    def _received(self, event: Event) -> None:
        if event.type != SYNC_TYPE:
            return
        if event.payload.startswith(self._own):
            return  # this node's own message: already applied
        doc = orjson.loads(event.payload)
        if event.channel == CONTROL_CHANNEL:
            self._spawn(self._control(doc))
            return
        name = doc["b"]
        board = self._boards.get(name)
        if board is None:
            return
        if "pushed" in doc:
            board.last_push = asyncio.get_running_loop().time()
            return
        entries = [Entry(p, float(s), float(a), d, v) for p, s, a, d, v in doc.get("e", ())]
        self._apply(name, entries, (float(doc["t"]), str(doc["n"])))

    # -- watching and pushing --------------------------------------------------------------

    async def watch(
        self, board: str, channel: str, tournament_id: Any, *, ephemeral: bool = True
    ) -> None:
        """Push ``leaderboard.updated`` for ``board`` on ``channel`` from now on, on every node,
        and after restarts, until :meth:`unwatch`. Watching again replaces the watch.

        The event is ``{tournamentId, leaderboard: [{position, playerId, displayName,
        score}] (top 10), lastUpdated}``, at most once a second and at most a second after a
        change; none when nothing changed. ``ephemeral=False`` stores each push in the
        channel's history.

        Raises:
            BadRequest: a bad board name, or a channel the gateway refuses.
        """
        check_board(board)
        self.gateway.check(PublishRequest(channel, "leaderboard.updated", b"{}"))
        tid = orjson.dumps(tournament_id).decode()
        await self.database.execute(
            "INSERT INTO leaderboard_watches (board, channel, tournament_id, ephemeral) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (board) DO UPDATE SET "
            "channel = excluded.channel, tournament_id = excluded.tournament_id, "
            "ephemeral = excluded.ephemeral",
            board,
            channel,
            tid,
            ephemeral,
        )
        (await self._board(board)).watch = Watch(channel, tournament_id, ephemeral)
        await self._control_send({"b": board, "w": True})

    async def unwatch(self, board: str) -> None:
        """Stop pushing ``board`` (on every node)."""
        check_board(board)
        await self.database.execute("DELETE FROM leaderboard_watches WHERE board = $1", board)
        existing = self._boards.get(board)
        if existing is not None:
            existing.watch = None
        await self._control_send({"b": board, "w": False})

    async def _control_send(self, doc: dict[str, Any]) -> None:
        payload = orjson.dumps({**doc, "n": self.node})
        try:
            await self.gateway.broker.publish(
                [Event(CONTROL_CHANNEL, SYNC_TYPE, payload, now_ts())]
            )
        except Exception as exc:
            log.warning("other nodes not told of a leaderboard watch change: %s", exc)

    async def _control(self, doc: dict[str, Any]) -> None:
        """Another node's watch or unwatch: read the watch from the database."""
        if doc.get("n") == self.node:
            return
        name = doc["b"]
        try:
            row = await self.database.fetchrow(
                "SELECT * FROM leaderboard_watches WHERE board = $1", name
            )
            if row is None:
                if name in self._boards:
                    self._boards[name].watch = None
                return
            board = await self._board(name)
        except Exception:
            log.exception("leaderboard %r: cannot read its watch", name)
            return
        board.watch = Watch(
            row["channel"], orjson.loads(row["tournament_id"]), bool(row["ephemeral"])
        )

    def _changed(self, board: _Board) -> None:
        board.dirty = True
        if board.timer is None and board.watch is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, board.last_push + PUSH_INTERVAL - loop.time())
            board.timer = loop.call_later(delay, self._due, board)

    def _due(self, board: _Board) -> None:
        board.timer = None
        watch = board.watch
        if not board.dirty or watch is None or self._boards.get(board.name) is not board:
            return
        board.dirty = False
        board.last_push = asyncio.get_running_loop().time()
        if board.latest[1] != self.node:
            return  # the node that made the newest change pushes this one
        data = _pushed(watch.tournament_id, board)
        self.pushes += 1
        self._spawn(self._push(board.name, watch, data))

    async def pushed(self, board: str, tournament_id: Any) -> dict[str, Any]:
        """The data of a ``leaderboard.updated`` of ``board`` as it stands now: what a
        newcomer is shown before the next push (an empty ``leaderboard`` for a board
        without scores)."""
        loaded = await self._loaded(board)
        if loaded is None:
            return {"tournamentId": tournament_id, "leaderboard": [], "lastUpdated": None}
        return _pushed(tournament_id, loaded)

    async def _push(self, name: str, watch: Watch, data: dict[str, Any]) -> None:
        try:
            await self.gateway.publish_json(
                watch.channel, "leaderboard.updated", data, ephemeral=watch.ephemeral
            )
        except CroupierError as exc:
            log.warning("leaderboard %r: push to %s failed: %s", name, watch.channel, exc)
        await self._send(name, {"n": self.node, "pushed": True}, [])

    # -- reading ---------------------------------------------------------------------------

    async def size(self, board: str) -> int:
        loaded = await self._loaded(board)
        return 0 if loaded is None else len(loaded.ranking)

    async def rank(self, board: str, player: str) -> int | None:
        """``player``'s rank on ``board`` (1 = first), or ``None`` if they have no score."""
        loaded = await self._loaded(board)
        return None if loaded is None else loaded.ranking.rank(player)

    async def standing(self, board: str, player: str) -> Standing | None:
        loaded = await self._loaded(board)
        return None if loaded is None else loaded.ranking.standing(player)

    async def top(self, board: str, n: int = 10) -> list[Standing]:
        """The first ``n`` standings of ``board`` (empty for a board without scores)."""
        loaded = await self._loaded(board)
        return [] if loaded is None else loaded.ranking.top(n)

    async def around(self, board: str, player: str, n: int = 5) -> list[Standing]:
        """Up to ``n`` standings either side of ``player``'s, and theirs; empty if they have
        no score."""
        loaded = await self._loaded(board)
        return [] if loaded is None else loaded.ranking.around(player, n)


def _pushed(tournament_id: Any, board: _Board) -> dict[str, Any]:
    return {
        "tournamentId": tournament_id,
        "leaderboard": [pushed_entry(s) for s in board.ranking.top(PUSHED_TOP)],
        "lastUpdated": _iso(board.latest[0]) if board.latest[0] else None,
    }


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        row["player"],
        float(row["score"]),
        float(row["achieved_at"]),
        row["display_name"],
        int(row["version"]),
    )

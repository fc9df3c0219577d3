"""The leaderboards service: boards replicated on every node, written in batches, pushed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...api.openapi import Operation
from ...core.ranking import MODES, Entry, Mode, Ranking, Standing
from ...errors import BadRequest, Conflict, CroupierError, Unavailable, shown
from ...events import Event
from ...gateway import Gateway, PublishRequest
from ...logs import now_ts
from ...storage import Database, Row
from ...tasks import Background, stop_task
from . import store
from .api import OPERATIONS, routes
from .rules import (
    CONTROL_CHANNEL,
    KEY_DAYS,
    MAX_BATCH,
    MAX_KEY,
    MAX_NAME,
    MAX_SCORE,
    PUSH_INTERVAL,
    PUSHED_TOP,
    SYNC_BYTES,
    SYNC_TYPE,
    Watch,
    check_board,
    check_player,
    iso,
    pushed_entry,
    sync_channel,
)

__all__ = ["Leaderboards"]

log = logging.getLogger(__name__)


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
        self._writer: asyncio.Task[None] | None = None
        self._background = Background()  # control messages and pushes to watchers
        self._keys_purged = 0.0
        self._subscribed: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def operations(self) -> Sequence[Operation]:
        return OPERATIONS

    def routes(self) -> list[web.RouteDef]:
        return routes(self)

    async def __aenter__(self) -> Self:
        await store.migrate(self.database)
        await self._listen(CONTROL_CHANNEL)
        self._writer = asyncio.create_task(self._write_forever())
        for name, watch in await store.watches(self.database):
            (await self._board(name)).watch = watch
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._writer)
        while self._queue:
            op = self._queue.popleft()
            if not op.done.done():
                op.done.set_exception(Unavailable("the leaderboards service is stopping"))
        for board in self._boards.values():
            if board.timer is not None:
                board.timer.cancel()
        await self._background.close()
        for channel in self._subscribed:
            self.gateway.hub.unlisten(channel, self._received)
        self._subscribed.clear()

    async def _listen(self, channel: str) -> None:
        """Take the nodes' internal messages on ``channel`` (see :meth:`_received`)."""
        await self.gateway.hub.listen(channel, self._received)
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
            await self._listen(sync_channel(board.name))
            entries = await store.board_entries(self.database, board.name)
        except BaseException:
            if self._boards.get(board.name) is board:
                del self._boards[board.name]
            with contextlib.suppress(ValueError):
                self._subscribed.remove(sync_channel(board.name))
                self.gateway.hub.unlisten(sync_channel(board.name), self._received)
            raise
        put = board.ranking.put
        for entry in entries:
            put(entry)

    async def _loaded(self, name: str) -> _Board | None:
        """The board if it is loaded or has entries in the database; ``None`` otherwise (a
        query for a board nobody wrote to must not make this node hold it)."""
        check_board(name)
        if name not in self._boards:
            known = await store.has_entries(self.database, name)
            if not known and name not in self._boards:
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
            rows = await store.upsert(self.database, [_row(op) for op in batch])
        now = time.time()
        written: dict[str, list[Entry]] = {}
        for row in rows:
            written.setdefault(row["board"], []).append(store.entry_of(row))
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

    async def _write_keyed(self, batch: list[_Op]) -> list[Row]:
        """Apply the ops whose key is new (and those without one), and store the keys, in
        one transaction; an op whose key was applied before is left out."""
        now = time.time()
        keys = list(dict.fromkeys(op.key for op in batch if op.key is not None))
        async with self.database.transaction() as tx:
            if now - self._keys_purged > 3600:
                stale = now - KEY_DAYS * 86400
                await store.purge_keys(tx, stale)
                self._keys_purged = now
            fresh = await store.claim_keys(tx, keys, now)
            ops = []
            for op in batch:  # a key twice in one batch: its first op only
                if op.key is None or op.key in fresh:
                    fresh.discard(op.key)
                    ops.append(op)
                else:
                    op.repeated = True
            return await store.upsert(tx, [_row(op) for op in ops]) if ops else []

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
        channel = sync_channel(name)
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
            self._background.spawn(self._control(doc))
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
        watch = Watch(channel, tournament_id, ephemeral)
        await store.save_watch(self.database, board, watch)
        (await self._board(board)).watch = watch
        await self._control_send({"b": board, "w": True})

    async def unwatch(self, board: str) -> None:
        """Stop pushing ``board`` (on every node)."""
        check_board(board)
        await store.delete_watch(self.database, board)
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
            watch = await store.watch_of(self.database, name)
            if watch is None:
                if name in self._boards:
                    self._boards[name].watch = None
                return
            board = await self._board(name)
        except Exception:
            log.exception("leaderboard %r: cannot read its watch", name)
            return
        board.watch = watch

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
        self._background.spawn(self._push(board.name, watch, data))

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
        "lastUpdated": iso(board.latest[0]) if board.latest[0] else None,
    }


def _row(op: _Op) -> tuple[Any, ...]:
    return (op.board, op.player, op.score, op.at, op.display_name, op.mode)

"""Who is registered in an active tournament, held in memory for the channel's greetings.

A reconnect storm greets every returning subscriber of ``tournament:{id}``; asking the
database for each one made a subscription cost a round trip. The roster keeps, per
registering or running tournament, every registered player (id, brand, entries, score,
elimination), read with one query when first needed (concurrent askers share that one
read) and dropped when the tournament completes or is cancelled.

Several nodes: this node's own registrations, scores, eliminations, rebuys and transitions
update the roster as they commit, so on one node it is exact. Another node's changes reach
this node only as channel events, which a service does not see here (publish listeners hear
this node's publishes only), and keeping a copy in step from them would need every field the
greeting shows in every event. So a roster is also read again after :data:`FRESH` seconds: a
player registered (or a tournament completed) on another node is greeted (or no longer
greeted) at most that late, and the cost stays one shared read per tournament per window
however many subscribe. Positions come from the live ranking when the leaderboards service
keeps one (replicated, so exact across nodes); otherwise from this roster's scores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...storage import Database
from . import store
from .rules import Status
from .store import Player

__all__ = ["FRESH", "Roster"]

FRESH = 1.0  # seconds a roster read serves before another node's changes are read again

_KEPT = 60  # windows a roster nobody asks about is kept before it is forgotten

_ACTIVE = (Status.REGISTERING, Status.RUNNING)


@dataclass(slots=True)
class _Entry:
    players: dict[str, Player]
    read_at: float
    ranks: dict[str, int] | None = None  # sorted once per change, not once per greeting


@dataclass(slots=True)
class _Read:
    """A read in flight, and the changes this node made meanwhile (applied over it)."""

    done: asyncio.Future[_Entry | None]  # the read's task
    noted: dict[str, Player] = field(default_factory=dict)
    ended: bool = False


class Roster:
    """The registered players of active tournaments, by tournament."""

    def __init__(
        self,
        database: Database,
        *,
        fresh: float = FRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.fresh = fresh
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._reads: dict[str, _Read] = {}

    async def player(self, tid: str, pid: str) -> Player | None:
        """``pid`` in tournament ``tid`` if it is registering or running, else ``None``."""
        entry = await self._entry(tid)
        return None if entry is None else entry.players.get(pid)

    def position(self, p: Player) -> int:
        """``p``'s place among the roster's players: score descending, earlier achievement
        first, then player id (the order of the tables and of the leaderboards)."""
        entry = self._entries.get(p.tournament_id)
        if entry is None or p.player_id not in entry.players:
            return 1
        if entry.ranks is None:
            ranked = sorted(entry.players.values(), key=_order)
            entry.ranks = {o.player_id: i + 1 for i, o in enumerate(ranked)}
        return entry.ranks[p.player_id]

    def note(self, p: Player) -> None:
        """This node committed ``p`` (registered, scored, eliminated, rebought)."""
        entry = self._entries.get(p.tournament_id)
        if entry is not None:
            entry.players[p.player_id] = p
            entry.ranks = None
        read = self._reads.get(p.tournament_id)
        if read is not None:
            read.noted[p.player_id] = p

    def status(self, tid: str, status: Status) -> None:
        """This node moved tournament ``tid`` to ``status``: a finished one is dropped."""
        if status in _ACTIVE:
            return
        self._entries.pop(tid, None)
        read = self._reads.get(tid)
        if read is not None:
            read.ended = True

    async def _entry(self, tid: str) -> _Entry | None:
        entry = self._entries.get(tid)
        if entry is not None and self.clock() - entry.read_at < self.fresh:
            return entry
        read = self._reads.get(tid)
        if read is None:
            # A task of its own: a subscriber that leaves mid-read cancels only its wait.
            read = self._reads[tid] = _Read(asyncio.ensure_future(self._load(tid)))
        return await asyncio.shield(read.done)

    async def _load(self, tid: str) -> _Entry | None:
        read = self._reads[tid]
        try:
            loaded = await self._read(tid)
        finally:
            del self._reads[tid]
        now = self.clock()
        for old in [k for k, e in self._entries.items() if now - e.read_at > _KEPT * self.fresh]:
            del self._entries[old]  # of tournaments nobody asked about lately
        if read.ended:
            self._entries.pop(tid, None)
            return None
        loaded.players.update(read.noted)
        self._entries[tid] = loaded
        return loaded

    async def _read(self, tid: str) -> _Entry:
        read_at = self.clock()
        players = await store.active_players(self.database, tid)
        return _Entry({p.player_id: p for p in players}, read_at)


def _order(p: Player) -> tuple[float, float, str]:
    return (-p.score, p.reached_at, p.player_id)

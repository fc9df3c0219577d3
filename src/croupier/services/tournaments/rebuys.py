"""The rebuy round trip: a player asks, the casino backend confirms (it took the payment) or
declines; ``rebuy.requested``, ``rebuy.success`` and ``rebuy.failed`` tell both sides.

Rules:

* One request per player is open at a time; asking again returns it.
* A confirmation adds an entry only while the tournament runs and the player has entries
  left; otherwise the request fails (``rebuy.failed``). Every decision runs in a transaction
  that locks the tournament row, so concurrent confirmations never exceed the maximum.
* A repeated confirmation or decline is a no-op that answers with the request.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from ...errors import Conflict, NotFound
from ...storage import Database
from . import rules, store
from . import schemas as s
from .batch import Batch
from .rules import Op
from .store import Player, Rebuy, Tournament
from .values import money

__all__ = ["Rebuys"]

Lookup = Callable[..., Awaitable[Tournament]]


class Rebuys:
    """The rebuys of every tournament.

    Args:
        database: the services' database.
        tournament: ``await tournament(tx, tid, lock=True)`` reads a tournament, or raises
            NotFound.
        flush: publishes what the outbox holds.
        on_player: told each player a confirmed rebuy changed, once it is committed.
    """

    def __init__(
        self,
        database: Database,
        tournament: Lookup,
        flush: Callable[[], Awaitable[None]],
        *,
        on_player: Callable[[Player], None] = lambda p: None,
    ) -> None:
        self.db = database
        self._tournament = tournament
        self.flush = flush
        self.on_player = on_player

    def view(
        self, t: Tournament, r: Rebuy, entries: int, *, duplicate: bool = False
    ) -> s.RebuyReply:
        return s.RebuyReply(
            tournament_id=t.id,
            request_id=r.request_id,
            player_id=r.player_id,
            status=r.status,  # type: ignore[arg-type]
            rebuy_amount=money(r.amount),
            entry_count=entries,
            max_entries=t.config.max_entries,
            remaining_rebuys=rules.remaining_rebuys(entries, t.config.max_entries),
            error=r.error,
            duplicate=duplicate,
        )

    async def status(self, tid: str, rid: str) -> s.RebuyReply:
        t = await self._tournament(self.db, tid)
        r = await store.get_rebuy(self.db, tid, rid)
        if r is None:
            raise NotFound(f"no rebuy request {rid} in tournament {tid}")
        p = await store.get_player(self.db, tid, r.player_id)
        return self.view(t, r, p.entries if p is not None else r.entries)

    async def request(self, tid: str, pid: str) -> s.RebuyReply:
        """A player asks for a rebuy: ``rebuy.requested`` for the casino backend to decide.

        One request per player is open at a time; asking again returns it.

        Raises:
            Conflict: the tournament is not running or the player has no rebuys left (a
                ``rebuy.failed`` is sent to the player too).
        """
        now = time.time()
        refused: Conflict | None = None
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            p = await store.get_player(tx, tid, pid)
            if p is None:
                raise NotFound(f"player {pid} is not in tournament {tid}")
            open_request = await store.pending_rebuy(tx, tid, pid)
            if open_request is not None:
                return self.view(t, open_request, p.entries, duplicate=True)
            c = t.config
            r = Rebuy(
                tid, secrets.token_hex(8), pid, "pending", c.rebuy_price, now, None, None, p.entries
            )
            batch = Batch(t)
            refused = _refusal(t, p)
            if refused is not None:
                r = replace(r, status="failed", decided_at=now, error=refused.message)
                _failed(batch, t, p, r)
            else:
                requested = {
                    "tournamentId": tid,
                    "playerId": pid,
                    "requestId": r.request_id,
                    "rebuyAmount": money(r.amount),
                    "currentEntries": p.entries,
                    "maxEntries": c.max_entries,
                }
                batch.add(t.channel, "rebuy.requested", requested)
                batch.add(p.channel, "rebuy.requested", requested)
            await store.put_rebuy(tx, r)
            t = await batch.write(tx, t)
        await self.flush()
        if refused is not None:
            raise refused
        return self.view(t, r, p.entries)

    async def confirm(self, tid: str, rid: str) -> s.RebuyReply:
        """The casino backend took the payment: add the entry, unless the maximum is reached.

        A repeated confirmation is a no-op that returns the confirmed request.

        Raises:
            Conflict: the request was declined or failed, or it cannot be honoured now
                (the request then fails, with ``rebuy.failed``).
        """
        now = time.time()
        refused: Conflict | None = None
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            r = await store.get_rebuy(tx, tid, rid, lock=True)
            if r is None:
                raise NotFound(f"no rebuy request {rid} in tournament {tid}")
            p = await store.get_player(tx, tid, r.player_id, lock=True)
            assert p is not None
            if r.status == "confirmed":
                return self.view(t, r, p.entries, duplicate=True)
            if r.status != "pending":
                raise Conflict(f"rebuy {rid} is {r.status}", code="rebuy_closed")
            c = t.config
            batch = Batch(t)
            refused = _refusal(t, p)
            if refused is not None:
                r = replace(r, status="failed", decided_at=now, error=refused.message)
                _failed(batch, t, p, r)
            else:
                p = replace(
                    p,
                    entries=p.entries + 1,
                    paid=p.paid + r.amount,
                    entry_scores=(*p.entry_scores, 0.0),
                    eliminated_at=None,
                    elimination_round=None,
                )
                await store.save_player(tx, p)
                t = replace(t, collected=t.collected + r.amount)
                r = replace(r, status="confirmed", decided_at=now, entries=p.entries)
                success = {
                    "tournamentId": tid,
                    "playerId": p.player_id,
                    "requestId": rid,
                    "newEntryCount": p.entries,
                    "remainingRebuys": rules.remaining_rebuys(p.entries, c.max_entries),
                }
                batch.add(t.channel, "rebuy.success", success)
                batch.add(p.channel, "rebuy.success", success)
            await store.put_rebuy(tx, r)
            t = await batch.write(tx, t)
        if refused is None:
            self.on_player(p)
        await self.flush()
        if refused is not None:
            raise refused
        return self.view(t, r, p.entries)

    async def decline(self, tid: str, rid: str, error: str) -> s.RebuyReply:
        """The casino backend refused (no funds, say): ``rebuy.failed`` with its reason."""
        now = time.time()
        async with self.db.transaction() as tx:
            t = await self._tournament(tx, tid, lock=True)
            r = await store.get_rebuy(tx, tid, rid, lock=True)
            if r is None:
                raise NotFound(f"no rebuy request {rid} in tournament {tid}")
            p = await store.get_player(tx, tid, r.player_id)
            assert p is not None
            if r.status == "declined":
                return self.view(t, r, p.entries, duplicate=True)
            if r.status != "pending":
                raise Conflict(f"rebuy {rid} is {r.status}", code="rebuy_closed")
            r = replace(r, status="declined", decided_at=now, error=error)
            batch = Batch(t)
            _failed(batch, t, p, r)
            await store.put_rebuy(tx, r)
            t = await batch.write(tx, t)
        await self.flush()
        return self.view(t, r, p.entries)


def _refusal(t: Tournament, p: Player) -> Conflict | None:
    """Why a rebuy cannot be had now (asked for or confirmed), or ``None``."""
    if t.status not in rules.ALLOWED[Op.REBUY]:
        return Conflict(f"tournament {t.id} is {t.status.value}", code="not_running")
    if p.entries >= t.config.max_entries:
        return Conflict(
            f"player {p.player_id} has all {t.config.max_entries} entries", code="max_entries"
        )
    return None


def _failed(batch: Batch, t: Tournament, p: Player, r: Rebuy) -> None:
    failed = {
        "tournamentId": t.id,
        "playerId": p.player_id,
        "requestId": r.request_id,
        "error": r.error,
    }
    batch.add(t.channel, "rebuy.failed", failed)
    batch.add(p.channel, "rebuy.failed", failed)

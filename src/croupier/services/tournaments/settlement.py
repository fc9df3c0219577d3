"""The end of a tournament: final positions and prizes, or the refunds of a cancellation.

Both run inside the transaction that ends the tournament and add their events to its batch,
so the results, the prizes and the winners' notifications happen exactly once.
"""

from __future__ import annotations

import uuid
from typing import Any

from ...storage import Transaction
from ..notifications import keep_published
from ..players import Player as Recipient
from . import rules, store
from .batch import Batch
from .store import Player, Tournament
from .values import casino_id, casino_time, iso, money, number

__all__ = ["RESULTS_IN_EVENT", "WINNERS_IN_EVENT", "refund", "settle", "win_notice"]

RESULTS_IN_EVENT = 500  # finalResults entries in the channel's tournament.completed
WINNERS_IN_EVENT = 100


async def settle(tx: Transaction, t: Tournament, batch: Batch, now: float) -> None:
    """Final positions and prizes, stored once, with the events that announce them."""
    c = t.config
    everyone = {p.player_id: p for p in await store.players(tx, t.id)}
    pool = rules.prize_pool(c.guaranteed, t.collected)
    prizes = rules.prizes_by_position(c.prizes, pool, len(everyone))
    placements = rules.settle(
        (rules.Standing(p.player_id, p.score, p.reached_at) for p in everyone.values()),
        prizes,
        c.ties,
    )
    await store.insert_results(
        tx, t.id, [(r.player, r.position, r.points, r.prize) for r in placements]
    )
    paid = [r for r in placements if r.prize > 0] or [r for r in placements if r.position == 1]
    winners = [
        {
            "position": r.position,
            "playerId": r.player,
            "displayName": everyone[r.player].display_name,
            "prizeAmount": money(r.prize),
        }
        for r in paid[:WINNERS_IN_EVENT]
    ]
    completed = iso(now)
    batch.add(
        t.channel,
        "tournament.completed",
        {
            "tournamentId": t.id,
            "completedAt": completed,
            "playerCount": len(placements),
            "prizePool": money(pool),
            "finalResults": [
                {
                    "playerId": r.player,
                    "position": r.position,
                    "points": number(r.points),
                    "prizeAmount": money(r.prize),
                }
                for r in placements[:RESULTS_IN_EVENT]
            ],
            "resultsTruncated": len(placements) > RESULTS_IN_EVENT,
            "winners": winners,
        },
    )
    for r in placements:
        p = everyone[r.player]
        batch.add(
            p.channel,
            "tournament.completed",
            {
                "tournamentId": t.id,
                "completedAt": completed,
                "finalResults": {
                    "position": r.position,
                    "points": number(r.points),
                    "prizeAmount": money(r.prize),
                },
                "winners": winners,
            },
        )
        if r.prize > 0:
            notice = win_notice(t, p, r, now)
            await keep_published(tx, Recipient(p.brand, p.player_id), notice, now)
            batch.add(p.channel, "notification", notice)


async def refund(tx: Transaction, t: Tournament, batch: Batch, now: float) -> None:
    refunds = [(p.player_id, p.brand, p.paid) for p in await store.players(tx, t.id)]
    refunds = sorted(r for r in refunds if r[2] > 0)
    await store.insert_refunds(tx, t.id, refunds)
    batch.add(
        t.channel,
        "tournament.cancelled",
        {
            "tournamentId": t.id,
            "cancelledAt": iso(now),
            "refunds": [
                {"playerId": pid, "amount": money(amount)}
                for pid, _, amount in refunds[:RESULTS_IN_EVENT]
            ],
            "refundsTruncated": len(refunds) > RESULTS_IN_EVENT,
        },
    )
    for pid, brand, amount in refunds:
        batch.add(
            f"player:{brand}:{pid}",
            "tournament.cancelled",
            {"tournamentId": t.id, "cancelledAt": iso(now), "refundAmount": money(amount)},
        )


def win_notice(t: Tournament, p: Player, r: rules.Placement, now: float) -> dict[str, Any]:
    """A ``notification`` in the casino player stream's shape, event ``tournament_win``."""
    message_id = uuid.uuid5(uuid.NAMESPACE_URL, f"croupier:tournament:{t.id}:win:{p.player_id}")
    starts = t.started_at if t.started_at is not None else t.created_at
    return {
        "message_id": str(message_id),
        "event": "tournament_win",
        "event_details": {
            "tournament_id": t.id,
            "transaction_id": f"{t.id}:{p.player_id}",
            "tournament_name": t.name,
            "tournament_points": number(r.points),
            "tournament_start_date": casino_time(starts),
            "tournament_end_date": casino_time(now),
            "tournament_position": r.position,
            "template_id": t.config.template_id,
            "prize_type": 1,
            "player_id": casino_id(p.player_id),
            "casino_id": casino_id(p.brand),
            "prize_value": f"{money(r.prize):.2f}",
            "prize_name": f"{t.name}: position {r.position}",
            "total_rounds": t.config.rounds,
            "total_bets": f"{p.bets:.2f}",
            "total_wins": f"{p.wins:.2f}",
            "timestamp": casino_time(now),
        },
        "is_read": False,
        "time": casino_time(now),
    }

"""Events decided in one transaction, written to the tournament's outbox in that transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from ...storage import Transaction
from . import rules, store
from .store import Outgoing, Tournament

__all__ = ["Batch"]


class Batch:
    """Events decided in one transaction, numbered after the tournament's last one."""

    def __init__(self, t: Tournament) -> None:
        self.tournament = t.id
        self.seq = t.seq
        self.rows: list[Outgoing] = []

    def add(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.rows.append(Outgoing(self.tournament, self.seq, channel, type, orjson.dumps(data)))

    async def write(self, tx: Transaction, t: Tournament) -> Tournament:
        """Store the events and the tournament (with its new sequence number)."""
        t = replace(t, seq=self.seq)
        await store.add_outgoing(tx, self.rows)
        await store.save_tournament(tx, t, rules.next_due(t.schedule()))
        return t

"""Brackets as a resource: created, seeded, results reported, each change published.

The bracket rules are :mod:`croupier.core.brackets`; this stores a bracket as one JSON row
(with a version that grows on every change) and publishes the whole bracket as
``bracket.updated`` on its tournament's channel after every change.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson

from ...core.brackets import (
    Bracket,
    BracketError,
    Match,
    build_bracket,
    report_result,
    seed_players,
)
from ...errors import BadRequest, Conflict, NotFound
from ...gateway import Gateway, PublishRequest
from ...storage import Database

__all__ = ["Brackets", "bracket_doc"]


def _match_doc(m: Match) -> dict[str, Any]:
    return {
        "matchId": m.id,
        "round": m.round,
        "index": m.index,
        "players": list(m.players),
        "winner": m.winner,
        "bye": m.bye,
    }


def bracket_doc(bid: str, channel: str, version: int, b: Bracket) -> dict[str, Any]:
    return {
        "bracketId": bid,
        "channel": channel,
        "version": version,
        "size": b.size,
        "seeds": list(b.seeds),
        "rounds": [[_match_doc(m) for m in r] for r in b.rounds],
        "champion": b.champion,
    }


def _bracket(doc: dict[str, Any]) -> Bracket:
    return Bracket(
        tuple(doc["seeds"]),
        tuple(
            tuple(
                Match(
                    m["round"],
                    m["index"],
                    (m["players"][0], m["players"][1]),
                    m["winner"],
                    m["bye"],
                )
                for m in r
            )
            for r in doc["rounds"]
        ),
    )


class Brackets:
    """Brackets in the services' database, published through the gateway."""

    def __init__(self, gateway: Gateway, database: Database) -> None:
        self.gateway = gateway
        self.db = database

    async def create(
        self,
        bracket_id: str | None,
        tournament_id: str | None,
        players: Sequence[tuple[str, float | None]],
        random_seed: int | None,
    ) -> dict[str, Any]:
        """Seed and store a bracket; ``bracket.updated`` on ``tournament:{id}``.

        Raises:
            BadRequest: fewer than two players, or one twice. Conflict: the id is taken.
        """
        if len({p for p, _ in players}) != len(players):
            raise Conflict("each player may appear only once", code="duplicate_player")
        try:
            bracket = build_bracket(seed_players(players, random_seed=random_seed))
        except BracketError as exc:
            raise BadRequest(str(exc), code="bad_bracket") from None
        bid = bracket_id or f"b-{secrets.token_hex(6)}"
        channel = f"tournament:{tournament_id or bid}"
        doc = bracket_doc(bid, channel, 1, bracket)
        changed = await self.db.execute(
            "INSERT INTO brackets (id, channel, doc, version, updated_at) "
            "VALUES ($1, $2, $3, 1, $4) ON CONFLICT (id) DO NOTHING",
            bid,
            channel,
            orjson.dumps(doc).decode(),
            time.time(),
        )
        if not changed:
            raise Conflict(f"bracket {bid} already exists", code="exists")
        await self._publish(doc)
        return doc

    async def get(self, bracket_id: str) -> dict[str, Any]:
        row = await self.db.fetchrow("SELECT doc FROM brackets WHERE id = $1", bracket_id)
        if row is None:
            raise NotFound(f"no bracket {bracket_id}")
        doc: dict[str, Any] = orjson.loads(row["doc"])
        return doc

    async def report(self, bracket_id: str, match_id: str, winner: str) -> dict[str, Any]:
        """Record a match's winner; they advance. The same report again changes nothing.

        Raises:
            NotFound: no such bracket. Conflict: the match cannot take this result.
        """
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT doc FROM brackets WHERE id = $1 FOR UPDATE", bracket_id)
            if row is None:
                raise NotFound(f"no bracket {bracket_id}")
            doc = orjson.loads(row["doc"])
            before = _bracket(doc)
            try:
                after = report_result(before, match_id, winner)
            except BracketError as exc:
                raise Conflict(str(exc), code="invalid_result") from None
            if after == before:
                return dict(doc)
            doc = bracket_doc(bracket_id, doc["channel"], doc["version"] + 1, after)
            await tx.execute(
                "UPDATE brackets SET doc = $2, version = $3, updated_at = $4 WHERE id = $1",
                bracket_id,
                orjson.dumps(doc).decode(),
                doc["version"],
                time.time(),
            )
        await self._publish(doc)
        return doc

    async def _publish(self, doc: dict[str, Any]) -> None:
        await self.gateway.publish(
            PublishRequest(
                doc["channel"],
                "bracket.updated",
                orjson.dumps(doc),
                idempotency_key=f"bracket:{doc['bracketId']}:{doc['version']}",
            )
        )

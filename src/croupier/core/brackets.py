"""Single-elimination brackets for any number of players. No I/O.

Rules:

* ``n >= 2`` players fill a bracket of ``size`` slots, the next power of two. Seeds are
  placed in the standard order (1 meets ``size``, 2 meets ``size - 1`` …, and seeds 1 and 2
  can meet only in the final), so the ``size - n`` byes fall to the top seeds, all in
  round 1. A bye is a match with one player, who advances at once.
* Seeding is by rating (highest first, ties by player id) or, given a random seed, a
  shuffle that the same seed always repeats.
* A result names the winner of a match whose two players are known; the winner takes the
  slot of the next round's match. Reporting the same winner again changes nothing; a
  different winner, once the next match has a result, is refused (results are final).
* The final is the one match of the last round; its winner is the champion.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import shown

__all__ = [
    "Bracket",
    "BracketError",
    "Match",
    "bracket_order",
    "build_bracket",
    "report_result",
    "seed_players",
]


class BracketError(Exception):
    """A request the bracket's state does not allow (unknown match, not a player of it …)."""


@dataclass(frozen=True, slots=True)
class Match:
    """One match: ``round`` from 1, ``index`` from 0 within the round."""

    round: int
    index: int
    players: tuple[str | None, str | None]
    winner: str | None = None
    bye: bool = False

    @property
    def id(self) -> str:
        return f"r{self.round}m{self.index}"


@dataclass(frozen=True, slots=True)
class Bracket:
    """The seeded players (seed 1 first) and every match, round by round."""

    seeds: tuple[str, ...]
    rounds: tuple[tuple[Match, ...], ...]

    @property
    def size(self) -> int:
        return len(self.rounds[0]) * 2

    @property
    def champion(self) -> str | None:
        return self.rounds[-1][0].winner

    def match(self, match_id: str) -> Match:
        for round_ in self.rounds:
            for m in round_:
                if m.id == match_id:
                    return m
        raise BracketError(f"no match {shown(match_id)} in this bracket")


def bracket_order(size: int) -> list[int]:
    """Seeds (1-based) in slot order for a bracket of ``size`` slots (a power of two)."""
    order = [1]
    while len(order) < size:
        total = len(order) * 2 + 1
        order = [x for seed in order for x in (seed, total - seed)]
    return order


def seed_players(
    players: Sequence[tuple[str, float | None]], *, random_seed: int | None = None
) -> list[str]:
    """Players in seed order: by rating (unrated last), or shuffled by ``random_seed``.

    Raises:
        BracketError: fewer than two players, or a player named twice.
    """
    ids = [p for p, _ in players]
    if len(ids) < 2:
        raise BracketError("a bracket needs at least 2 players")
    if len(set(ids)) != len(ids):
        raise BracketError("each player may appear only once")
    if random_seed is not None:
        shuffled = sorted(ids)
        random.Random(random_seed).shuffle(shuffled)
        return shuffled
    return [p for p, _ in sorted(players, key=lambda pr: (pr[1] is None, -(pr[1] or 0.0), pr[0]))]


def build_bracket(seeds: Sequence[str]) -> Bracket:
    """The bracket of ``seeds`` (seed 1 first), byes already advanced.

    Raises:
        BracketError: fewer than two players, or a player named twice.
    """
    n = len(seeds)
    if n < 2:
        raise BracketError("a bracket needs at least 2 players")
    if len(set(seeds)) != n:
        raise BracketError("each player may appear only once")
    size = 1
    while size < n:
        size *= 2
    slots = [seeds[s - 1] if s <= n else None for s in bracket_order(size)]
    first: list[Match] = []
    for i in range(size // 2):
        a, b = slots[2 * i], slots[2 * i + 1]
        bye = a is None or b is None
        first.append(Match(1, i, (a, b), winner=(a or b) if bye else None, bye=bye))
    rounds: list[list[Match]] = [first]
    count = size // 4
    r = 2
    while count >= 1:
        rounds.append([Match(r, i, (None, None)) for i in range(count)])
        count //= 2
        r += 1
    bracket = Bracket(tuple(seeds), tuple(tuple(x) for x in rounds))
    for m in first:
        if m.bye:
            bracket = _advance(bracket, m)
    return bracket


def _advance(bracket: Bracket, match: Match) -> Bracket:
    """Put ``match``'s winner into its slot of the next round."""
    if match.round == len(bracket.rounds):
        return bracket
    nxt = bracket.rounds[match.round][match.index // 2]
    players = list(nxt.players)
    players[match.index % 2] = match.winner
    return _put(bracket, replace(nxt, players=(players[0], players[1])))


def _put(bracket: Bracket, match: Match) -> Bracket:
    rounds = list(bracket.rounds)
    row = list(rounds[match.round - 1])
    row[match.index] = match
    rounds[match.round - 1] = tuple(row)
    return replace(bracket, rounds=tuple(rounds))


def report_result(bracket: Bracket, match_id: str, winner: str) -> Bracket:
    """The bracket after ``winner`` won match ``match_id``; the same report twice is a no-op.

    Raises:
        BracketError: no such match, its players are not both known yet, the winner is not
            one of them, or a different result was already reported.
    """
    m = bracket.match(match_id)
    if m.bye:
        raise BracketError(f"{match_id} is a bye: {m.winner} advanced without playing")
    if m.players[0] is None or m.players[1] is None:
        raise BracketError(f"{match_id} does not have both players yet")
    if winner not in m.players:
        raise BracketError(f"{shown(winner)} does not play in {match_id}")
    if m.winner == winner:
        return bracket
    if m.winner is not None:
        raise BracketError(f"{match_id} already has a result ({m.winner} won)")
    decided = replace(m, winner=winner)
    return _advance(_put(bracket, decided), decided)

"""Tournament rules without I/O: the lifecycle table, the schedule, points, prizes and ties.

The service reads rows, asks these functions what follows, and writes the answer; nothing
here awaits, so tests drive the rules with plain values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALLOWED",
    "GROUPS",
    "TRANSITIONS",
    "Action",
    "Counting",
    "InvalidTransition",
    "Op",
    "Placement",
    "PointsRule",
    "PrizeRange",
    "Schedule",
    "Scoring",
    "Standing",
    "Status",
    "TieMode",
    "check_prizes",
    "due",
    "group_of",
    "next_due",
    "order",
    "player_score",
    "prize_pool",
    "prizes_by_position",
    "remaining_rebuys",
    "require",
    "settle",
    "submission_points",
    "transition",
]


class Status(StrEnum):
    SCHEDULED = "scheduled"
    REGISTERING = "registering"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    OPEN = "open"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"


class InvalidTransition(Exception):
    """The action (or operation) is not allowed in the tournament's current status."""

    def __init__(self, status: Status, what: str) -> None:
        super().__init__(f"cannot {what} a tournament that is {status.value}")
        self.status = status
        self.what = what


# Rules:
# * The lifecycle only moves forward: scheduled -> registering -> running -> completed.
# * Any tournament that has not finished can be cancelled (every payment is refunded).
# * completed and cancelled are final: nothing leaves them.
# * Registration opens once; a tournament starts only from registering (the minimum number
#   of players is checked by the service, which knows the count).
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.SCHEDULED, Action.OPEN): Status.REGISTERING,
    (Status.SCHEDULED, Action.CANCEL): Status.CANCELLED,
    (Status.REGISTERING, Action.START): Status.RUNNING,
    (Status.REGISTERING, Action.CANCEL): Status.CANCELLED,
    (Status.RUNNING, Action.COMPLETE): Status.COMPLETED,
    (Status.RUNNING, Action.CANCEL): Status.CANCELLED,
}


def transition(status: Status, action: Action) -> Status:
    """The status ``action`` leads to from ``status``.

    Raises:
        InvalidTransition: the table has no such move.
    """
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise InvalidTransition(status, action.value) from None


class Op(StrEnum):
    """What happens to a tournament without changing its status."""

    REGISTER = "register players in"
    SCORE = "score in"
    ELIMINATE = "eliminate players from"
    REBUY = "rebuy in"
    ADVANCE = "advance the round of"


# Rules: players join while registration is open; play (scores, eliminations, rebuys,
# rounds) happens only while the tournament runs.
ALLOWED: dict[Op, frozenset[Status]] = {
    Op.REGISTER: frozenset({Status.REGISTERING}),
    Op.SCORE: frozenset({Status.RUNNING}),
    Op.ELIMINATE: frozenset({Status.RUNNING}),
    Op.REBUY: frozenset({Status.RUNNING}),
    Op.ADVANCE: frozenset({Status.RUNNING}),
}


def require(status: Status, op: Op) -> None:
    """Raises:
    InvalidTransition: ``op`` is not allowed in ``status``.
    """
    if status not in ALLOWED[op]:
        raise InvalidTransition(status, op.value)


# -- the schedule ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the clock needs to know of a tournament. Times are seconds since the epoch."""

    status: Status
    opens_at: float | None
    starts_at: float | None
    ends_at: float | None
    round_seconds: float | None
    round_started_at: float | None
    current_round: int
    total_rounds: int
    players: int
    min_players: int


def due(s: Schedule, now: float) -> Action | Op | None:
    """What the clock does to the tournament at ``now``, if anything.

    Rules: registration opens at ``opens_at`` (or at ``starts_at`` if it never opened); at
    ``starts_at`` a tournament starts if it has its minimum of players, otherwise it is
    cancelled; it completes at ``ends_at``, or when the last round's time is up; rounds
    advance every ``round_seconds``.
    """
    if s.status is Status.SCHEDULED:
        if any(t is not None and t <= now for t in (s.opens_at, s.starts_at)):
            return Action.OPEN
    elif s.status is Status.REGISTERING:
        if s.starts_at is not None and s.starts_at <= now:
            return Action.START if s.players >= max(s.min_players, 1) else Action.CANCEL
    elif s.status is Status.RUNNING:
        if s.ends_at is not None and s.ends_at <= now:
            return Action.COMPLETE
        if (
            s.round_seconds
            and s.round_started_at is not None
            and s.round_started_at + s.round_seconds <= now
        ):
            return Op.ADVANCE if s.current_round < s.total_rounds else Action.COMPLETE
    return None


def next_due(s: Schedule) -> float | None:
    """The earliest time :func:`due` may have something to do (None: only the API acts)."""
    if s.status is Status.SCHEDULED:
        times = [s.opens_at, s.starts_at]
    elif s.status is Status.REGISTERING:
        times = [s.starts_at]
    elif s.status is Status.RUNNING:
        times = [s.ends_at]
        if s.round_seconds and s.round_started_at is not None:
            times.append(s.round_started_at + s.round_seconds)
    else:
        return None
    found = [t for t in times if t is not None]
    return min(found) if found else None


# -- points ----------------------------------------------------------------------------------


class Scoring(StrEnum):
    POINTS = "points"  # the submission's points as given
    MULTIPLIER = "multiplier"  # win ÷ bet


class Counting(StrEnum):
    SUM = "sum"  # a player's entries add up
    BEST = "best"  # only the player's best entry counts


@dataclass(frozen=True, slots=True)
class PointsRule:
    """How submissions become points and entries become a player's score.

    Submissions add up within an entry (a buy-in or a rebuy); ``counting`` says how entries
    make the player's score. A submission with a bet under ``min_bet`` does not qualify.
    """

    scoring: Scoring = Scoring.POINTS
    min_bet: float = 0.0
    counting: Counting = Counting.SUM


def submission_points(
    rule: PointsRule, *, points: float | None, bet: float | None, win: float | None
) -> float | None:
    """The points one submission earns; ``None`` when it does not qualify.

    Raises:
        ValueError: the submission lacks what the rule needs (points, or bet and win).
    """
    if rule.min_bet > 0 and (bet is None or bet < rule.min_bet):
        return None
    if rule.scoring is Scoring.POINTS:
        if points is None:
            raise ValueError("this tournament scores points: send points")
        return points
    if bet is None or win is None or bet <= 0:
        raise ValueError("this tournament scores win ÷ bet: send a positive bet and a win")
    return round(win / bet, 4)


def player_score(rule: PointsRule, entries: Sequence[float]) -> float:
    """A player's score from the scores of their entries."""
    if not entries:
        return 0.0
    return float(max(entries)) if rule.counting is Counting.BEST else float(math.fsum(entries))


def remaining_rebuys(entries: int, max_entries: int) -> int:
    return max(max_entries - entries, 0)


# -- prizes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrizeRange:
    """Positions ``first``..``last`` (inclusive) each win ``amount`` (minor units) or
    ``percent`` of the prize pool."""

    first: int
    last: int
    amount: int | None = None
    percent: float | None = None


def check_prizes(table: Sequence[PrizeRange]) -> None:
    """Raises:
    ValueError: a range is reversed, ranges overlap, a range has not exactly one of amount
        and percent, or the percentages add up to more than the whole pool.
    """
    taken: list[tuple[int, int]] = []
    percent = 0.0
    for r in table:
        if r.first > r.last:
            raise ValueError(f"prize range {r.first}-{r.last} is reversed")
        if (r.amount is None) == (r.percent is None):
            raise ValueError(f"prize range {r.first}-{r.last} needs an amount or a percent")
        for first, last in taken:
            if r.first <= last and first <= r.last:
                raise ValueError(f"prize ranges {first}-{last} and {r.first}-{r.last} overlap")
        taken.append((r.first, r.last))
        if r.percent is not None:
            percent += r.percent * (r.last - r.first + 1)
    if percent > 100.0 + 1e-9:
        raise ValueError(f"the prize table pays {percent:g}% of the pool")


def prize_pool(guaranteed: int, collected: int) -> int:
    """The pool: what entries and rebuys brought in, but never less than the guarantee."""
    return max(guaranteed, collected)


def prizes_by_position(table: Iterable[PrizeRange], pool: int, count: int) -> list[int]:
    """The prize (minor units) of positions 1..``count``; percentages round down."""
    prizes = [0] * count
    for r in table:
        each = r.amount if r.amount is not None else int(pool * (r.percent or 0.0) // 100)
        for position in range(r.first, min(r.last, count) + 1):
            prizes[position - 1] = each
    return prizes


# -- final standings -------------------------------------------------------------------------


class TieMode(StrEnum):
    SPLIT = "split"  # equal scores share a position and split its prizes
    FIRST = "first"  # whoever reached the score first ranks higher


@dataclass(frozen=True, slots=True)
class Standing:
    player: str
    points: float
    reached_at: float  # when the player reached ``points``


@dataclass(frozen=True, slots=True)
class Placement:
    player: str
    position: int
    points: float
    prize: int  # minor units


def order(standings: Iterable[Standing]) -> list[Standing]:
    """Score descending; earlier achievement first on ties; then player id (a total order,
    the same as the leaderboards')."""
    return sorted(standings, key=lambda s: (-s.points, s.reached_at, s.player))


def settle(standings: Iterable[Standing], prizes: Sequence[int], ties: TieMode) -> list[Placement]:
    """Final positions and prizes, in order.

    Rules: with ``FIRST`` every player has a position of their own. With ``SPLIT`` players on
    equal points share the best position of their group and split the prizes of the
    positions the group covers equally; the cents that do not divide go one each to the
    group's earliest achievers. Either way the prizes paid add up to ``sum(prizes)`` for the
    positions that are filled.
    """
    ranked = order(standings)
    out: list[Placement] = []

    def prize(index: int) -> int:
        return prizes[index] if index < len(prizes) else 0

    if ties is TieMode.FIRST:
        return [Placement(s.player, i + 1, s.points, prize(i)) for i, s in enumerate(ranked)]
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1].points == ranked[i].points:
            j += 1
        group = ranked[i : j + 1]
        pot = sum(prize(k) for k in range(i, j + 1))
        share, left = divmod(pot, len(group))
        for n, s in enumerate(group):
            out.append(Placement(s.player, i + 1, s.points, share + (1 if n < left else 0)))
        i = j + 1
    return out


# -- the internal listener's groups ----------------------------------------------------------

GROUPS: dict[str, frozenset[str]] = {
    "tournament.status": frozenset(
        {
            "tournament.status.changed",
            "tournament.started",
            "tournament.completed",
            "tournament.cancelled",
        }
    ),
    "player.updates": frozenset(
        {
            "player.registered",
            "tournament.connected",
            "player.score.updated",
            "player.eliminated",
            "rebuy.request",
            "rebuy.requested",
            "rebuy.success",
            "rebuy.failed",
        }
    ),
}


def group_of(event_type: str) -> str:
    """The listener group of an event type; everything else is ``game.events``."""
    for group, types in GROUPS.items():
        if event_type in types:
            return group
    return "game.events"

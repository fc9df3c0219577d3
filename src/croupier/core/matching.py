"""Matchmaking rules: tickets, rating windows, one matching pass. No I/O.

Rules:

* A ticket waits in one queue. Tickets match only tickets with equal properties (region,
  mode …); within those, by rating.
* A ticket's rating window starts at ``window`` and widens by ``widen_by`` every
  ``widen_every`` seconds of waiting, up to ``max_window``. A group is acceptable when its
  rating spread (highest minus lowest) is within the window of every member, so no member
  is matched further away than it currently accepts.
* Unrated tickets match unrated tickets only, first come first served.
* A pass first times out tickets that waited ``timeout`` seconds or more, then groups the
  rest: per property set, sort by rating, score every run of ``group_size`` neighbours by
  spread, and take runs best first (smaller spread, then longer wait), never reusing a
  ticket; repeat on what is left while that still finds groups (a few sweeps). Sorting and
  sweeping only: O(n log n), never a search over combinations.
* The queue position is the rank by waiting time (1 = waited longest); the estimated wait
  comes from the queue's recent throughput.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter

__all__ = [
    "TICKET_TRANSITIONS",
    "InvalidTicketTransition",
    "MatchPass",
    "QueueRules",
    "Throughput",
    "Ticket",
    "TicketStatus",
    "estimate_wait",
    "match_pass",
    "ticket_transition",
    "window_of",
]

_MAX_SWEEPS = 4  # more remain possible after a sweep only around taken runs; the next pass


class TicketStatus(StrEnum):
    WAITING = "waiting"
    MATCHED = "matched"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


# Rules: a ticket leaves WAITING exactly once, for one of the three ends; ends are final.
TICKET_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.WAITING: frozenset(
        {TicketStatus.MATCHED, TicketStatus.CANCELLED, TicketStatus.TIMED_OUT}
    ),
    TicketStatus.MATCHED: frozenset(),
    TicketStatus.CANCELLED: frozenset(),
    TicketStatus.TIMED_OUT: frozenset(),
}


class InvalidTicketTransition(Exception):
    """A ticket cannot go from its status to the one asked for."""


def ticket_transition(current: TicketStatus, target: TicketStatus) -> TicketStatus:
    """Return ``target`` if the table allows it from ``current``.

    Raises:
        InvalidTicketTransition: it does not (a matched ticket cannot be cancelled, say).
    """
    if target not in TICKET_TRANSITIONS[current]:
        raise InvalidTicketTransition(f"a {current.value} ticket cannot become {target.value}")
    return target


@dataclass(frozen=True, slots=True)
class QueueRules:
    """How one queue matches. Times in seconds, windows in rating points."""

    group_size: int = 2
    window: float = 100.0
    widen_by: float = 50.0
    widen_every: float = 5.0
    max_window: float = 1000.0
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError("a group has at least 2 players")
        if self.widen_every <= 0 or self.timeout <= 0:
            raise ValueError("widen_every and timeout must be positive")
        if self.window < 0 or self.widen_by < 0 or self.max_window < self.window:
            raise ValueError("windows must be non-negative and max_window >= window")


@dataclass(frozen=True, slots=True)
class Ticket:
    """One player waiting. ``properties`` are sorted (name, value) pairs."""

    id: str
    player: str
    queued_at: float
    rating: float | None = None
    properties: tuple[tuple[str, str], ...] = ()
    brand: str | None = None


def window_of(rules: QueueRules, waited: float) -> float:
    """The rating window of a ticket that has waited ``waited`` seconds."""
    steps = math.floor(max(waited, 0.0) / rules.widen_every)
    return min(rules.max_window, rules.window + rules.widen_by * steps)


@dataclass(frozen=True, slots=True)
class MatchPass:
    """What one pass decided: groups (each in rating order), time-outs, and who still waits
    (longest waiting first: index + 1 is the queue position)."""

    matches: tuple[tuple[Ticket, ...], ...]
    timed_out: tuple[Ticket, ...]
    waiting: tuple[Ticket, ...]


def match_pass(tickets: Iterable[Ticket], rules: QueueRules, now: float) -> MatchPass:
    """Run one matching pass over the waiting ``tickets`` of a queue at time ``now``."""
    timeout_at = now - rules.timeout
    timed_out: list[Ticket] = []
    buckets: dict[tuple[tuple[str, str], ...], list[Ticket]] = {}
    unrated: dict[tuple[tuple[str, str], ...], list[Ticket]] = {}
    for t in tickets:
        if t.queued_at <= timeout_at:
            timed_out.append(t)
        elif t.rating is None:
            unrated.setdefault(t.properties, []).append(t)
        else:
            buckets.setdefault(t.properties, []).append(t)
    size = rules.group_size
    matches: list[tuple[Ticket, ...]] = []
    waiting: list[Ticket] = []
    for group in buckets.values():
        if len(group) >= size:
            group.sort(key=_rating)
            _sweep(group, rules, now, matches)
        waiting.extend(group)
    for group in unrated.values():
        group.sort(key=_by_wait)
        whole = len(group) - len(group) % size
        matches.extend(tuple(group[i : i + size]) for i in range(0, whole, size))
        waiting.extend(group[whole:])
    waiting.sort(key=_queued_at)
    timed_out.sort(key=_queued_at)
    return MatchPass(tuple(matches), tuple(timed_out), tuple(waiting))


def _rating(t: Ticket) -> float:
    return t.rating or 0.0


def _by_wait(t: Ticket) -> tuple[float, str]:
    return (t.queued_at, t.id)


_queued_at = attrgetter("queued_at")


def _sweep(
    group: list[Ticket],
    rules: QueueRules,
    now: float,
    matches: list[tuple[Ticket, ...]],
) -> None:
    """Take acceptable runs of neighbours out of ``group`` (sorted by rating), best first."""
    size = rules.group_size
    base, step, every, top = rules.window, rules.widen_by, rules.widen_every, rules.max_window
    # Plain lists indexed by position in ``group``: the hot loops touch no attributes.
    ratings = [t.rating or 0.0 for t in group]
    queued = [t.queued_at for t in group]
    windows = [
        min(top, base + step * int(w / every)) if (w := now - q) > 0 else base for q in queued
    ]
    alive = list(range(len(group)))
    for _ in range(_MAX_SWEEPS):
        n = len(alive)
        if n < size:
            break
        candidates: list[tuple[float, float, int]] = []
        add = candidates.append
        if size == 2:
            for k in range(n - 1):
                i = alive[k]
                j = alive[k + 1]
                spread = ratings[j] - ratings[i]
                if spread <= windows[i] and spread <= windows[j]:
                    add((spread, queued[i] if queued[i] < queued[j] else queued[j], k))
        else:
            for k in range(n - size + 1):
                run = alive[k : k + size]
                spread = ratings[run[-1]] - ratings[run[0]]
                if spread <= min([windows[x] for x in run]):
                    add((spread, min([queued[x] for x in run]), k))
        if not candidates:
            break
        candidates.sort()
        used = [False] * n
        take = matches.append
        if size == 2:
            for _spread, _oldest, k in candidates:
                if used[k] or used[k + 1]:
                    continue
                used[k] = used[k + 1] = True
                take((group[alive[k]], group[alive[k + 1]]))
        else:
            for _spread, _oldest, k in candidates:
                if any(used[k : k + size]):
                    continue
                used[k : k + size] = [True] * size
                take(tuple([group[x] for x in alive[k : k + size]]))
        alive = [x for x, u in zip(alive, used, strict=True) if not u]
    group[:] = [group[x] for x in alive]


@dataclass(frozen=True, slots=True)
class Throughput:
    """A queue's recent pace: the last few matched tickets' waits and match times."""

    waits: tuple[float, ...] = ()
    matched_at: tuple[float, ...] = field(default=())
    keep: int = 64

    def record(self, waits: Sequence[float], at: float) -> Throughput:
        """The pace after tickets that waited ``waits`` were matched at ``at``."""
        if not waits:
            return self
        new_waits = (*self.waits, *waits)[-self.keep :]
        new_at = (*self.matched_at, *([at] * len(waits)))[-self.keep :]
        return Throughput(new_waits, new_at, self.keep)


def estimate_wait(position: int, waited: float, pace: Throughput, now: float) -> float | None:
    """Seconds a ticket at ``position`` may still wait, or ``None`` with nothing to go on.

    With recent matches: the tickets ahead of it, over the rate tickets left the queue at
    lately (or, if that rate is not measurable yet, the typical wait minus the time already
    waited).
    """
    if not pace.waits:
        return None
    span = now - pace.matched_at[0]
    if len(pace.matched_at) >= 4 and span > 0:
        rate = len(pace.matched_at) / span  # tickets per second
        return round(max(position / rate, 0.0), 1)
    typical = sorted(pace.waits)[len(pace.waits) // 2]
    return round(max(typical - waited, 0.0), 1)

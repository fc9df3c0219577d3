"""The hub's ordering rules for one channel, without I/O: what to deliver, what to read.

Rules:

* Stored events are delivered in strictly increasing offset order with no gap. An event at
  or below the last delivered offset is a duplicate and is dropped. One beyond the next
  offset is held, and the missing range is read from the log before it is delivered; events
  arriving while that read runs are held too. Ephemeral events (no offset) are delivered at
  once.
* Until some subscriber has read the channel's position from the log, the channel's order
  is unknown: stored events are buffered by the subscribers still reading history.
* A new subscriber stands, after its replay, at the offset its replay ended (or the log's
  top when it did not resume). It reads the events between there and what the channel has
  delivered, then takes, from what it buffered meanwhile, only the run that continues where
  it stands; anything beyond a gap goes back through the channel's ordering, which reads the
  gap first.
* A subscriber still catching up takes every live event past where it stands, and joins the
  channel's live set with the first stored one.
* The log is read once per channel, not once per subscriber: a subscriber that does not
  resume starts where delivery stands (no read once that is known), and resumes share the
  last history read for a while (:class:`RecentHistory`), extended with what the channel
  delivers.

:class:`ChannelOrder` holds one channel's state; the hub (:mod:`croupier.hub`) calls it,
does the log reads it asks for, and pushes what it returns.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..events import Event, History, Position
from .recovery import can_recover

__all__ = [
    "RECENT_IDLE",
    "RECENT_MAX",
    "Arrival",
    "ChannelOrder",
    "Fill",
    "PendingTake",
    "ReadRange",
    "RecentHistory",
    "Settled",
    "continuing",
    "history_after",
    "pending_take",
    "resume",
    "settle",
]


class Arrival(enum.Enum):
    """What to do with an event the broker brings (see :meth:`ChannelOrder.arrive`)."""

    DELIVER = "deliver"  # to every subscriber now: ephemeral, or the next offset
    BUFFER = "buffer"  # the order is not known yet: subscribers reading history buffer it
    HOLD = "hold"  # a gap is being read; it waits with the others held
    FILL = "fill"  # the first event beyond a gap: it is held; read the gap, then deliver
    DROP = "drop"  # at or below what was delivered: a duplicate


@dataclass(frozen=True, slots=True)
class ReadRange:
    """Read at most ``limit`` events after ``after`` from the channel's log."""

    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One round of filling a gap: the events that had arrived, and what to read."""

    arrived: dict[int, Event]
    read: ReadRange | None
    held: tuple[Event, ...]


@dataclass(slots=True)
class ChannelOrder:
    """One channel's delivery order.

    ``last`` is the highest offset delivered (or vouched for by a subscriber's read of the
    log) in order; ``held`` the events waiting while a gap is read (``None``: no read runs);
    ``behind`` says the broker lost messages while a read already ran, so it must go on to
    the end of the log.
    """

    last: int | None = None
    epoch: str | None = None  # the epoch of the offset ``last``, once known
    held: list[Event] | None = None
    behind: bool = False

    @property
    def filling(self) -> bool:
        return self.held is not None

    def position(self) -> Position | None:
        """Where delivery stands, once known: a new subscriber that does not resume starts
        there without reading the log."""
        if self.last is None or self.epoch is None:
            return None
        return Position(self.last, self.epoch)

    def arrive(self, event: Event) -> Arrival:
        """Decide about ``event``; after :data:`Arrival.DELIVER` of a stored event,
        :attr:`last` is its offset; after ``HOLD``/``FILL`` it is in :attr:`held`."""
        offset = event.offset
        if offset is None:
            return Arrival.DELIVER
        if self.held is not None:
            self.held.append(event)
            return Arrival.HOLD
        last = self.last
        if last is None:
            return Arrival.BUFFER
        if offset <= last:
            return Arrival.DROP
        if offset > last + 1:
            self.held = [event]
            return Arrival.FILL
        self.last = offset
        self.epoch = event.epoch
        return Arrival.DELIVER

    def resync(self) -> bool:
        """The broker may have lost messages: return True if a catch-up read must start
        (none runs yet); otherwise the running one is told to read to the end of the log."""
        if self.last is None:
            return False
        if self.held is None:
            self.held = []
            return True
        self.behind = True
        return False

    def wants_fill(self, catch_up: bool) -> bool:
        """Whether a fill round is due: events held, a catch-up asked, or messages lost."""
        return bool(self.held) or catch_up or self.behind

    def next_fill(self, catch_up: bool, recover_max: int) -> Fill:
        """Take the held events and plan one round: read the range they leave open (with
        ``catch_up``, everything after :attr:`last` up to ``recover_max`` events)."""
        held = sorted(self.held or [], key=_offset)
        self.held = []
        last = self.last or 0
        arrived = {e.offset: e for e in held if e.offset is not None and e.offset > last}
        want = max(arrived, default=last) - last
        read = None
        if catch_up or want > len(arrived):
            read = ReadRange(last, max(want, recover_max if catch_up else 0))
        return Fill(arrived, read, tuple(held))

    def retry(self, fill: Fill) -> None:
        """The read of ``fill`` failed: hold its events again, ahead of newer arrivals."""
        self.held = list(fill.held) + (self.held or [])

    def fill(self, fill: Fill, read: Iterable[Event]) -> Iterator[tuple[Event, int]]:
        """The events to deliver, in order, from the log's ``read`` and what had arrived.

        Yields ``(event, skipped)``: ``skipped`` offsets before it are in neither (trimmed
        from the log meanwhile). :attr:`last` advances as each event is yielded.
        """
        merged = {e.offset: e for e in read if e.offset}
        for offset, event in fill.arrived.items():
            merged.setdefault(offset, event)
        for offset in sorted(merged):
            expected = (self.last or 0) + 1
            if offset < expected:
                continue
            event = merged[offset]
            self.last = offset
            self.epoch = event.epoch
            yield event, offset - expected

    def filled(self) -> None:
        """The fill is over (nothing held, or the channel is gone)."""
        self.held = None

    def vouch(self, top: int, epoch: str) -> None:
        """A subscriber read the log up to ``top`` (in ``epoch``): the order starts there if
        unknown."""
        if self.last is None:
            self.last = top
            self.epoch = epoch

    def catch_up(self, top: int) -> ReadRange | None:
        """What a subscriber standing at ``top`` must read to reach the channel."""
        if self.last is None or top >= self.last:
            return None
        return ReadRange(top, self.last - top)


def _offset(event: Event) -> int:
    return event.offset or 0


def resume(since: Position | None, history: History, recover_max: int) -> tuple[bool, int]:
    """Whether a subscriber asking for ``since`` recovers from ``history`` (the log read
    after it, or only the log's position when ``since`` is None), and the offset it then
    stands at.

    A log whose read is not one snapshot may report a top beyond the last event it returned;
    a recovering subscriber stands at that last event, and what lies between arrives through
    its buffer or its catch-up read.
    """
    top = history.position
    if since is None or not can_recover(since, top, history.first, recover_max):
        return False, top.offset
    stands = since.offset
    if history.events and history.events[-1].offset is not None:
        stands = history.events[-1].offset
    return True, stands


def history_after(history: History, after: int) -> History:
    """``history`` without its events at or before offset ``after``."""
    events = tuple(e for e in history.events if e.offset is not None and e.offset > after)
    return History(events, history.position, history.first)


def continuing(top: int, events: Iterable[Event]) -> Iterator[Event]:
    """The stored events of ``events`` past ``top``, in the order given."""
    for event in events:
        if event.offset is not None and event.offset > top:
            top = event.offset
            yield event


@dataclass(frozen=True, slots=True)
class Settled:
    """A new subscriber's buffer, sorted out: push ``now``, then stand at ``top``; the
    ``beyond`` events go through the channel's ordering."""

    now: list[Event]
    top: int
    beyond: list[Event] = field(default_factory=list)


def settle(top: int, buffer: Iterable[Event]) -> Settled:
    """Sort out what a new subscriber buffered while it read history, standing at ``top``.

    Events buffered before the channel had a known position came in broker order, which
    across nodes need not be offset order, and need not be complete (an event published
    before this node's broker subscription took effect is not among them). Only the run that
    continues ``top`` is taken now; ephemeral events always are.
    """
    now: list[Event] = []
    beyond: list[Event] = []
    for event in sorted(buffer, key=_offset):
        if event.offset is None:
            now.append(event)
        elif event.offset == top + 1 and not beyond:
            now.append(event)
            top = event.offset
        elif event.offset > top:
            beyond.append(event)
    return Settled(now, top, beyond)


class PendingTake(enum.Enum):
    """What a subscriber still catching up does with a delivered event."""

    BUFFER = "buffer"  # still reading history: keep it for :func:`settle`
    PUSH = "push"  # past where it stands: push it
    JOIN = "join"  # push it, and the subscriber is now level: it joins the live set
    SKIP = "skip"  # at or below where it stands (it has it), or ephemeral while reading


def pending_take(top: int | None, offset: int | None) -> PendingTake:
    """For a subscriber standing at ``top`` (None: still reading history), an event at
    ``offset`` (None: ephemeral) that the channel delivers."""
    if top is None:
        return PendingTake.SKIP if offset is None else PendingTake.BUFFER
    if offset is None:
        return PendingTake.PUSH
    return PendingTake.JOIN if offset > top else PendingTake.SKIP


RECENT_IDLE = 10.0
"""Seconds a channel keeps its last history read for further resumes once none uses it."""
RECENT_MAX = 1000
"""The most events (the newest) a channel keeps of its last history read."""


class RecentHistory:
    """The events after offset ``after`` up to ``top``, without a gap: a history read kept
    for the resumes that follow it, extended with each event the channel delivers in order.

    So a storm of reconnects to one channel costs one read of the log. ``first`` is the
    lowest offset the log held when it was read; ``frames`` caches each event's encoding per
    wire, however many subscribers replay it.
    """

    __slots__ = ("after", "events", "first", "frames", "top", "used")

    def __init__(self, history: History, now: float) -> None:
        self.events: deque[Event] = deque(history.events, maxlen=RECENT_MAX)
        position = history.position
        if self.events:
            # Only what was read: a log that reports a top beyond its last event returned
            # must not make the events in between look covered.
            first, last = self.events[0], self.events[-1]
            self.after = (first.offset or 1) - 1
            self.top = Position(last.offset or 0, last.epoch or position.epoch)
        else:
            self.after = position.offset
            self.top = position
        self.first = history.first
        self.frames: dict[tuple[str, int, str | None], bytes] = {}
        self.used = now

    def covers(self, after: int, epoch: str) -> bool:
        """Whether every stored event after ``after`` up to :attr:`top` is here."""
        return self.after <= after <= self.top.offset and epoch == self.top.epoch

    def since(self, after: int, now: float) -> History:
        """The events after ``after`` (see :meth:`covers`), as the log would answer."""
        self.used = now
        events = tuple(itertools.islice(self.events, max(0, after - self.after), None))
        return History(events, self.top, self.first)

    def keep(self, event: Event, now: float) -> bool:
        """Take the next stored event the channel delivers; False if this window should be
        dropped (it does not continue, or none has used it for :data:`RECENT_IDLE`)."""
        if event.offset != self.top.offset + 1 or event.epoch != self.top.epoch:
            return False
        if len(self.events) == RECENT_MAX:
            self.after += 1
        self.events.append(event)
        self.top = Position(event.offset, event.epoch)
        return now - self.used <= RECENT_IDLE

    def replaces(self, current: RecentHistory | None) -> bool:
        """Whether this window should replace ``current`` (it reaches at least as far back)."""
        return current is None or self.after <= current.after

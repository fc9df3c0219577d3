"""This node's subscriptions and the fan-out to them.

Rules:

* An event is encoded once per wire format; every subscriber of that format gets the same
  bytes. Fan-out calls :meth:`Sink.push` and never awaits a client.
* Per channel, stored events are delivered in strictly increasing offset order with no gap:
  an event that arrives ahead of its predecessor waits while the missing range is read from
  the log; one at or below the last delivered offset is a duplicate and is dropped.
* A new subscriber is registered *before* its history is read, and buffers what arrives
  meanwhile; it joins the live set once history and buffer have brought it level with the
  channel. So nothing published during a subscribe is lost or sent twice.
* The log is read once per channel, not once per subscriber: a subscriber that needs no
  history gets the position the channel's delivery stands at (no read at all once it is
  known); resumes share the read under way and, for a while after, its events, which the
  hub extends with what it delivers (see :class:`_Recent`). A storm of reconnects to one
  channel costs one read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .brokers.base import Broker
from .core.recovery import can_recover
from .core.wire import encode_event, ws_frame
from .errors import Unavailable
from .events import Event, History, Position
from .logs.base import Log

__all__ = ["Encoder", "Hub", "Sink", "SubscribeResult"]

log = logging.getLogger(__name__)

Encoder = Callable[[Event], bytes]


class Sink(Protocol):
    """One subscriber connection as the hub sees it."""

    @property
    def wire(self) -> str:
        """The name of the wire format this sink takes (a key of the hub's encoders)."""
        ...

    def push(self, frame: bytes, event: Event) -> None:
        """Queue ``frame`` (``event`` encoded in :attr:`wire`). Must not block or raise."""
        ...


def _ws(event: Event) -> bytes:
    return ws_frame(encode_event(event))


@dataclass(slots=True)
class _Pending:
    top: int | None = None  # set once history is sent: the offset the sink stands at
    buffer: list[Event] = field(default_factory=list)


# How long a channel keeps the events of its last history read for further resumes, and how
# many of them (the newest) at most.
RECENT_IDLE = 10.0
RECENT_MAX = 1000


class _Recent:
    """The events after offset ``after`` up to ``top``, without a gap: a history read kept
    for the resumes that follow it, extended with each event the hub delivers in order.

    ``first`` is the lowest offset the log held when it was read. Frames are encoded once
    per wire, however many subscribers replay them.
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

    def since(self, after: int) -> History:
        events = tuple(itertools.islice(self.events, max(0, after - self.after), None))
        return History(events, self.top, self.first)

    def extend(self, event: Event) -> bool:
        """Take the next delivered event; False if it does not continue (drop this then)."""
        if event.offset != self.top.offset + 1 or event.epoch != self.top.epoch:
            return False
        if len(self.events) == RECENT_MAX:
            self.after += 1
        self.events.append(event)
        self.top = Position(event.offset, event.epoch)
        return True


@dataclass(slots=True)
class _Channel:
    name: str
    live: dict[str, dict[Sink, None]] = field(default_factory=dict)
    pending: dict[Sink, _Pending] = field(default_factory=dict)
    last: int | None = None  # highest stored offset delivered (or vouched for) in order
    epoch: str | None = None  # the epoch of the offset ``last``, once known
    ready: asyncio.Future[None] | None = None  # done once the broker subscription holds
    held: list[Event] | None = None  # events waiting while a gap is read from the log
    behind: bool = False  # the broker lost messages while a fill was already running
    recent: _Recent | None = None  # the last history read, for the resumes that follow
    reading: asyncio.Future[tuple[int, History]] | None = None  # a read under way

    def empty(self) -> bool:
        return not self.pending and not any(self.live.values())


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """A subscription's recovery outcome; ``events`` are the replayed events when the
    subscriber asked to take them itself (``replay=False``)."""

    recovered: bool
    position: Position | None
    replayed: int
    events: tuple[Event, ...] = ()


class Hub:
    def __init__(self, log: Log, broker: Broker, *, recover_max: int = 10_000) -> None:
        self._log = log
        self._broker = broker
        self._channels: dict[str, _Channel] = {}
        self._encoders: dict[str, Encoder] = {"ws": _ws}
        self._tasks: set[asyncio.Task[None]] = set()
        self._taps: dict[str, Callable[[Event], None]] = {}
        self.recover_max = recover_max
        self.delivered = 0
        self.published = 0

    def add_wire(self, name: str, encoder: Encoder) -> None:
        """Register a wire format; sinks with ``wire == name`` get ``encoder(event)``."""
        self._encoders[name] = encoder

    def encode(self, wire: str, event: Event) -> bytes:
        return self._encoders[wire](event)

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def channels(self, prefix: str = "") -> list[str]:
        """The channels starting with ``prefix`` that have subscribers on this node."""
        return [
            name
            for name, ch in self._channels.items()
            if name.startswith(prefix) and not ch.empty()
        ]

    def delivered_to(self, channel: str) -> int | None:
        """The channel's last stored offset delivered in order here (None: not known)."""
        ch = self._channels.get(channel)
        return None if ch is None else ch.last

    def subscribers(self, channel: str) -> int:
        ch = self._channels.get(channel)
        if ch is None:
            return 0
        return len(ch.pending) + sum(len(s) for s in ch.live.values())

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe(
        self,
        sink: Sink,
        channel: str,
        *,
        since: Position | None,
        stored: bool,
        announce: Callable[[SubscribeResult], None],
        replay: bool = True,
    ) -> SubscribeResult | None:
        """Subscribe ``sink`` to ``channel``.

        ``announce`` is called exactly once, just before any event of the channel is pushed
        to the sink, with the recovery outcome (so the ``subscribed`` reply precedes the
        events). Replayed events follow, then buffered ones, then live ones. With
        ``replay=False`` the replayed events are not pushed but handed to ``announce`` in
        :attr:`SubscribeResult.events` (a protocol that sends them inside its reply).

        Returns the outcome, or ``None`` if the sink was unsubscribed meanwhile.

        Raises:
            Unavailable: the log could not be read; the sink is not subscribed.
        """
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _Channel(channel)
            ch.ready = asyncio.get_running_loop().create_future()
            try:
                await self._broker.subscribe(channel)
            except BaseException as exc:
                ch.ready.set_exception(Unavailable(f"cannot subscribe to {channel}: {exc}"))
                ch.ready.exception()  # retrieved: later waiters see it through await
                if self._channels.get(channel) is ch:
                    del self._channels[channel]
                raise Unavailable(f"the broker cannot subscribe to {channel}: {exc}") from exc
            ch.ready.set_result(None)
        elif ch.ready is not None and not ch.ready.done():
            # Another subscriber is making the broker subscription: nothing published
            # before it takes effect would reach this node, so wait for it.
            await asyncio.shield(ch.ready)
            if self._channels.get(channel) is not ch:
                return await self.subscribe(
                    sink, channel, since=since, stored=stored, announce=announce, replay=replay
                )
        if not stored:
            ch.live.setdefault(sink.wire, {})[sink] = None
            result = SubscribeResult(recovered=False, position=None, replayed=0)
            announce(result)
            return result
        pending = ch.pending[sink] = _Pending()
        try:
            history = await self._history(ch, since)
            recovered = since is not None and can_recover(
                since, history.position, history.first, self.recover_max
            )
        except BaseException:
            self._drop_pending(ch, sink)
            raise
        if ch.pending.get(sink) is not pending:
            return None
        top = history.position.offset
        if recovered:
            # The sink stands where its replay ends. A log whose read is not one snapshot may
            # report a top beyond the last event it returned; what lies between arrives
            # through the buffer or the catch-up read below.
            assert since is not None
            top = since.offset
            if history.events and history.events[-1].offset is not None:
                top = history.events[-1].offset
        result = SubscribeResult(
            recovered,
            history.position,
            len(history.events) if recovered else 0,
            history.events if recovered and not replay else (),
        )
        announce(result)
        if recovered and replay:
            frame = self._replay_frame(ch, sink.wire)
            for event in history.events:
                sink.push(frame(event), event)
        if ch.last is None:
            ch.last = top
            ch.epoch = history.position.epoch
        while top < ch.last:
            # The channel has moved past what this read saw and the events in between
            # reached the hub before this sink was buffering them: read them too.
            more = await self._log.read(channel, top, ch.last - top)
            if ch.pending.get(sink) is not pending:
                return None
            if not more.events:
                break
            encoder = self._encoders[sink.wire]
            for event in more.events:
                if event.offset is not None and event.offset > top:
                    sink.push(encoder(event), event)
                    top = event.offset
        self._settle(ch, sink, pending, top)
        return result

    async def _history(self, ch: _Channel, since: Position | None) -> History:
        """What a new subscriber needs from the log: the events after ``since`` (up to the
        recovery bound) and the channel's position, or only the position.
        """
        if since is None:
            if ch.last is not None and ch.epoch is not None:
                return History((), Position(ch.last, ch.epoch), 0)  # where delivery stands
            return History((), await self._log.position(ch.name), 0)
        after = since.offset
        recent = ch.recent
        if recent is not None and recent.covers(after, since.epoch):
            recent.used = time.monotonic()
            return recent.since(after)
        reading = ch.reading
        if reading is not None:
            start, history = await asyncio.shield(reading)
            if start <= after and len(history.events) < self.recover_max:
                return _after(history, after)
        return await self._read(ch, after)

    async def _read(self, ch: _Channel, after: int) -> History:
        """Read the log after ``after``; resumes that arrive meanwhile wait for this read."""
        future: asyncio.Future[tuple[int, History]] | None = None
        if ch.reading is None:
            future = ch.reading = asyncio.get_running_loop().create_future()
        try:
            history = await self._log.read(ch.name, after, self.recover_max)
        except BaseException as exc:
            if future is not None:
                ch.reading = None
                future.set_exception(exc)
                future.exception()  # retrieved: the waiters see it through await
            raise
        if future is not None:
            ch.reading = None
            future.set_result((after, history))
            if len(history.events) < self.recover_max and self._channels.get(ch.name) is ch:
                recent = _Recent(history, time.monotonic())
                if ch.recent is None or recent.after <= ch.recent.after:
                    ch.recent = recent
        return history

    def _replay_frame(self, ch: _Channel, wire: str) -> Callable[[Event], bytes]:
        """Encode replayed events in ``wire``, each once per channel while it is recent."""
        encoder = self._encoders[wire]
        recent = ch.recent
        if recent is None:
            return encoder
        frames = recent.frames

        def frame(event: Event) -> bytes:
            key = (wire, event.offset or 0, event.epoch)
            found = frames.get(key)
            if found is None:
                found = frames[key] = encoder(event)
            return found

        return frame

    def _settle(self, ch: _Channel, sink: Sink, pending: _Pending, top: int) -> None:
        encoder = self._encoders[sink.wire]
        # Events buffered before the channel had a known position came in broker order,
        # which across nodes need not be offset order, and need not be complete: an event
        # published before this node's broker subscription took effect is not among them.
        # Only the run that continues ``top`` is pushed; what lies beyond a gap goes through
        # the hub's own ordering, which reads the gap from the log first.
        pending.buffer.sort(key=lambda e: e.offset or 0)
        beyond: list[Event] = []
        for event in pending.buffer:
            if event.offset is None:
                sink.push(encoder(event), event)
            elif event.offset == top + 1 and not beyond:
                sink.push(encoder(event), event)
                top = event.offset
            elif event.offset > top:
                beyond.append(event)
        pending.buffer.clear()
        if top == ch.last:
            del ch.pending[sink]
            ch.live.setdefault(sink.wire, {})[sink] = None
        else:
            pending.top = top  # not level with the hub: pending until the hub gets there
        for event in beyond:
            self.deliver(event)

    def _drop_pending(self, ch: _Channel, sink: Sink) -> None:
        ch.pending.pop(sink, None)
        self._maybe_forget(ch)

    def unsubscribe(self, sink: Sink, channel: str) -> bool:
        """Remove ``sink`` from ``channel``; return whether it was subscribed."""
        ch = self._channels.get(channel)
        if ch is None:
            return False
        found = ch.pending.pop(sink, None) is not None
        sinks = ch.live.get(sink.wire)
        if sinks is not None and sink in sinks:
            del sinks[sink]
            found = True
        self._maybe_forget(ch)
        return found

    def _maybe_forget(self, ch: _Channel) -> None:
        if ch.empty() and self._channels.get(ch.name) is ch:
            del self._channels[ch.name]
            self._spawn(self._broker.unsubscribe(ch.name))

    async def tap(self, channel: str, handler: Callable[[Event], None]) -> None:
        """Hand every event the broker brings on ``channel`` to ``handler`` (for the nodes'
        own reserved channels, which no client can name; see :mod:`croupier.cluster`).

        ``handler`` runs on the event loop and must not block. Taps are neither counted as
        channels nor as deliveries.
        """
        self._taps[channel] = handler
        await self._broker.subscribe(channel)

    async def untap(self, channel: str) -> None:
        if self._taps.pop(channel, None) is not None:
            await self._broker.unsubscribe(channel)

    # -- delivering ------------------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Take one event from the broker. Never awaits."""
        ch = self._channels.get(event.channel)
        if ch is None:
            tap = self._taps.get(event.channel)
            if tap is not None:
                tap(event)
            return
        offset = event.offset
        if offset is None:
            self._fanout(ch, event)
            return
        if ch.held is not None:
            ch.held.append(event)
            return
        last = ch.last
        if last is None:
            # No subscriber has finished reading history: everyone is still buffering.
            for pending in ch.pending.values():
                pending.buffer.append(event)
            return
        if offset <= last:
            return
        if offset > last + 1:
            ch.held = [event]
            self._spawn(self._fill(ch))
            return
        ch.last = offset
        self._fanout(ch, event)

    def _fanout(self, ch: _Channel, event: Event) -> None:
        if event.offset is not None:
            ch.epoch = event.epoch
            recent = ch.recent
            if recent is not None and (
                not recent.extend(event) or time.monotonic() - recent.used > RECENT_IDLE
            ):
                ch.recent = None
        for wire, sinks in ch.live.items():
            if sinks:
                frame = self._encoders[wire](event)
                for sink in sinks:
                    sink.push(frame, event)
                self.delivered += len(sinks)
        if ch.pending:
            self._feed_pending(ch, event)

    def _feed_pending(self, ch: _Channel, event: Event) -> None:
        offset = event.offset
        promoted = []
        for sink, pending in ch.pending.items():
            if pending.top is None:
                if offset is not None:
                    pending.buffer.append(event)
            elif offset is None or offset > pending.top:
                sink.push(self._encoders[sink.wire](event), event)
                if offset is not None:
                    promoted.append(sink)
        for sink in promoted:
            del ch.pending[sink]
            ch.live.setdefault(sink.wire, {})[sink] = None

    async def _fill(self, ch: _Channel, *, catch_up: bool = False) -> None:
        """Deliver the held events after reading the range missing before them.

        With ``catch_up``, also read whatever the log holds beyond the last delivered
        offset, up to the recovery bound (after a broker outage nothing may be held).

        While the log cannot be read, the events stay held and the read is retried with a
        growing pause: the missing offsets are stored, so skipping them would lose them.
        If the broker brings the whole missing range meanwhile, no read is needed.
        """
        pause = 0.1
        while (ch.held or catch_up or ch.behind) and self._channels.get(ch.name) is ch:
            catch_up = catch_up or ch.behind
            ch.behind = False
            held = sorted(ch.held or [], key=lambda e: e.offset or 0)
            ch.held = []
            last = ch.last or 0
            merged: dict[int, Event] = {}
            arrived = {e.offset: e for e in held if e.offset is not None and e.offset > last}
            want = max(arrived, default=last) - last
            if catch_up or want > len(arrived):
                try:
                    history = await self._log.read(
                        ch.name, last, max(want, self.recover_max if catch_up else 0)
                    )
                except Exception as exc:
                    log.warning(
                        "channel %s: cannot read the events after offset %d yet (%s); retrying",
                        ch.name,
                        last,
                        exc,
                    )
                    ch.held = held + ch.held
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                catch_up = False
                merged = {e.offset: e for e in history.events if e.offset}
            for offset, event in arrived.items():
                merged.setdefault(offset, event)
            for offset in sorted(merged):
                expected = (ch.last or 0) + 1
                if offset < expected:
                    continue
                if offset > expected:
                    log.warning(
                        "channel %s: offsets %d-%d are not in the log; skipping them",
                        ch.name,
                        expected,
                        offset - 1,
                    )
                ch.last = offset
                self._fanout(ch, merged[offset])
        ch.held = None

    def resync(self) -> None:
        """Catch every channel up from the log (the broker may have lost messages)."""
        for ch in list(self._channels.values()):
            if ch.last is None:
                continue
            if ch.held is None:
                ch.held = []
                self._spawn(self._fill(ch, catch_up=True))
            else:
                ch.behind = True  # the running fill reads to the end of the log as well

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _after(history: History, after: int) -> History:
    """``history`` without its events at or before offset ``after``."""
    events = tuple(e for e in history.events if e.offset is not None and e.offset > after)
    return History(events, history.position, history.first)

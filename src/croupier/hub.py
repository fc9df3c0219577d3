"""This node's subscriptions and the fan-out to them.

Rules:

* An event is encoded once per wire format; every subscriber of that format gets the same
  bytes. Fan-out calls :meth:`Sink.push` and never awaits a client.
* Per channel, stored events are delivered in strictly increasing offset order with no gap,
  and a new subscriber is registered *before* its history is read, so nothing published
  during a subscribe is lost or sent twice. The rules are :mod:`croupier.core.ordering`'s;
  the hub does the log reads they ask for and pushes what they return.
* The log is read once per channel, not once per subscriber (resumes share the last read).
* Services that react to a channel's events (not clients) :meth:`~Hub.listen` to it: they
  get each event as the channel's subscribers do, live, without encoding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .brokers.base import Broker
from .core.ordering import (
    Arrival,
    ChannelOrder,
    PendingTake,
    RecentHistory,
    continuing,
    history_after,
    pending_take,
    resume,
)
from .core.ordering import settle as settle_buffer
from .core.wire import encode_event, ws_frame
from .errors import Unavailable
from .events import Event, History, Position
from .logs.base import Log

__all__ = ["Encoder", "Hub", "Listener", "Sink", "StartNow", "SubscribeResult"]

log = logging.getLogger(__name__)

Encoder = Callable[[Event], bytes]

Listener = Callable[[Event], None]
"""A service's callback for a channel's events (see :meth:`Hub.listen`). It runs on the
event loop during fan-out: it must be quick and must not block."""


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


@dataclass(slots=True)
class _Channel:
    name: str
    order: ChannelOrder = field(default_factory=ChannelOrder)
    live: dict[str, dict[Sink, None]] = field(default_factory=dict)
    pending: dict[Sink, _Pending] = field(default_factory=dict)
    listeners: dict[Listener, None] = field(default_factory=dict)
    ready: asyncio.Future[None] | None = None  # done once the broker subscription holds
    recent: RecentHistory | None = None  # the last history read, for the resumes that follow
    reading: asyncio.Future[tuple[int, History]] | None = None  # a read under way
    locating: asyncio.Future[Position] | None = None  # a position look-up under way

    def empty(self) -> bool:
        return not self.pending and not self.listeners and not any(self.live.values())


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """A subscription's recovery outcome; ``events`` are the replayed events when the
    subscriber asked to take them itself (``replay=False``)."""

    recovered: bool
    position: Position | None
    replayed: int
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class StartNow:
    """A new subscriber's start that needs no await (see :meth:`Hub.start_now`)."""

    channel: _Channel
    history: History | None  # None: an ephemeral channel, live from now
    recovered: bool
    top: int


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

    def add_wire(self, name: str, encoder: Encoder) -> None:
        """Register a wire format; sinks with ``wire == name`` get ``encoder(event)``."""
        self._encoders[name] = encoder

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
        return None if ch is None else ch.order.last

    def subscribers(self, channel: str) -> int:
        """Subscribers of ``channel`` on this node (a service's listener counts as one)."""
        ch = self._channels.get(channel)
        if ch is None:
            return 0
        return len(ch.pending) + len(ch.listeners) + sum(len(s) for s in ch.live.values())

    # -- subscribing -----------------------------------------------------------------------

    async def _open(self, channel: str) -> _Channel:
        """The channel's state, once the broker subscription that feeds it holds.

        Raises:
            Unavailable: the broker could not subscribe.
        """
        while True:
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
                return ch
            if ch.ready is None or ch.ready.done():
                return ch
            # Another subscriber is making the broker subscription: nothing published
            # before it takes effect would reach this node, so wait for it.
            await asyncio.shield(ch.ready)
            if self._channels.get(channel) is ch:
                return ch

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
        ch = await self._open(channel)
        if not stored:
            return self._live(ch, sink, announce)
        pending = ch.pending[sink] = _Pending()
        try:
            history = await self._history(ch, since)
        except BaseException:
            self._drop_pending(ch, sink)
            raise
        if ch.pending.get(sink) is not pending:
            return None
        recovered, top = resume(since, history, self.recover_max)
        result = self._begin(ch, sink, history, recovered, top, announce, replay)
        encoder = self._replay_frame(ch, sink.wire)
        while (missing := ch.order.catch_up(top)) is not None:
            # The channel has moved past what this read saw and the events in between
            # reached the hub before this sink was buffering them: read them too.
            more = await self._log.read(channel, missing.after, missing.limit)
            if ch.pending.get(sink) is not pending:
                return None
            if not more.events:
                break
            for event in continuing(top, more.events):
                sink.push(encoder(event), event)
                top = event.offset or top
        self._settle(ch, sink, pending, top)
        return result

    def start_now(self, channel: str, *, since: Position | None, stored: bool) -> StartNow | None:
        """Where a new subscriber of ``channel`` starts, when that is known without an await:
        the channel's broker subscription holds, and the start is where delivery stands, or in
        recent history covering ``since``, with nothing to catch up. A reconnect storm's
        subscribers, after the first of each channel, are all of this kind.

        ``None``: :meth:`subscribe` must be awaited. Otherwise hand the answer to
        :meth:`subscribe_now` before the next await (it describes the channel as it is now).
        """
        ch = self._channels.get(channel)
        if ch is None or (ch.ready is not None and not ch.ready.done()):
            return None
        if not stored:
            return StartNow(ch, None, False, 0)
        history = self._history_now(ch, since)
        if history is None:
            return None
        recovered, top = resume(since, history, self.recover_max)
        last = ch.order.last
        if last is not None and top < last:
            return None  # behind the channel: the events in between must be read
        return StartNow(ch, history, recovered, top)

    def subscribe_now(
        self,
        sink: Sink,
        start: StartNow,
        *,
        announce: Callable[[SubscribeResult], None],
        replay: bool = True,
    ) -> SubscribeResult:
        """:meth:`subscribe` from a :meth:`start_now` answer, with no await."""
        ch = start.channel
        if start.history is None:
            return self._live(ch, sink, announce)
        pending = ch.pending[sink] = _Pending()
        result = self._begin(ch, sink, start.history, start.recovered, start.top, announce, replay)
        self._settle(ch, sink, pending, start.top)
        return result

    def _live(
        self, ch: _Channel, sink: Sink, announce: Callable[[SubscribeResult], None]
    ) -> SubscribeResult:
        ch.live.setdefault(sink.wire, {})[sink] = None
        result = SubscribeResult(recovered=False, position=None, replayed=0)
        announce(result)
        return result

    def _begin(
        self,
        ch: _Channel,
        sink: Sink,
        history: History,
        recovered: bool,
        top: int,
        announce: Callable[[SubscribeResult], None],
        replay: bool,
    ) -> SubscribeResult:
        """Announce the recovery outcome (``recovered``, the sink standing at ``top``, as
        :func:`resume` decided) and push the replay."""
        events = history.events if recovered else ()
        result = SubscribeResult(recovered, history.position, len(events), () if replay else events)
        announce(result)
        if replay and events:
            frame = self._replay_frame(ch, sink.wire)
            for event in events:
                sink.push(frame(event), event)
        ch.order.vouch(top, history.position.epoch)
        return result

    def _history_now(self, ch: _Channel, since: Position | None) -> History | None:
        """What :meth:`_history` finds without reading the log (``None``: a read is needed)."""
        if since is None:
            stands = ch.order.position()
            return None if stands is None else History((), stands, 0)
        recent = ch.recent
        if recent is not None and recent.covers(since.offset, since.epoch):
            return recent.since(since.offset, time.monotonic())
        return None

    async def _history(self, ch: _Channel, since: Position | None) -> History:
        """What a new subscriber needs from the log: the events after ``since`` (up to the
        recovery bound) and the channel's position, or only the position.
        """
        known = self._history_now(ch, since)
        if known is not None:
            return known  # where delivery stands, or recent history: no read
        if since is None:
            return History((), await self._position(ch), 0)
        after = since.offset
        reading = ch.reading
        if reading is not None:
            start, history = await asyncio.shield(reading)
            if start <= after and len(history.events) < self.recover_max:
                return history_after(history, after)
        return await self._read(ch, after)

    async def _position(self, ch: _Channel) -> Position:
        """The channel's position in the log. The subscribers that arrive while it is looked
        up (a crowd on a channel this node has just opened) share the look-up; one that
        started before a subscriber began buffering may be behind, which the subscriber's
        catch-up (see :meth:`subscribe`) reads, as it does after a shared read."""
        locating = ch.locating
        if locating is None:
            locating = ch.locating = asyncio.ensure_future(self._log.position(ch.name))

            def done(future: asyncio.Future[Position]) -> None:
                if ch.locating is future:
                    ch.locating = None
                if not future.cancelled():
                    future.exception()  # retrieved: the waiters see it through await

            locating.add_done_callback(done)
        return await asyncio.shield(locating)

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
                recent = RecentHistory(history, time.monotonic())
                if recent.replaces(ch.recent):
                    ch.recent = recent
        return history

    def _replay_frame(self, ch: _Channel, wire: str) -> Callable[[Event], bytes]:
        """Encode stored events in ``wire``, each once per channel while it is recent, for
        what a crowd of new subscribers is pushed one by one (replays, catch-ups, the
        events buffered while they read). Ephemeral events have no key: each is encoded."""
        encoder = self._encoders[wire]
        recent = ch.recent
        if recent is None:
            return encoder
        frames = recent.frames

        def frame(event: Event) -> bytes:
            if event.offset is None:
                return encoder(event)
            key = (wire, event.offset, event.epoch)
            found = frames.get(key)
            if found is None:
                found = frames[key] = encoder(event)
            return found

        return frame

    def _settle(self, ch: _Channel, sink: Sink, pending: _Pending, top: int) -> None:
        """Push what ``sink`` buffered while it read history (it stands at ``top``), and make
        it live if that brings it level with the channel, else pending until it is."""
        beyond: list[Event] = []
        if pending.buffer:  # nothing, for a subscriber that read no log (no await)
            encoder = self._replay_frame(ch, sink.wire)
            settled = settle_buffer(top, pending.buffer)
            pending.buffer.clear()
            for event in settled.now:
                sink.push(encoder(event), event)
            top, beyond = settled.top, settled.beyond
        if top == ch.order.last:
            del ch.pending[sink]
            ch.live.setdefault(sink.wire, {})[sink] = None
        else:
            pending.top = top  # not level with the hub: pending until it gets there
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

    async def listen(self, channel: str, listener: Listener) -> None:
        """Call ``listener`` with every event this node delivers on ``channel`` from now on.

        For services reacting to a channel (a room's player actions, the nodes' sync
        messages of a leaderboard): the listener gets events live, as a subscriber that did
        not ask for history, in the channel's order, without any encoding. Exceptions it
        raises are logged and do not stop the fan-out. Stop with :meth:`unlisten`.

        Raises:
            Unavailable: the broker could not subscribe to the channel.
        """
        ch = await self._open(channel)
        ch.listeners[listener] = None

    def unlisten(self, channel: str, listener: Listener) -> bool:
        """Stop calling ``listener`` for ``channel``; return whether it was listening."""
        ch = self._channels.get(channel)
        if ch is None or listener not in ch.listeners:
            return False
        del ch.listeners[listener]
        self._maybe_forget(ch)
        return True

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
        arrival = ch.order.arrive(event)
        if arrival is Arrival.DELIVER:
            self._fanout(ch, event)
        elif arrival is Arrival.BUFFER:
            # No subscriber has finished reading history: everyone is still buffering.
            for pending in ch.pending.values():
                pending.buffer.append(event)
        elif arrival is Arrival.FILL:
            self._spawn(self._fill(ch))

    def _fanout(self, ch: _Channel, event: Event) -> None:
        recent = ch.recent
        if (
            recent is not None
            and event.offset is not None
            and not recent.keep(event, time.monotonic())
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
        if ch.listeners:
            for listener in list(ch.listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("a listener of %s failed", ch.name)

    def _feed_pending(self, ch: _Channel, event: Event) -> None:
        promoted = []
        frames: dict[str, bytes] = {}  # the event in each wire, encoded once for them all
        for sink, pending in ch.pending.items():
            take = pending_take(pending.top, event.offset)
            if take is PendingTake.BUFFER:
                pending.buffer.append(event)
            elif take is not PendingTake.SKIP:
                frame = frames.get(sink.wire)
                if frame is None:
                    frame = frames[sink.wire] = self._encoders[sink.wire](event)
                sink.push(frame, event)
                if take is PendingTake.JOIN:
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
        order = ch.order
        pause = 0.1
        while order.wants_fill(catch_up) and self._channels.get(ch.name) is ch:
            catch_up = catch_up or order.behind
            order.behind = False
            fill = order.next_fill(catch_up, self.recover_max)
            events: tuple[Event, ...] = ()
            if fill.read is not None:
                try:
                    history = await self._log.read(ch.name, fill.read.after, fill.read.limit)
                except Exception as exc:
                    log.warning(
                        "channel %s: cannot read the events after offset %d yet (%s); retrying",
                        ch.name,
                        fill.read.after,
                        exc,
                    )
                    order.retry(fill)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                catch_up = False
                events = history.events
            for event, skipped in order.fill(fill, events):
                if skipped:
                    offset = event.offset or 0
                    log.warning(
                        "channel %s: offsets %d-%d are not in the log; skipping them",
                        ch.name,
                        offset - skipped,
                        offset - 1,
                    )
                self._fanout(ch, event)
        order.filled()

    def resync(self) -> None:
        """Catch every channel up from the log (the broker may have lost messages)."""
        for ch in list(self._channels.values()):
            if ch.order.resync():
                self._spawn(self._fill(ch, catch_up=True))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""The PostgreSQL Broker: LISTEN/NOTIFY as a small wake-up, the log as the data path.

A notification carries only a channel name and its newest offset. A node with subscribers on
that channel reads the new events from the log, so NOTIFY's 8,000-byte payload cap never
limits an event and no event travels twice. Ephemeral events are not in the log: they ride
in the notification itself, and one too large for it is dropped with a warning.

Notifications are sent after the events are committed, on a connection of their own, one per
channel per batch. When the listening connection drops, the node reconnects and asks the hub
to resync from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import asyncpg
import msgspec
import orjson

from ..errors import Unavailable
from ..events import Event
from ..logs.base import Log
from ..logs.postgres import PostgresLog
from ..tasks import Background
from .base import EventHandler

__all__ = ["PostgresBroker"]

log = logging.getLogger(__name__)

PG_CHANNEL = "croupier_events"
_MAX_NOTIFY = 7900  # bytes: PostgreSQL refuses payloads of 8,000 or more
_READ_BATCH = 1000


class _Note(msgspec.Struct, frozen=True):
    """A notification: a stored channel's newest offset ``o``, or an ephemeral event (with
    its ``exclude`` as ``x`` and its ``only`` as ``p``, when set)."""

    c: str
    o: int | None = None
    t: str = ""
    ts: str = ""
    d: msgspec.Raw = msgspec.Raw(b"null")  # the event's data, passed on as it came
    x: str | None = None
    p: str | None = None


_decode_note = msgspec.json.Decoder(_Note).decode


def _nothing(event: Event) -> None:
    return None


class PostgresBroker:
    """Args:
    dsn: a ``postgresql://`` URL (may be the log's own database).
    log: the Log the events are read from.
    """

    def __init__(self, dsn: str, log: Log) -> None:
        self.dsn = PostgresLog.from_url(dsn).dsn
        self._log = log
        self._handler: EventHandler = _nothing
        self._resync: Callable[[], None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._send_lock = asyncio.Lock()
        self._channels: dict[str, int] = {}  # channel -> last offset handed to the hub
        self._wanted: dict[str, int] = {}  # channel -> newest offset announced
        self._fetching: set[str] = set()
        self._background = Background()  # fetches after notifications
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False

    def bind(self, handler: EventHandler, resync: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._resync = resync

    async def __aenter__(self) -> Self:
        try:
            await self._listen()
            self._sender = await asyncpg.connect(self.dsn, timeout=10)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach PostgreSQL for LISTEN: {exc}") from exc
        self._watchdog = asyncio.create_task(self._watch())
        return self

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        await conn.add_listener(PG_CHANNEL, self._notified)
        self._listener = conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        await self._background.close(self._watchdog)
        for conn in (self._listener, self._sender):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)

    async def publish(self, events: Sequence[Event]) -> None:
        newest: dict[str, int] = {}
        payloads: list[str] = []
        for event in events:
            if event.offset is not None:
                newest[event.channel] = max(newest.get(event.channel, 0), event.offset)
                continue
            note: dict[str, Any] = {
                "c": event.channel,
                "t": event.type,
                "ts": event.ts,
                "d": orjson.Fragment(event.payload),
            }
            if event.exclude is not None:
                note["x"] = event.exclude
            if event.only is not None:
                note["p"] = event.only
            body = orjson.dumps(note)
            if len(body) > _MAX_NOTIFY:
                log.warning(
                    "ephemeral %s on %s is too large for NOTIFY; dropped", event.type, event.channel
                )
                continue
            payloads.append(body.decode())
        payloads.extend(orjson.dumps({"c": c, "o": o}).decode() for c, o in newest.items())
        if not payloads:
            return
        try:
            async with self._send_lock:
                if self._sender is None or self._sender.is_closed():
                    self._sender = await asyncpg.connect(self.dsn, timeout=10)
                await self._sender.execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", PG_CHANNEL, payloads
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise Unavailable(f"PostgreSQL did not take the notification: {exc}") from exc

    async def subscribe(self, channel: str) -> None:
        if channel not in self._channels:
            # Start from the channel's current end: LISTEN is already on, so everything
            # committed after this read will be announced.
            self._channels[channel] = (await self._log.position(channel)).offset

    async def unsubscribe(self, channel: str) -> None:
        self._channels.pop(channel, None)
        self._wanted.pop(channel, None)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            note = _decode_note(payload)
        except (msgspec.DecodeError, UnicodeEncodeError, RecursionError):
            log.warning("ignoring a malformed notification: %.200s", payload)
            return
        name = note.c
        if name not in self._channels:
            return
        if note.o is None:
            self._handler(Event(name, note.t, bytes(note.d), note.ts, exclude=note.x, only=note.p))
            return
        offset = note.o
        if offset <= max(self._wanted.get(name, 0), self._channels[name]):
            return
        self._wanted[name] = offset
        self._start_fetch(name)

    def _start_fetch(self, channel: str) -> None:
        # Marked before the task runs: notifications handled in the same turn must not start
        # a second reader of the same range (which would hand events over twice, out of order).
        if channel not in self._fetching:
            self._fetching.add(channel)
            self._background.spawn(self._fetch(channel))

    async def _fetch(self, channel: str) -> None:
        """Read the announced range from the log and hand it to the hub, in order."""
        try:
            while (
                channel in self._channels and self._wanted.get(channel, 0) > self._channels[channel]
            ):
                after = self._channels[channel]
                want = min(self._wanted[channel] - after, _READ_BATCH)
                try:
                    history = await self._log.read(channel, after, want)
                except Unavailable as exc:
                    log.warning("cannot read %s after a notification: %s", channel, exc)
                    await asyncio.sleep(0.5)
                    continue
                if not history.events:
                    # Trimmed already, or not yet visible: do not spin.
                    self._channels[channel] = max(
                        after, min(self._wanted[channel], history.position.offset)
                    )
                    if self._channels[channel] == after:
                        await asyncio.sleep(0.05)
                    continue
                for event in history.events:
                    self._handler(event)
                    if event.offset is not None and channel in self._channels:
                        self._channels[channel] = event.offset
        finally:
            self._fetching.discard(channel)

    async def _watch(self) -> None:
        """Reconnect the listener when it drops, then have the hub catch up from the log."""
        while not self._closing:
            await asyncio.sleep(1.0)
            conn = self._listener
            if conn is not None and not conn.is_closed():
                try:
                    await conn.execute("SELECT 1")
                    continue
                except Exception as exc:
                    log.warning("the LISTEN connection failed: %s", exc)
            with contextlib.suppress(Exception):
                if conn is not None:
                    conn.terminate()
            try:
                await self._listen()
            except Exception as exc:
                log.warning("PostgreSQL still unreachable for LISTEN: %s", exc)
                continue
            log.info("LISTEN reconnected; resyncing from the log")
            for channel in list(self._channels):
                with contextlib.suppress(Unavailable):
                    self._wanted[channel] = (await self._log.position(channel)).offset
                    self._start_fetch(channel)
            if self._resync is not None:
                self._resync()

"""The connection core: one executor for every client connection, whatever its protocol.

A :class:`Connection` runs one client: its bounded outbox and slow-consumer policy, the
session rules (:mod:`croupier.core.session`), subscribe / resume / presence join and leave /
announce / a service's starting point, token expiry, idle timeout and heartbeat, and the
close with a neutral reason. It is the hub's :class:`~croupier.hub.Sink`: the hub hands it
pre-encoded bytes and it writes them straight to the socket's transport, never awaiting.

A wire protocol is a :class:`Codec`: it decodes a client's messages into neutral commands
(:mod:`croupier.core.commands`) and encodes replies, snapshots, resets and disconnect
reasons; it names the hub wire that encodes its events (once per event for every
connection of that wire), its heartbeat, the close code of each neutral reason, its
per-subscription authorization hook and who the client is in presence.

How to add a WebSocket protocol:

1. Write one module with a codec (subclass :class:`BaseCodec`, override what differs), an
   event encoder for the hub (``Event -> bytes``, the whole WebSocket frame, see
   :func:`~croupier.core.wire.ws_frame`) and an endpoint::

       ENDPOINT = Endpoint("/connection/websocket", open_codec, {WIRE: encode_event})

   where ``open_codec(upgrade)`` gets the upgrade request (path parameters, query, headers,
   the verified claims) and returns the codec for that connection, or raises a
   ``CroupierError`` to refuse the upgrade with that HTTP answer.
2. Add that endpoint to the list the application serves (one line, see
   :func:`croupier.transports.websocket.add_websocket_routes`).
3. Run the codec contract suite (``tests/contracts/test_codecs.py``) over it.

Every connection is in ``gateway.connections``; :meth:`Connection.info` describes one for
the console and :meth:`Connection.disconnect` ends one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from ..auth import LEEWAY
from ..config import NamespaceRules, PusherApp
from ..core.channels import Claims, check_subscribe
from ..core.commands import (
    Connected,
    Disconnect,
    Outcome,
    Refused,
)
from ..core.session import Session
from ..events import Event, Position
from ..gateway import Gateway
from .closing import Closer
from .codec import BaseCodec, Codec
from .common import new_client_id
from .flusher import Flusher
from .flusher import flusher as loop_flusher
from .outcomes import Outcomes

__all__ = [
    "BaseCodec",
    "Codec",
    "Connection",
]

log = logging.getLogger(__name__)

# Messages waiting behind one that awaits (a subscribe reading history): past this many the
# socket stops being read until they are handled, so a flood cannot queue without bound.
_INBOX_PAUSE = 64

# What ``_waiter`` holds once the socket is gone before anyone waited for it (a lean
# connection is never waited for: no future is made for it).
_LOST: Any = object()

# Tasks that clean up after closed connections: referenced until they finish.
_cleanups: set[asyncio.Task[None]] = set()


# Past this many bytes waiting for the end of the turn, a connection writes at once: a long
# replay goes to the kernel as it is made, and the outbox bound then reads the real buffer.
_FLUSH_AT = 64 * 1024


class Connection(Outcomes):
    """One client connection: the hub's sink and the session's executor.

    Args:
        gateway: what the connection serves.
        codec: its wire protocol.
        claims: the verified token given at connect time (``None``: anonymous).
        closer: how its transport ends a connection (see :data:`Closer`).
        transport: the socket's transport; ``None`` holds every write until :meth:`attach`
            (an event stream subscribes before its response headers are sent).
        reads: whether the client sends messages (the idle rule applies only then).
        kind: ``websocket`` or ``sse``, for ``info()``.
        origin: the browser's ``Origin``, for the live log.
        flusher: the loop's :class:`Flusher` (default: the running loop's).

    The transport feeds it complete client messages through :meth:`receive` (``None``: the
    client closed) and reports the end of the socket through :meth:`lost`.
    """

    __slots__ = (
        "_waiter",
        "backlog",
        "client",
        "closed",
        "closer",
        "codec",
        "created",
        "dirty",
        "ended",
        "flusher",
        "gateway",
        "held",
        "inbox",
        "kind",
        "last_ping",
        "last_seen",
        "max_bytes",
        "max_held",
        "max_messages",
        "on_event",
        "origin",
        "pending",
        "pending_bytes",
        "reads",
        "seen",
        "session",
        "starts",
        "task",
        "transport",
        "wire",
    )

    def __init__(
        self,
        gateway: Gateway,
        codec: Codec,
        claims: Claims | None,
        closer: Closer,
        *,
        transport: asyncio.Transport | None = None,
        reads: bool = True,
        kind: str = "websocket",
        origin: str | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        self.gateway = gateway
        self.codec = codec
        self.wire = codec.wire
        self.on_event = codec.on_event
        self.closer = closer
        self.transport = transport
        self.reads = reads
        self.kind = kind
        self.origin = origin
        self.ended: tuple[str, int | None] | None = None  # why it ended, for the live log
        self.client = new_client_id()
        limits = gateway.settings.limits
        self.max_messages = limits.outbox_messages
        self.max_bytes = limits.outbox_bytes
        self.max_held = limits.recover_max + limits.outbox_messages
        self.backlog = 0
        now = time.monotonic()
        self.created = time.time()
        # A codec that keeps the default check hands the session the plain function: no
        # bound method made per connection, one call fewer per subscribe.
        authorize = (
            check_subscribe
            if getattr(type(codec), "authorize", None) is BaseCodec.authorize
            else codec.authorize
        )
        self.session = Session(gateway.settings, gateway.auth.verify_token, claims, now, authorize)
        self.closed = False
        self.last_seen = now  # the client's last message (pongs count only for quiet ones)
        self.last_ping = now
        self.held: list[tuple[bytes, Event | None]] | None = None if transport else []
        # Only while a message awaits (subscribe, publish): the ones behind it, and the task.
        self.inbox: deque[bytes | str | None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.seen: dict[str, Event] = {}  # the last stored event pushed, per channel
        self.starts: dict[str, Position | None] = {}  # where each subscription started
        self._waiter: asyncio.Future[None] | None = None
        # What was written this loop turn and leaves at its end (bytes, or several).
        self.pending: bytes | list[bytes] | None = None
        self.pending_bytes = 0
        self.flusher: Flusher = flusher or loop_flusher()
        self.dirty = self.flusher.dirty

    @property
    def channels(self) -> dict[str, NamespaceRules]:
        """The channels this connection is subscribed to (or subscribing to)."""
        return self.session.channels

    @property
    def claims(self) -> Claims | None:
        """The session's verified token (``None``: anonymous)."""
        return self.session.claims

    def belongs_to(self, app: PusherApp, user_id: str) -> bool:
        """Whether it is a connection of Pusher ``app``'s user ``user_id`` (its codec says)."""
        return self.codec.belongs_to(app, user_id)

    # -- the hot path ----------------------------------------------------------------------

    def push(self, frame: bytes, event: Event) -> None:
        """Queue an event the hub encoded for :attr:`wire`. Never blocks or raises."""
        if self.closed:
            return
        if event.only is not None and not self.meant_for(event.only):
            return
        if event.offset is not None:
            self.seen[event.channel] = event
        if self.on_event is not None:
            if self.held is not None:
                self._hold(frame, event)
                return
            shown = self.on_event(frame, event)
            if shown is None:
                return
            frame = shown
        self.write(frame)

    def meant_for(self, player: str) -> bool:
        """Whether an event meant for one player (:attr:`Event.only`) reaches this connection:
        that player's own, or a backend listener's (:attr:`Codec.hears_private`)."""
        if self.codec.hears_private:
            return True
        claims = self.session.claims
        return claims is not None and claims.player == player

    def send(self, frame: bytes) -> None:
        """Queue bytes that are not an event (a reply, a heartbeat), behind what is queued."""
        if frame and not self.closed:
            self.write(frame)

    def write(self, frame: bytes) -> None:
        """Queue ``frame`` through the bounded outbox; it leaves at the end of this turn.

        Everything written to a connection in one loop turn leaves in one
        ``transport.write`` (see :class:`~croupier.transports.flusher.Flusher`), or sooner
        once :data:`_FLUSH_AT` bytes wait. The outbox is the socket's own write buffer plus
        what waits for the turn's end: while the buffer holds unsent data, each write counts
        against ``outbox_messages``; past that, or past ``outbox_bytes`` buffered and
        waiting, the connection is cut off as a slow consumer (it reconnects and resumes
        from its last offset).
        """
        transport = self.transport
        if transport is None:
            self._hold(frame, None)
            return
        size = transport.get_write_buffer_size()
        pending = self.pending
        if size:
            self.backlog += 1
            if self.backlog > self.max_messages or size + self.pending_bytes > self.max_bytes:
                self._slow_consumer()
                return
        elif pending is None:
            self.backlog = 0
        if pending is None:
            # The first write of the turn (the whole of a steady fan-out): no list, no count.
            self.pending = frame
            dirty = self.dirty
            if not dirty:
                self.flusher.schedule()
            dirty.append(self)
            return
        if isinstance(pending, bytes):
            pending = self.pending = [pending, frame]
            self.pending_bytes = len(pending[0]) + len(frame)
        else:
            pending.append(frame)
            self.pending_bytes += len(frame)
        if self.pending_bytes >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write what waits for the end of the turn, in one ``transport.write``."""
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        self.pending_bytes = 0
        transport = self.transport
        if transport is not None:
            transport.write(pending if isinstance(pending, bytes) else b"".join(pending))

    def _hold(self, frame: bytes, event: Event | None) -> None:
        held = self.held
        assert held is not None
        held.append((frame, event))
        if len(held) > self.max_held:
            self._slow_consumer()

    def attach(self, transport: asyncio.Transport, greeting: bytes = b"") -> None:
        """Start writing to ``transport``: ``greeting``, what was held, then what comes."""
        held = self.held or []
        self.held = None
        self.transport = transport
        if self.closed:
            return
        hook = self.on_event
        frames = [greeting]
        for frame, event in held:
            if hook is not None and event is not None:
                shown = hook(frame, event)
                if shown is None:
                    continue
                frame = shown
            frames.append(frame)
        transport.write(b"".join(frames))

    def _slow_consumer(self) -> None:
        gateway = self.gateway
        gateway.metrics.slow_consumers += 1
        if gateway.debug.watching:
            transport = self.transport
            self._log(
                "slow_consumer",
                # The bound counts what waits for the turn's end as well as the buffer.
                outbox=(transport.get_write_buffer_size() + self.pending_bytes)
                if transport is not None
                else None,
                messages=self.backlog,
            )
        self.disconnect("slow_consumer", reconnect=True)

    # -- ending ----------------------------------------------------------------------------

    def disconnect(self, reason: str, reconnect: bool = True, **_: Any) -> None:
        """Tell the client why (after what is queued), close, and stop pushing to it.

        ``reason`` is neutral (``slow_consumer``, ``token_expired``, ``idle_timeout``,
        ``shutdown``, ``abuse`` …); the codec says how its protocol shows it.
        """
        if self.closed:
            return
        self.closed = True
        self.held = None
        codec = self.codec
        last = codec.encode(Disconnect(reason, reconnect))
        self.ended = (reason, codec.close_code(reason))
        self.flush()  # what is queued goes first
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.closer(transport, last, codec.close_code(reason), codec.close_reason(reason))

    def close(self, code: int, reason: str = "") -> None:
        """End with a bare protocol close (the client closed, or broke the framing)."""
        self.closed = True
        self.held = None
        if self.ended is None:
            self.ended = (reason or ("client_closed" if code == 1000 else "closed"), code)
        self.flush()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.closer(transport, b"", code, reason)

    def lost(self) -> None:
        """The socket is gone: leave the hub and presence once any message in hand is done."""
        self.closed = True
        self.held = None
        self.pending = None
        waiter = self._waiter
        if waiter is None:
            self._waiter = _LOST  # nobody waits yet: wait_lost returns at once
        elif waiter is not _LOST and not waiter.done():
            waiter.set_result(None)
        if self.task is not None:
            self.task.add_done_callback(lambda _: self._spawn_cleanup())
        else:
            self._spawn_cleanup()

    async def wait_lost(self) -> None:
        """Return once the socket is gone (after :meth:`lost`).

        A handler that hosts the connection returns only then: its server closes the socket
        when it returns, and a close with unread input would reset what is still queued.
        """
        if self._waiter is _LOST:
            return
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def _spawn_cleanup(self) -> None:
        rest = self._release()
        if rest is not None:
            task = asyncio.get_running_loop().create_task(rest)
            _cleanups.add(task)
            task.add_done_callback(_cleanups.discard)

    async def cleanup(self) -> None:
        """Leave the gateway, the hub and presence. Safe to call more than once."""
        rest = self._release()
        if rest is not None:
            await rest

    def _release(self) -> Coroutine[Any, Any, None] | None:
        """Leave the gateway, the hub, and presence where it is kept in this process; the
        leaves that need I/O (shared presence) are what the returned coroutine does."""
        self.closed = True
        self.held = None
        gateway = self.gateway
        if self in gateway.connections and gateway.debug.watching:
            reason, code = self.ended or ("connection_lost", None)
            self._log(
                "connection.closed",
                reason=reason,
                code=code,
                seconds=round(time.time() - self.created, 3),
                subscriptions=len(self.session.channels),
            )
        gateway.connections.discard(self)
        channels = self.session.release()
        for channel in channels:
            gateway.hub.unsubscribe(self, channel)
        member = self.codec.member(self.session.claims)
        if member is None:
            return None
        waiting = [
            (channel, rules)
            for channel, rules in channels.items()
            if not gateway.leave_now(channel, self.client, member, rules)
        ]
        return self._leave(member, waiting) if waiting else None

    async def _leave(
        self, member: dict[str, Any], channels: list[tuple[str, NamespaceRules]]
    ) -> None:
        for channel, rules in channels:
            await self.gateway.leave(channel, self.client, member, rules)

    # -- time ------------------------------------------------------------------------------

    def tick(self, mono: float, wall: float) -> None:
        """Apply the rules of time: token expiry, idle timeout, heartbeat."""
        if self.closed or self.held is not None:
            return
        claims = self.session.claims
        interval = self.codec.ping_interval
        # Expired as the token check sees it: ``exp`` plus the clock-skew leeway, so that a
        # token accepted within the leeway is not dropped at once, its client reconnecting
        # with it again and again until the leeway is over.
        if claims is not None and claims.exp is not None and claims.exp + LEEWAY <= wall:
            self.disconnect("token_expired", reconnect=True)
        elif self.reads and mono - self.last_seen >= 2 * interval:
            if self.gateway.debug.watching:
                self._log("idle_timeout", silent=round(mono - self.last_seen, 1))
            self.disconnect("idle_timeout", reconnect=True)
        elif mono - self.last_ping >= interval:
            self.last_ping = mono
            transport = self.transport
            if transport is not None and transport.is_closing():
                self.lost()  # closed before anything told us
            else:
                self.send(self.codec.heartbeat())

    def pong(self) -> None:
        """The client answered a protocol ping."""
        if self.codec.quiet_client:
            self.last_seen = time.monotonic()

    # -- the session -----------------------------------------------------------------------

    def open(self, head: bytes = b"") -> None:
        """Greet the client (after ``head``, e.g. the ``101``, in the same write), join the
        gateway's connections, run the codec's opening."""
        gateway = self.gateway
        gateway.connections.add(self)
        gateway.metrics.connections_total += 1
        if gateway.debug.watching:
            self._log("connection.opened", origin=self.origin)
        claims = self.session.claims
        expires_in = None if claims is None or claims.exp is None else int(claims.exp - time.time())
        codec = self.codec
        greeting = codec.encode(Connected(self.client, codec.ping_interval, expires_in))
        if head or greeting:
            self.write(head + greeting)
        opening = codec.opening()
        if opening:
            now = self.last_seen  # the clock when the connection was made, this turn
            session = self.session
            outcomes: list[Outcome] = []
            for command in opening:
                outcomes.extend(session.handle(command, now))
            if outcomes:
                self._run(outcomes)

    def receive(self, raw: bytes | str | None) -> None:
        """Handle one client message (``None``: the client closed), in order.

        Whatever can be done at once is; from the first outcome that awaits, this message's
        remaining outcomes and every later message go through a task that lives only until
        they are handled.
        """
        if self.closed:
            return
        now = time.monotonic()
        inbox = self.inbox
        if inbox is not None:
            if raw is not None:
                self.last_seen = now  # a client waiting on a slow subscribe is not idle
            inbox.append(raw)
            if len(inbox) == _INBOX_PAUSE and self.transport is not None:
                self.transport.pause_reading()
            return
        if raw is None:
            self.close(1000)
            return
        self.last_seen = now
        self._run(self.session.receive(raw, now, self.codec.decode))

    async def run_opening(self) -> None:
        """Wait until what :meth:`open` started is done (an event stream's subscriptions)."""
        while self.task is not None:
            await asyncio.shield(self.task)

    def _run(self, outcomes: list[Outcome]) -> None:
        for i, outcome in enumerate(outcomes):
            if not self._apply_now(outcome):
                self.inbox = deque()
                self.task = asyncio.get_running_loop().create_task(self._drain(outcomes[i:]))
                return

    async def _drain(self, outcomes: list[Outcome]) -> None:
        inbox = self.inbox
        assert inbox is not None
        try:
            for outcome in outcomes:
                await self._apply(outcome)
            while inbox and not self.closed:
                if len(inbox) == _INBOX_PAUSE and self.transport is not None:
                    self.transport.resume_reading()
                raw = inbox.popleft()
                if raw is None:
                    self.close(1000)
                    break
                now = time.monotonic()
                self.last_seen = now
                for outcome in self.session.receive(raw, now, self.codec.decode):
                    await self._apply(outcome)
        except Exception:
            log.exception("connection %s: handling a message failed", self.client)
            self.disconnect("internal_error", reconnect=True)
        finally:
            transport = self.transport
            if len(inbox) >= _INBOX_PAUSE and transport is not None and not transport.is_closing():
                transport.resume_reading()
            self.inbox = None
            self.task = None

    def _log(self, kind: str, **fields: Any) -> None:
        """Record ``kind`` about this connection in the live log (only while watched)."""
        claims = self.session.claims
        self.gateway.debug.emit(
            kind,
            client=self.client,
            player=None if claims is None else claims.sub,
            brand=None if claims is None else claims.brand,
            transport=self.kind,
            protocol=self.codec.name,
            **fields,
        )

    def _source(self) -> str:
        """Who this connection publishes as, for the live log."""
        claims = self.session.claims
        if claims is None:
            return f"client:{self.client}"
        return f"player:{claims.brand}/{claims.sub}" if claims.brand else f"player:{claims.sub}"

    def _refused(self, answer: Refused) -> None:
        if answer.code == "rate_limited":
            self._log("rate_limited", channel=answer.channel, message=answer.message)
        elif answer.channel is not None:
            self._log("subscribe.refused", channel=answer.channel, code=answer.code)

    def info(self) -> dict[str, Any]:
        """This connection as an operator sees it (JSON-ready).

        ``id`` is the client id (random, so unique across nodes); ``created`` and
        ``last_activity`` (the client's last message) are milliseconds since the epoch;
        ``outbox`` is the bytes waiting in the socket's buffer and ``outbox_messages`` the
        writes queued behind them; each subscription's ``position`` is the last stored event
        queued to it (or where it started).
        """
        claims = self.session.claims
        subscriptions = []
        for channel in self.session.channels:
            event = self.seen.get(channel)
            if event is not None:
                position: dict[str, Any] | None = {"offset": event.offset, "epoch": event.epoch}
            else:
                start = self.starts.get(channel)
                position = None if start is None else start.as_dict()
            subscriptions.append({"channel": channel, "position": position})
        transport = self.transport
        buffered = 0
        if transport is not None and not transport.is_closing():
            buffered = transport.get_write_buffer_size()
        now = time.time()
        return {
            "id": self.client,
            "transport": self.kind,
            "protocol": self.codec.name,
            "player": None if claims is None else claims.sub,
            "brand": None if claims is None else claims.brand,
            "name": None if claims is None else claims.name,
            "created": int(self.created * 1000),
            "last_activity": int((now - (time.monotonic() - self.last_seen)) * 1000),
            "subscriptions": subscriptions,
            "outbox": buffered + self.pending_bytes,
            "outbox_messages": self.backlog,
            "outbox_limits": {"bytes": self.max_bytes, "messages": self.max_messages},
            "closed": self.closed,
        }

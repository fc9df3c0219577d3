"""The native WebSocket transport (``GET /ws``): one connection, two ways in.

Most connections arrive on a fresh TCP connection and are upgraded by the lean path in
:mod:`croupier.transports.wsproto`, which parses frames itself and holds no task while the
client is quiet. An upgrade on a kept-alive HTTP connection goes through aiohttp instead
(:func:`websocket_handler`). Both hand complete client messages to the same
:class:`WsConnection`, which runs the :class:`~croupier.core.session.Session` rules.

Fan-out bypasses any per-message writer: the hub hands every subscriber the same pre-built
frame and :meth:`WsConnection.push` writes it straight to the socket's transport. The
transport's write buffer is the connection's outbox; its bound is checked on every push and
a connection over it is cut off as a slow consumer.

Time-based rules (token expiry, idle timeout, protocol pings) are one sweep over every
connection (:func:`sweeper`), not a timer per connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from ..api.toolkit import error_response
from ..appkeys import GATEWAY
from ..config import Limits
from ..core.channels import Claims
from ..core.frames import close_frame
from ..core.session import (
    Action,
    Authenticated,
    Close,
    DoPublish,
    DoSubscribe,
    DoUnsubscribe,
    Reply,
    Session,
    error,
)
from ..core.wire import control, ws_frame
from ..errors import CroupierError
from ..events import Event
from ..gateway import Gateway, PublishRequest
from ..hub import SubscribeResult
from .common import (
    BoundedOutbox,
    RequestHead,
    check_origin,
    new_client_id,
    token_from_request,
)

__all__ = ["WsConnection", "admit", "max_message_bytes", "sweep", "sweeper", "websocket_handler"]

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
_SLOW_CLOSE_GRACE = 1.0
_PING = b"\x89\x00"
# Messages waiting behind one that awaits (a subscribe reading history): past this many the
# socket stops being read until they are handled, so a flood cannot queue without bound.
_INBOX_PAUSE = 64

# Tasks that clean up after closed connections: referenced until they finish.
_cleanups: set[asyncio.Task[None]] = set()


def max_message_bytes(limits: Limits) -> int:
    """The largest message a client may send before the socket is closed with 1009.

    Smaller messages over ``max_frame_bytes`` are answered with a ``too_large`` error.
    """
    return max(limits.max_frame_bytes * 4, 1 << 20)


class WsConnection(BoundedOutbox):
    """One client's WebSocket: a :class:`~croupier.hub.Sink` and the session's executor.

    The transport feeds it complete client messages, through :meth:`receive` (the lean
    path) or :meth:`run` (aiohttp), and reports the end of the socket.
    """

    wire = "ws"
    __slots__ = (
        "client",
        "closed",
        "gateway",
        "inbox",
        "last_ping",
        "last_seen",
        "session",
        "task",
        "transport",
    )

    def __init__(
        self, gateway: Gateway, transport: asyncio.Transport, claims: Claims | None
    ) -> None:
        self.gateway = gateway
        self.transport = transport
        self.client = new_client_id()
        limits = gateway.settings.limits
        now = time.monotonic()
        self.session = Session(gateway.settings, gateway.auth.verify_token, claims, now)
        BoundedOutbox.__init__(self, limits)
        self.closed = False
        self.last_seen = now  # the client's last message (pongs do not count)
        self.last_ping = now
        # Only while a message awaits (subscribe, publish): the ones behind it, and the task.
        self.inbox: deque[bytes | str | None] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def channels(self) -> dict[str, Any]:
        return self.session.channels

    # -- the hot path ----------------------------------------------------------------------

    def push(self, frame: bytes, event: Event | None = None) -> None:
        if not self.closed:
            self.write_bounded(self.transport, frame)

    def send(self, payload: bytes) -> None:
        self.push(ws_frame(payload))

    def _slow_consumer(self) -> None:
        self.gateway.metrics.slow_consumers += 1
        self.disconnect("slow_consumer", reconnect=True, code=CLOSE_TRY_AGAIN)

    def disconnect(self, reason: str, *, reconnect: bool, code: int = CLOSE_GOING_AWAY) -> None:
        """Tell the client why, close the socket, and stop pushing to it."""
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(
            ws_frame(control("disconnect", code=reason, reconnect=reconnect))
            + close_frame(code, reason)
        )
        transport.close()
        asyncio.get_running_loop().call_later(_SLOW_CLOSE_GRACE, transport.abort)

    def close(self, code: int, reason: str = "", *, linger: bool = False) -> None:
        """Close the socket with a bare close frame (the client closed, or broke the framing).

        With ``linger`` the socket stays open for a grace period first, while the transport
        reads and drops what still arrives: closing with unread input resets the connection,
        and a client still sending a message over the limit would never read why.
        """
        self.closed = True
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(close_frame(code, reason))
        if linger:
            asyncio.get_running_loop().call_later(_SLOW_CLOSE_GRACE, transport.close)
        else:
            transport.close()

    # -- time ------------------------------------------------------------------------------

    def tick(self, mono: float, wall: float, ping_interval: float) -> None:
        """Apply the rules of time: token expiry, idle timeout, protocol pings."""
        if self.closed:
            return
        claims = self.session.claims
        if claims is not None and claims.exp is not None and claims.exp <= wall:
            self.disconnect("token_expired", reconnect=True, code=CLOSE_POLICY)
        elif mono - self.last_seen >= 2 * ping_interval:
            self.disconnect("idle_timeout", reconnect=True)
        elif mono - self.last_ping >= ping_interval:
            self.last_ping = mono
            if not self.transport.is_closing():
                self.transport.write(_PING)

    # -- the session -----------------------------------------------------------------------

    def _member(self) -> dict[str, Any]:
        claims = self.session.claims
        if claims is None:
            return {"id": None}
        info: dict[str, Any] = {"id": claims.sub}
        if claims.name:
            info["name"] = claims.name
        return info

    def open(self) -> None:
        """Greet the client and join the gateway's connections."""
        gateway = self.gateway
        gateway.connections.add(self)
        gateway.metrics.connections_total += 1
        claims = self.session.claims
        ping = gateway.settings.limits.ping_interval
        expires_in = None if claims is None or claims.exp is None else int(claims.exp - time.time())
        self.send(
            control(
                "connected",
                client=self.client,
                ping_interval=int(ping) if ping == int(ping) else ping,
                expires_in=expires_in,
            )
        )

    def receive(self, raw: bytes | str | None) -> None:
        """Handle one client message (``None``: the client closed), in order.

        Whatever can be done at once is; from the first action that awaits, this message's
        remaining actions and every later message go through a task that lives only until
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
            if len(inbox) == _INBOX_PAUSE:
                self.transport.pause_reading()
            return
        if raw is None:
            self.close(1000)
            return
        self.last_seen = now
        actions = self.session.receive(raw, now)
        for i, action in enumerate(actions):
            if not self._apply_now(action):
                self.inbox = deque()
                self.task = asyncio.get_running_loop().create_task(self._drain(actions[i:]))
                return

    async def _drain(self, actions: list[Action]) -> None:
        inbox = self.inbox
        assert inbox is not None
        try:
            for action in actions:
                await self._apply(action)
            while inbox and not self.closed:
                if len(inbox) == _INBOX_PAUSE:
                    self.transport.resume_reading()
                raw = inbox.popleft()
                if raw is None:
                    self.close(1000)
                    break
                now = time.monotonic()
                self.last_seen = now
                for action in self.session.receive(raw, now):
                    await self._apply(action)
        except Exception:
            log.exception("websocket %s: handling a message failed", self.client)
            self.disconnect("internal_error", reconnect=True, code=1011)
        finally:
            if len(inbox) >= _INBOX_PAUSE and not self.transport.is_closing():
                self.transport.resume_reading()
            self.inbox = None
            self.task = None

    def _apply_now(self, action: Action) -> bool:
        """Carry out an action that needs no await; return False for one that does."""
        if isinstance(action, Reply):
            self.send(action.payload)
        elif isinstance(action, Authenticated):
            pass  # the sweep reads the session's claims: a refreshed expiry just applies
        elif isinstance(action, Close):
            self.send(control("error", code=action.code, message=action.message))
            self.disconnect(action.code, reconnect=False, code=CLOSE_POLICY)
        elif isinstance(action, DoPublish) and (
            handler := self.gateway.client_handler(action.channel, action.type)
        ):
            # A service summarises these (reactions): they never reach the hub one by one.
            try:
                handler(action.channel, action.payload)
            except CroupierError as exc:
                self.send(error(exc, action.id).payload)
            else:
                if action.id is not None:
                    self.send(control("published", id=action.id, channel=action.channel))
        else:
            return False
        return True

    async def _apply(self, action: Action) -> None:
        if self._apply_now(action):
            return
        if isinstance(action, DoSubscribe):
            await self._subscribe(action)
        elif isinstance(action, DoUnsubscribe):
            self.gateway.hub.unsubscribe(self, action.channel)
            rules = self.gateway.settings.rules_for(action.channel.split(":", 1)[0])
            if rules is not None:
                await self.gateway.leave(action.channel, self.client, self._member(), rules)
            self.send(control("unsubscribed", channel=action.channel, id=action.id))
        elif isinstance(action, DoPublish):
            try:
                await self.gateway.publish(
                    PublishRequest(action.channel, action.type, action.payload, ephemeral=True)
                )
            except CroupierError as exc:
                self.send(error(exc, action.id).payload)
            else:
                if action.id is not None:
                    self.send(control("published", id=action.id, channel=action.channel))

    async def _subscribe(self, action: DoSubscribe) -> None:
        gateway = self.gateway
        channel = action.channel
        try:
            count = await gateway.join(channel, self.client, self._member(), action.rules)
        except Exception:
            log.exception("presence join failed for %s", channel)
            count = 0
        presence = {"count": count} if action.rules.presence else None
        since, greeting = action.since, None
        if since is None and (start := gateway.starting_point(channel)) is not None:
            try:
                since, greeting = await start(channel)
            except Exception:
                log.exception("the starting point of %s failed", channel)

        def announce(result: SubscribeResult) -> None:
            position = result.position
            if greeting is not None and result.recovered:
                position = since  # the events that follow continue the greeting from there
            self.send(
                control(
                    "subscribed",
                    channel=channel,
                    id=action.id,
                    recovered=result.recovered,
                    position=None if position is None else position.as_dict(),
                    presence=presence,
                )
            )
            if greeting is not None:
                self.send(greeting)

        try:
            await gateway.hub.subscribe(
                self, channel, since=since, stored=action.rules.stored, announce=announce
            )
        except CroupierError as exc:
            self.session.channels.pop(channel, None)
            await gateway.leave(channel, self.client, self._member(), action.rules)
            self.send(error(exc, action.id).payload)

    def lost(self) -> None:
        """The socket is gone: leave the hub and presence once any message in hand is done."""
        self.closed = True
        if self.task is not None:
            self.task.add_done_callback(lambda _: self._spawn_cleanup())
        else:
            self._spawn_cleanup()

    def _spawn_cleanup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._cleanup())
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)

    async def _cleanup(self) -> None:
        self.closed = True
        gateway = self.gateway
        gateway.connections.discard(self)
        member = self._member()
        for channel, rules in list(self.session.channels.items()):
            gateway.hub.unsubscribe(self, channel)
            await gateway.leave(channel, self.client, member, rules)
        self.session.channels.clear()

    # -- the aiohttp path ------------------------------------------------------------------

    async def run(self, ws: web.WebSocketResponse, initial: Sequence[bytes] = ()) -> None:
        """Serve the connection through aiohttp's reader until it closes.

        ``initial`` are messages handled as if the client had sent them first (an endpoint
        that subscribes its clients to a channel of the URL's choosing).
        """
        self.open()
        try:
            now = time.monotonic()
            for raw in initial:
                for action in self.session.receive(raw, now):
                    await self._apply(action)
            while not self.closed:
                message = await ws.receive()
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    now = time.monotonic()
                    self.last_seen = now
                    for action in self.session.receive(message.data, now):
                        await self._apply(action)
                elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                elif message.type is WSMsgType.ERROR:
                    log.debug("websocket %s error: %s", self.client, ws.exception())
                    break
        finally:
            await self._cleanup()


def sweep(gateway: Gateway) -> None:
    """One pass of the time rules over every WebSocket connection of ``gateway``."""
    mono = time.monotonic()
    wall = time.time()
    ping = gateway.settings.limits.ping_interval
    for conn in list(gateway.connections):
        if isinstance(conn, WsConnection):
            conn.tick(mono, wall, ping)


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context running :func:`sweep` while the application runs."""
    gateway: Gateway = app[GATEWAY]
    # Often enough that a deadline is met within a quarter ping interval (at most a second).
    period = min(1.0, gateway.settings.limits.ping_interval / 4)

    async def forever() -> None:
        while True:
            await asyncio.sleep(period)
            try:
                sweep(gateway)
            except Exception:  # pragma: no cover - a bug here must not stop the sweeps
                log.exception("websocket sweep failed")

    task = asyncio.get_running_loop().create_task(forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def admit(gateway: Gateway, request: RequestHead) -> Claims | None:
    """The claims of an upgrade's token (None: anonymous), the checks both paths make.

    Raises:
        CroupierError: the origin is not allowed or the token is not valid.
    """
    check_origin(gateway.settings, request)
    token = token_from_request(request)
    return gateway.auth.verify_token(token) if token else None


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    gateway: Gateway = request.app[GATEWAY]
    settings = gateway.settings
    try:
        claims = admit(gateway, request)
    except CroupierError as exc:
        return error_response(exc)
    if not gateway.ready:
        return web.json_response(
            {"error": {"code": "shutting_down", "message": "the server is shutting down"}},
            status=503,
        )
    ws = web.WebSocketResponse(
        heartbeat=None,  # the sweep pings every connection
        max_msg_size=max_message_bytes(settings.limits),
        compress=False,
        autoping=True,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    conn = WsConnection(gateway, transport, claims)
    await conn.run(ws)
    if not ws.closed:
        await ws.close()
    return ws

"""The native WebSocket transport (``GET /ws``).

Fan-out bypasses aiohttp's per-message writer: the hub hands every subscriber the same
pre-built frame and :meth:`WsConnection.push` writes it straight to the socket's transport.
The transport's write buffer is the connection's outbox; its bound is checked on every push
and a connection over it is cut off as a slow consumer.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

from aiohttp import WSMsgType, web

from ..core.channels import Claims
from ..core.session import (
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
from .common import check_origin, new_client_id, token_from_request

__all__ = ["WsConnection", "websocket_handler"]

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
_SLOW_CLOSE_GRACE = 1.0


def close_frame(code: int, reason: str = "") -> bytes:
    body = struct.pack("!H", code) + reason.encode()[:120]
    return bytes((0x88, len(body))) + body


class WsConnection:
    """One client's WebSocket: a :class:`~croupier.hub.Sink` and the session's executor."""

    wire = "ws"
    __slots__ = (
        "_expiry",
        "backlog",
        "channels_info",
        "client",
        "closed",
        "gateway",
        "max_bytes",
        "max_messages",
        "session",
        "transport",
        "ws",
    )

    def __init__(
        self,
        gateway: Gateway,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        claims: Claims | None,
    ) -> None:
        self.gateway = gateway
        self.ws = ws
        self.transport = transport
        self.client = new_client_id()
        limits = gateway.settings.limits
        self.session = Session(
            gateway.settings, gateway.auth.verify_token, claims, time.monotonic()
        )
        self.max_messages = limits.outbox_messages
        self.max_bytes = limits.outbox_bytes
        self.backlog = 0
        self.closed = False
        self._expiry: asyncio.TimerHandle | None = None
        self.channels_info: dict[str, Any] = {}

    @property
    def channels(self) -> dict[str, Any]:
        return self.session.channels

    # -- the hot path ----------------------------------------------------------------------

    def push(self, frame: bytes, event: Event | None = None) -> None:
        if self.closed:
            return
        transport = self.transport
        size = transport.get_write_buffer_size()
        if size:
            self.backlog += 1
            if self.backlog > self.max_messages or size > self.max_bytes:
                self._slow_consumer()
                return
        else:
            self.backlog = 0
        transport.write(frame)

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

    # -- the session -----------------------------------------------------------------------

    def _arm_expiry(self, claims: Claims | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if claims is not None and claims.exp is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, claims.exp - time.time())
            self._expiry = loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        self.disconnect("token_expired", reconnect=True, code=CLOSE_POLICY)

    def _member(self) -> dict[str, Any]:
        claims = self.session.claims
        if claims is None:
            return {"id": None}
        info: dict[str, Any] = {"id": claims.sub}
        if claims.name:
            info["name"] = claims.name
        return info

    async def run(self) -> None:
        gateway = self.gateway
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
        self._arm_expiry(claims)
        try:
            while not self.closed:
                # The idle deadline counts the client's own messages only: aiohttp answers
                # protocol pongs inside receive() and restarts its per-read timeout on each,
                # so ``receive(timeout=…)`` would never fire for a client that auto-pongs.
                try:
                    async with asyncio.timeout(2 * ping):
                        message = await self.ws.receive()
                except TimeoutError:
                    self.disconnect("idle_timeout", reconnect=True)
                    break
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    actions = self.session.receive(message.data, time.monotonic())
                    for action in actions:
                        await self._apply(action)
                elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                elif message.type is WSMsgType.ERROR:
                    log.debug("websocket %s error: %s", self.client, self.ws.exception())
                    break
        finally:
            await self._cleanup()

    async def _apply(self, action: Any) -> None:
        if isinstance(action, Reply):
            self.send(action.payload)
        elif isinstance(action, DoSubscribe):
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
        elif isinstance(action, Authenticated):
            self._arm_expiry(action.claims)
        elif isinstance(action, Close):
            self.send(control("error", code=action.code, message=action.message))
            self.disconnect(action.code, reconnect=False, code=CLOSE_POLICY)

    async def _subscribe(self, action: DoSubscribe) -> None:
        gateway = self.gateway
        channel = action.channel
        try:
            count = await gateway.join(channel, self.client, self._member(), action.rules)
        except Exception:
            log.exception("presence join failed for %s", channel)
            count = 0
        presence = {"count": count} if action.rules.presence else None

        def announce(result: SubscribeResult) -> None:
            self.send(
                control(
                    "subscribed",
                    channel=channel,
                    id=action.id,
                    recovered=result.recovered,
                    position=None if result.position is None else result.position.as_dict(),
                    presence=presence,
                )
            )

        try:
            await gateway.hub.subscribe(
                self, channel, since=action.since, stored=action.rules.stored, announce=announce
            )
        except CroupierError as exc:
            self.session.channels.pop(channel, None)
            await gateway.leave(channel, self.client, self._member(), action.rules)
            self.send(error(exc, action.id).payload)

    async def _cleanup(self) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        gateway = self.gateway
        gateway.connections.discard(self)
        member = self._member()
        for channel, rules in list(self.session.channels.items()):
            gateway.hub.unsubscribe(self, channel)
            await gateway.leave(channel, self.client, member, rules)
        self.session.channels.clear()


def _json_error(exc: CroupierError) -> web.Response:
    return web.json_response({"error": exc.as_dict()}, status=exc.status)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    gateway: Gateway = request.app["gateway"]
    settings = gateway.settings
    try:
        check_origin(settings, request)
        token = token_from_request(request)
        claims = gateway.auth.verify_token(token) if token else None
    except CroupierError as exc:
        return _json_error(exc)
    if not gateway.ready:
        return web.json_response(
            {"error": {"code": "shutting_down", "message": "the server is shutting down"}},
            status=503,
        )
    limits = settings.limits
    ws = web.WebSocketResponse(
        heartbeat=limits.ping_interval,
        max_msg_size=max(limits.max_frame_bytes * 4, 1 << 20),
        compress=False,
        autoping=True,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    conn = WsConnection(gateway, ws, transport, claims)
    gateway.connections.add(conn)
    gateway.metrics.connections_total += 1
    await conn.run()
    if not ws.closed:
        await ws.close()
    return ws

"""The composition root: the application, its parts, and the server's lifecycle.

:func:`serve` builds the gateway from the settings (the command line only reads them) and
:func:`build_app` wires the rest in one place: it builds the services' database and every
service (:func:`build_services`), handing each the gateway and the others it uses, mounts
the API, the transports and the services' routes, and orders their starts and stops.
Reading the two tells what depends on what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields

from aiohttp import web

from .api import centrifugo as centrifugo_api
from .api.admin import AdminApi
from .api.http import SERVICE_OPERATIONS, routes
from .api.pusher import pusher_routes
from .api.toolkit import MAX_BODY, error_middleware
from .appkeys import GATEWAY
from .config import Settings
from .gateway import Gateway
from .gcpolicy import GcPolicy
from .services import Service
from .services.balances import BalancesService
from .services.bridges import Bridges
from .services.leaderboards import Leaderboards
from .services.matchmaking import Matchmaking
from .services.notifications import NotificationsService
from .services.rooms import Rooms
from .services.sports import Sports
from .services.stats import NodeStats
from .services.tournaments import Tournaments
from .services.webhooks import WebhookService
from .services.webhooks.pusher import PusherWebhooks
from .storage import Database, database_from_url
from .transports import centrifugo, compat, native, sse
from .transports.pusher import pusher_endpoint
from .transports.sse import EVENT_STREAMS, add_stream_routes
from .transports.sweeper import sweeper
from .transports.websocket import WEBSOCKETS, add_websocket_routes
from .transports.wsproto import Sniffer
from .web import WebAssets

__all__ = ["SERVICES", "Services", "build_app", "build_services", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Drain:
    """Requests being handled, and whether the server is stopping (see :func:`serve`)."""

    __slots__ = ("in_flight", "stopping")

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = False


_DRAIN = web.AppKey("drain", _Drain)


@web.middleware
async def _drain_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    drain = request.app[_DRAIN]
    drain.in_flight += 1
    try:
        response = await handler(request)
    finally:
        drain.in_flight -= 1
    if drain.stopping:
        response.force_close()  # no next request on this connection: it ends with this one
    return response


@dataclass(frozen=True, slots=True)
class Services:
    """Every game service of a node, in the order they start (and stop in reverse)."""

    leaderboards: Leaderboards
    webhooks: WebhookService
    pusher_webhooks: PusherWebhooks  # Pusher-format webhooks of the Pusher apps, if any
    notifications: NotificationsService
    balances: BalancesService
    tournaments: Tournaments
    rooms: Rooms
    matchmaking: Matchmaking
    sports: Sports
    stats: NodeStats
    admin: AdminApi  # the routes the console stands on; answers the other nodes' questions
    web: WebAssets

    def in_order(self) -> list[Service]:
        return [getattr(self, field.name) for field in fields(self)]


SERVICES = web.AppKey("services", Services)
"""The services of an application :func:`build_app` made."""


def build_services(gateway: Gateway, database: Database) -> Services:
    """Every service, each given what it uses; those used by others start first."""
    leaderboards = Leaderboards(gateway, database)
    rooms = Rooms(gateway, database, leaderboards=leaderboards)
    return Services(
        leaderboards=leaderboards,
        webhooks=WebhookService(gateway, database),
        pusher_webhooks=PusherWebhooks(gateway, database),
        notifications=NotificationsService(gateway, database),
        balances=BalancesService(gateway, database),
        tournaments=Tournaments(gateway, database, leaderboards=leaderboards),
        rooms=rooms,
        matchmaking=Matchmaking(gateway, database, rooms=rooms),
        sports=Sports(gateway, database),
        stats=NodeStats(gateway, database),
        admin=AdminApi(gateway),
        web=WebAssets(gateway, database),
    )


def build_app(gateway: Gateway) -> web.Application:
    """An application serving ``gateway``.

    The app starts, in order, the gateway, the services' database and the services, the
    bridges and the connection sweeper, and stops them in reverse.
    """
    # The services keep their state beside the log: a SQLite file next to the log's, or the
    # same PostgreSQL database, in tables of their own.
    database = database_from_url(gateway.settings.database_url)
    services = build_services(gateway, database)
    started = services.in_order()

    app = web.Application(
        middlewares=[_drain_middleware, error_middleware], client_max_size=MAX_BODY
    )
    app[GATEWAY] = gateway
    app[SERVICES] = services
    app[_DRAIN] = _Drain()
    # The WebSocket protocols: one codec module and one line each (path -> codec factory).
    add_websocket_routes(app, [native.ENDPOINT, centrifugo.ENDPOINT])
    if gateway.settings.pusher_apps:
        add_websocket_routes(app, [pusher_endpoint(gateway.settings)])
    # The event streams: the native one and the compatibility ones (path -> planner).
    add_stream_routes(app, [sse.ENDPOINT, compat.TABLE_EVENTS, compat.PLAYER_STREAM])
    app.add_routes(routes())
    if gateway.settings.pusher_apps:
        app.add_routes(pusher_routes())
    app.add_routes(centrifugo_api.centrifugo_api_routes())
    for service in started:
        app.add_routes(service.routes())
    app[SERVICE_OPERATIONS] = [
        *centrifugo_api.OPERATIONS,
        *(op for service in started for op in service.operations),
    ]

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with gateway:
            yield

    async def run_services(app: web.Application) -> AsyncIterator[None]:
        async with database, contextlib.AsyncExitStack() as stack:
            for service in started:
                await stack.enter_async_context(service)
            yield

    async def bridges(app: web.Application) -> AsyncIterator[None]:
        # After the gateway and the services are up, and before they stop: a bridge
        # publishes through the gateway and hands notifications to the centre.
        async with Bridges(gateway, services.notifications):
            yield

    async def on_shutdown(app: web.Application) -> None:
        await shutdown_clients(gateway)

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(run_services)
    app.cleanup_ctx.append(bridges)
    app.cleanup_ctx.append(sweeper)
    app.on_shutdown.append(on_shutdown)
    return app


async def shutdown_clients(gateway: Gateway) -> None:
    """Tell every client to reconnect elsewhere, then wait (bounded) for them to go."""
    gateway.ready = False
    for conn in list(gateway.connections):
        conn.disconnect("shutdown", reconnect=True)
    deadline = asyncio.get_running_loop().time() + gateway.settings.limits.shutdown_grace
    # Connections remove themselves as their handlers finish; poll rather than wire an
    # event through every transport.
    while gateway.connections and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def serve(
    settings: Settings,
    *,
    on_started: Callable[[Gateway], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    """Build the gateway and the application for ``settings`` and serve them on
    ``settings.host:settings.port`` until SIGTERM or SIGINT; then stop accepting, disconnect
    clients, and exit.

    ``on_started`` is called with the gateway once the port listens, ``on_stopping`` as the
    shutdown begins.
    """
    gateway = Gateway(settings)
    host, port = settings.host, settings.port
    app = build_app(gateway)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=gateway.settings.limits.shutdown_grace,
    )
    await runner.setup()
    http = runner.server
    assert http is not None
    loop = asyncio.get_running_loop()
    # A WebSocket upgrade or an event stream on a fresh connection takes the lean path;
    # aiohttp gets the rest.
    websockets, streams = app[WEBSOCKETS], app[EVENT_STREAMS]
    server = await loop.create_server(
        lambda: Sniffer(http, gateway, websockets, streams, loop),
        host,
        port,
        backlog=4096,
        reuse_address=True,
    )
    if on_started is not None:
        on_started(gateway)
    policy = GcPolicy().__enter__()  # see gcpolicy: no long full collections under load
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if on_stopping is not None:
            on_stopping()
        # Stop accepting, tell the clients, and let the requests in flight finish before
        # aiohttp's own shutdown: from then on it ignores what arrives on a connection, so a
        # request whose body is still on the way would hang until the grace ran out.
        server.close()
        drain = app[_DRAIN]
        drain.stopping = True
        deadline = loop.time() + gateway.settings.limits.shutdown_grace
        await shutdown_clients(gateway)
        while drain.in_flight and loop.time() < deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.01)
        await runner.cleanup()
        policy.__exit__()

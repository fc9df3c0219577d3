"""Game services: game rules as plain code, publishing through the gateway.

A service is mounted on the application by :func:`service_factories`: it contributes HTTP
routes, their OpenAPI operations, and a lifecycle (``async with``) run after the gateway and
the services' database are up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from aiohttp import web

from . import leaderboards

if TYPE_CHECKING:
    from ..api.openapi import Operation
    from ..gateway import Gateway
    from ..storage import Database

__all__ = ["Service", "ServiceFactory", "service_factories"]


class Service(Protocol):
    """One service as the application sees it."""

    @property
    def operations(self) -> Sequence[Operation]:
        """The OpenAPI operations of :meth:`routes`, one per route."""
        ...

    def routes(self) -> list[web.RouteDef]: ...

    async def __aenter__(self) -> Self:
        """Start: migrate its tables, load state, start background tasks."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


ServiceFactory = Callable[["Gateway", "Database"], Service]


def service_factories() -> list[ServiceFactory]:
    """Every service the server runs, in start order."""
    from ..api.admin import AdminApi
    from ..web import WebAssets
    from .balances import BalancesService
    from .matchmaking import Matchmaking
    from .notifications import NotificationsService
    from .rooms import Rooms
    from .sports import Sports
    from .stats import NodeStats
    from .tournaments import Tournaments
    from .webhooks import WebhookService  # here, not on top: webhooks import the HTTP API
    from .webhooks.pusher import PusherWebhooks

    return [
        leaderboards.Leaderboards.shared,
        WebhookService,
        PusherWebhooks,
        NotificationsService,
        BalancesService,
        Tournaments.mounted,
        Rooms.shared,
        Matchmaking.mounted,
        Sports,
        NodeStats,
        AdminApi,
        WebAssets,
    ]

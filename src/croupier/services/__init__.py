"""Game services: game rules as plain code, publishing through the gateway.

Each service is built by the application factory (:func:`croupier.app.build_services`),
which hands it the gateway, the services' database and the other services it uses. It
contributes HTTP routes, their OpenAPI operations, and a lifecycle (``async with``) run after
the gateway and the database are up.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from aiohttp import web

if TYPE_CHECKING:
    from ..api.openapi import Operation

__all__ = ["Service"]


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

"""Where the application keeps what its handlers need: one typed key per shared object.

The application factory (:mod:`croupier.app`) sets them; handlers of the API, the transports
and the services read them. This module sits below all three, so none of them has to import
another to find the gateway.
"""

from __future__ import annotations

from aiohttp import web

from .api.openapi import Operation
from .gateway import Gateway

__all__ = ["GATEWAY", "SERVICE_OPERATIONS"]

GATEWAY = web.AppKey("gateway", Gateway)
"""The node's gateway: publish, history, presence, the hub, settings and auth."""

SERVICE_OPERATIONS = web.AppKey("operations", list[Operation])
"""The services' OpenAPI operations, added to the core API's in ``/api/v1/openapi.json``."""

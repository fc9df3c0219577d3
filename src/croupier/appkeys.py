"""Where the application keeps what its handlers need: one typed key per shared object.

The application factory (:mod:`croupier.app`) sets them; handlers of the API, the transports
and the services read them. This module sits below all three, so none of them has to import
another to find the gateway.
"""

from __future__ import annotations

from aiohttp import web

from .gateway import Gateway

__all__ = ["GATEWAY"]

GATEWAY = web.AppKey("gateway", Gateway)
"""The node's gateway: publish, history, presence, the hub, settings and auth."""

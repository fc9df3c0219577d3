"""What every client transport needs: finding the token, checking the origin, ids."""

from __future__ import annotations

import secrets

from aiohttp import web

from ..config import Settings
from ..errors import Forbidden

__all__ = ["check_origin", "new_client_id", "token_from_request"]


def token_from_request(request: web.Request) -> str | None:
    """The player token from ``?token=``, ``Authorization: Bearer`` or ``x-auth-token``."""
    token = request.query.get("token")
    if token:
        return token
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-auth-token") or None


def check_origin(settings: Settings, request: web.Request) -> None:
    """Refuse a browser whose ``Origin`` is not on the allowlist (when one is configured).

    Raises:
        Forbidden: the origin is not allowed.
    """
    origin = request.headers.get("Origin")
    if origin is None or not settings.origins:
        return
    if origin in settings.origins or "*" in settings.origins:
        return
    raise Forbidden(f"origin {origin[:200]!r} is not allowed", code="origin_not_allowed")


def new_client_id() -> str:
    return "c-" + secrets.token_hex(6)

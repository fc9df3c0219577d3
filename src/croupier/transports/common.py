"""What every client transport needs: finding the token, checking the origin, ids."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Protocol

from ..config import Limits, Settings
from ..errors import Forbidden

__all__ = [
    "BoundedOutbox",
    "RequestHead",
    "check_origin",
    "new_client_id",
    "token_from_request",
]


class RequestHead(Protocol):
    """What these checks read of a request: an aiohttp ``Request``, or a parsed head."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def query(self) -> Mapping[str, str]: ...


def token_from_request(request: RequestHead) -> str | None:
    """The player token from ``?token=``, ``Authorization: Bearer`` or ``x-auth-token``."""
    token = request.query.get("token")
    if token:
        return token
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-auth-token") or None


def check_origin(settings: Settings, request: RequestHead) -> None:
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


class BoundedOutbox:
    """The outbox every client connection has: the socket's own write buffer, bounded.

    A push writes straight to the transport (never awaiting the client). While the buffer
    holds unsent data, each push counts against ``outbox_messages``; past that, or past
    ``outbox_bytes`` buffered, the connection is cut off as a slow consumer (it reconnects
    and resumes from its last offset). Subclasses provide :meth:`_slow_consumer`.
    """

    __slots__ = ("backlog", "max_bytes", "max_messages")

    def __init__(self, limits: Limits) -> None:
        self.max_messages = limits.outbox_messages
        self.max_bytes = limits.outbox_bytes
        self.backlog = 0

    def _slow_consumer(self) -> None:
        raise TypeError(f"{type(self).__name__} must say how it drops a slow consumer")

    def write_bounded(self, transport: asyncio.Transport, frame: bytes) -> None:
        size = transport.get_write_buffer_size()
        if size:
            self.backlog += 1
            if self.backlog > self.max_messages or size > self.max_bytes:
                self._slow_consumer()
                return
        else:
            self.backlog = 0
        transport.write(frame)

"""What every client transport needs: finding the token, checking the origin, ids,
matching a path against an endpoint's pattern, and serving a list of endpoints."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from ..appkeys import GATEWAY
from ..config import Settings
from ..errors import Forbidden, shown
from ..hub import Encoder

__all__ = [
    "LeanTable",
    "RequestHead",
    "Routed",
    "add_lean_routes",
    "check_origin",
    "match_path",
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
    raise Forbidden(f"origin {shown(origin, 200)} is not allowed", code="origin_not_allowed")


# Connection ids: 48 bits from the OS's random source each, read for 256 ids at a time (one
# system call per 256 connections instead of one each).
_ID_HEX = 12
_spare_ids: list[str] = []


def new_client_id() -> str:
    if not _spare_ids:
        raw = os.urandom(_ID_HEX // 2 * 256).hex()
        _spare_ids.extend("c-" + raw[i : i + _ID_HEX] for i in range(0, len(raw), _ID_HEX))
    return _spare_ids.pop()


@lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern[str]:
    out = ""
    for literal, name in re.findall(r"([^{]*)(?:\{(\w+)\})?", pattern):
        out += re.escape(literal)
        if name:
            out += f"(?P<{name}>[^/]+)"
    return re.compile(out)


def match_path(pattern: str, path: str) -> dict[str, str] | None:
    """The parameters of ``path`` (decoded) under an aiohttp-style ``pattern``
    (``/ws/room/{roomId}``), or ``None`` if it does not match."""
    found = _compile(pattern).fullmatch(path)
    return None if found is None else found.groupdict()


class Routed(Protocol):
    """An endpoint a :class:`LeanTable` finds: its path pattern, whether the front door may
    serve it, and the hub wires (with their event encoders) its connections use."""

    @property
    def pattern(self) -> str: ...

    @property
    def lean(self) -> bool: ...

    @property
    def wires(self) -> Mapping[str, Encoder]: ...


E = TypeVar("E", bound=Routed)


class LeanTable(Generic[E]):
    """The endpoints of one kind an application serves, found by path."""

    def __init__(self, endpoints: Sequence[E] = ()) -> None:
        self.endpoints: list[E] = []
        # Lean endpoints whose pattern is a plain path (``/ws``), found in one look-up: those
        # that no lean pattern with parameters comes before (the scan would find it first).
        self._exact: dict[str, E] = {}
        self._patterned = False
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: E) -> None:
        """Serve ``endpoint`` too (after the ones before it)."""
        self.endpoints.append(endpoint)
        if not endpoint.lean:
            return
        if "{" in endpoint.pattern:
            self._patterned = True
        elif not self._patterned:
            self._exact.setdefault(endpoint.pattern, endpoint)

    def lean(self, path: str) -> tuple[E, dict[str, str]] | None:
        """The lean endpoint serving ``path`` and its path parameters, if any."""
        exact = self._exact.get(path)
        if exact is not None:
            return exact, {}
        for endpoint in self.endpoints:
            if endpoint.lean:
                params = match_path(endpoint.pattern, path)
                if params is not None:
                    return endpoint, params
        return None


T = TypeVar("T", bound=LeanTable[Any])


def add_lean_routes(
    app: web.Application,
    key: web.AppKey[T],
    make: Callable[[], T],
    endpoints: Sequence[E],
    handler: Callable[[E], Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> None:
    """Serve ``endpoints``: the front door finds the lean ones in ``app[key]`` (a table
    ``make`` makes the first time), aiohttp routes a ``GET`` of each pattern to
    ``handler(endpoint)``, and the hub learns their wires."""
    gateway = app[GATEWAY]
    table = app.get(key)
    if table is None:
        table = app[key] = make()
    for endpoint in endpoints:
        for wire, encoder in endpoint.wires.items():
            gateway.hub.add_wire(wire, encoder)
        table.add(endpoint)
        app.router.add_get(endpoint.pattern, handler(endpoint), allow_head=False)

"""The browser side as the server serves it: the SDK and the operator console.

The files live beside this module and ship in the wheel. Each is read once, at start, and
served with a strong ``ETag`` and ``Cache-Control: no-cache``: browsers keep a copy and ask
again with ``If-None-Match``, so an upgraded server is picked up at once while an unchanged
file costs a ``304``.

``/sdk/croupier.classic.js`` is made here from the ES module: the ``export`` keywords go and
the code is wrapped in a function that sets ``globalThis.Croupier``, so a page without
modules can use ``<script src=…>``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import msgspec
from aiohttp import web

from ..api.openapi import Operation

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ..storage import Database

__all__ = ["Asset", "ConsoleConfig", "WebAssets", "classic_script"]

_EXPORT = re.compile(r"^export (?=(?:async )?(?:function|class|const|let) )", re.MULTILINE)
_EXPORT_LIST = re.compile(r"^export \{([^}]*)\};?\s*$", re.MULTILINE)
_NAME = re.compile(r"^(?:async )?(?:function|class|const|let) ([A-Za-z_$][\w$]*)")


def classic_script(module: str) -> str:
    """The ES module ``module`` as a classic script that defines ``globalThis.Croupier``."""
    names = [_NAME.match(m.string[m.end() :]) for m in _EXPORT.finditer(module)]
    exported = [n.group(1) for n in names if n is not None]
    for listed in _EXPORT_LIST.findall(module):
        exported += [part.strip() for part in listed.split(",") if part.strip()]
    body = _EXPORT_LIST.sub("", _EXPORT.sub("", module))
    members = ", ".join(sorted(set(exported)))
    return (
        "// Croupier browser SDK as a classic script: defines window.Croupier.\n"
        '(function () {\n"use strict";\n'
        f"{body}\nglobalThis.Croupier = Object.freeze({{ {members} }});\n}})();\n"
    )


class Asset(msgspec.Struct, frozen=True):
    """One file as served: its bytes, media type and entity tag."""

    body: bytes
    media: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media: str) -> Asset:
        return cls(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: web.Request) -> web.Response:
        headers = {
            "ETag": self.etag,
            "Cache-Control": "no-cache",
            # The SDK is loaded by casino and game pages on other origins.
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        }
        match = request.headers.get("If-None-Match", "")
        if self.etag in {tag.strip() for tag in match.split(",")}:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = self.media + "; charset=utf-8"
        return web.Response(body=self.body, headers=headers)


class ConsoleConfig(msgspec.Struct, frozen=True):
    """What the console needs to know before the operator signs in."""

    demo: bool
    apiKey: str | None = None


_JS = "text/javascript"
_FILES: Sequence[tuple[str, str, str, str]] = (
    # (route, file, media type, summary)
    ("/", "index.html", "text/html", "The operator console"),
    ("/console/console.js", "console.js", _JS, "The operator console's script"),
    ("/console/inspect.js", "inspect.js", _JS, "The console's log, inspectors and webhooks"),
    ("/console/console.css", "console.css", "text/css", "The console's styles"),
    ("/sdk/croupier.js", "croupier.js", _JS, "The browser SDK (an ES module)"),
    ("/sdk/croupier.d.ts", "croupier.d.ts", "application/typescript", "The SDK's TypeScript types"),
)
_CLASSIC = "/sdk/croupier.classic.js"


def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


class WebAssets:
    """The SDK and console routes, mounted like a service (no state, nothing to start)."""

    def __init__(self, gateway: Gateway, database: Database | None = None) -> None:
        self.demo_key = gateway.settings.demo_key
        self.assets: dict[str, Asset] = {}
        for route, name, media, _ in _FILES:
            self.assets[route] = Asset.of(_read(name), media)
        module = self.assets["/sdk/croupier.js"].body.decode()
        self.assets[_CLASSIC] = Asset.of(classic_script(module).encode(), _JS)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def _file(self, request: web.Request) -> web.Response:
        return self.assets[request.path].response(request)

    async def _config(self, request: web.Request) -> web.Response:
        # Only a demo server hands out its (well-known, printed) key, so the console is
        # alive without a manual step. Anywhere else the operator pastes a key.
        config = ConsoleConfig(demo=self.demo_key is not None, apiKey=self.demo_key)
        return web.Response(
            body=msgspec.json.encode(config),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    def routes(self) -> list[web.RouteDef]:
        files = [route for route, *_ in _FILES] + [_CLASSIC]
        return [
            *(web.get(route, self._file, allow_head=False) for route in files),
            web.get("/console/config.json", self._config, allow_head=False),
        ]

    @property
    def operations(self) -> Sequence[Operation]:
        ops: list[Operation] = [
            Operation("get", route, "web_" + name.replace(".", "_"), summary, "web", media=media)
            for route, name, media, summary in _FILES
        ]
        ops.append(
            Operation(
                "get",
                _CLASSIC,
                "web_croupier_classic_js",
                "The browser SDK as a classic script (defines window.Croupier)",
                "web",
                media=_JS,
            )
        )
        ops.append(
            Operation(
                "get",
                "/console/config.json",
                "console_config",
                "Whether this is a demo server (which then gives the console its key)",
                "web",
                reply=ConsoleConfig,
                reply_example=_CONFIG_EXAMPLE,
            )
        )
        return ops


_CONFIG_EXAMPLE: dict[str, Any] = {"demo": False, "apiKey": None}

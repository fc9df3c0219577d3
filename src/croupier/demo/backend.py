"""How the demo reaches the server: its public HTTP API with the demo key, and WebSockets
with player tokens, exactly as a casino backend and its players do."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from ..auth import mint_token

__all__ = ["Backend", "HttpError", "Socket"]

BRAND = "1001"


class HttpError(Exception):
    """A reply other than 2xx: its status and error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class Socket:
    """One player WebSocket speaking the native protocol (JSON text frames)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0

    async def send(self, doc: Mapping[str, Any], *, numbered: bool = True) -> int:
        """Send ``doc``, with a fresh request ``id`` unless not ``numbered``; answers the id."""
        self.ids += 1
        await self.ws.send_str(orjson.dumps({**doc, "id": self.ids} if numbered else doc).decode())
        return self.ids

    async def receive(self, seconds: float) -> dict[str, Any] | None:
        """The next message, or None when ``seconds`` pass quietly; raises once closed."""
        try:
            async with asyncio.timeout(seconds):
                message = await self.ws.receive()
        except TimeoutError:
            return None
        if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise ConnectionError(f"the server closed the socket ({message.type.name})")
        doc = orjson.loads(message.data)
        return doc if isinstance(doc, dict) else None

    async def close(self) -> None:
        await self.ws.close()


class Backend:
    """The server's base URL, the demo API key and the secret player tokens are signed with."""

    def __init__(self, base: str, key: str, secret: str | None) -> None:
        self.base = base
        self.secret = secret
        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=15),
        )
        self.sockets = aiohttp.ClientSession()  # players send their token, never the key

    async def close(self) -> None:
        await self.http.close()
        await self.sockets.close()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the decoded reply, or :class:`HttpError`."""
        data = None if body is None else orjson.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        async with self.http.request(method, self.base + path, data=data, headers=headers) as r:
            raw = await r.read()
        doc = orjson.loads(raw) if raw else None
        if r.status >= 300:
            error = doc.get("error", {}) if isinstance(doc, dict) else {}
            raise HttpError(r.status, error.get("code", "?"), error.get("message", ""))
        return doc

    def token(self, player: str, name: str | None = None) -> str:
        """A player token of the demo brand, as the casino's login would hand out."""
        if self.secret is None:
            raise RuntimeError("the server has no JWT secret: no player can connect")
        return mint_token(self.secret, player, brand=BRAND, name=name or player, ttl=86_400)

    async def socket(self, path: str, player: str) -> Socket:
        """A WebSocket as ``player`` (the token in the query, as browsers send it)."""
        url = self.base.replace("http", "ws", 1) + path
        ws = await self.sockets.ws_connect(
            url, params={"token": self.token(player)}, heartbeat=20, autoping=True
        )
        return Socket(ws)

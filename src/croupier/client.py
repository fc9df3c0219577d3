"""A Python client: publish over HTTP, subscribe over WebSocket with reconnect and resume.

    async with Client("http://127.0.0.1:8000", api_key=KEY, token=TOKEN) as client:
        await client.publish("tournament:1", "player.score.updated", {"score": 10})
        async for event in client.subscribe("tournament:1"):
            ...

``subscribe`` keeps each channel's last offset and epoch; after a dropped connection it
reconnects with exponential backoff and jitter (or, when the server is over its admission
budget, after the wait it asks for plus up to as long again at random) and subscribes again
with ``since``, in the connect URL (``/ws?channel=…&since=…``: no round trip), so no
stored event is lost or repeated. When history cannot cover the gap it yields a
``{"type": "reset", "channel": …}`` message so the caller reloads state.

Every publish carries an idempotency key (a random one unless the caller gives its own). A
publish whose answer is lost (the connection drops, or the server answers 503: the event may
still have been stored) is sent again with the same key, so it is stored once; the answer
to a retry of a stored event says ``"duplicate": true``.
"""

from __future__ import annotations

import asyncio
import random
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from .errors import CroupierError

__all__ = ["Client", "ClientError", "new_idempotency_key"]

_CONTROL = frozenset(
    {"connected", "subscribed", "unsubscribed", "pong", "published", "authenticated"}
)
# Refusals that reconnecting would not fix: raised to the caller instead of retried.
_REFUSED = {
    "unauthorized": 401,
    "forbidden": 403,
    "bad_channel": 400,
    "unknown_namespace": 400,
    "too_many_subscriptions": 400,
}
_REFUSED_AT_CONNECT = {400: "bad_request", 401: "unauthorized", 403: "forbidden"}
_MAX_QUERY = 4096  # the most channel/since query bytes put in a connect URL


def new_idempotency_key() -> str:
    """A fresh random idempotency key (32 hex digits)."""
    return uuid.uuid4().hex


def _seconds(value: Any) -> float | None:
    """A server's retry hint (``Retry-After``, ``retry_after``) in seconds, if it is one."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(seconds, 300.0) if seconds > 0 else None


async def _answer(response: aiohttp.ClientResponse) -> Any:
    """The JSON the server answered.

    Raises:
        ClientError: an error status (with the server's code and message), or an answer
            that is not JSON.
    """
    raw = await response.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Not the server's own answer (a proxy's error page, say).
        raise ClientError(response.status, "error", raw[:200].decode(errors="replace")) from None
    if response.status >= 400:
        err = doc.get("error", {}) if isinstance(doc, dict) else {}
        raise ClientError(response.status, err.get("code", "error"), err.get("message", str(doc)))
    return doc


class ClientError(CroupierError):
    """The server refused a request; ``code`` and ``status`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class Client:
    """Args:
    url: the server's base URL (``http://host:port``).
    api_key: a backend key, for publishing and reading history.
    token: a player token, for subscribing to channels that need one.
    max_backoff: the longest wait, in seconds, between reconnects and between retries.
    retries: how many times a publish whose answer was lost is sent again.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        max_backoff: float = 10.0,
        retries: int = 4,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.token = token
        self.max_backoff = max_backoff
        self.retries = retries
        self.positions: dict[str, dict[str, Any]] = {}
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(json_serialize=lambda o: orjson.dumps(o).decode())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("use the client as 'async with Client(...) as client'")
        return self._http

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        async with self.http.request(
            method,
            self.url + path,
            json=body,
            params={k: v for k, v in params.items() if v is not None} or None,
            headers=self._headers(),
        ) as response:
            return await _answer(response)

    async def publish(
        self,
        channel: str,
        type: str,
        data: Any = None,
        *,
        idempotency_key: str | None = None,
        ephemeral: bool = False,
    ) -> dict[str, Any]:
        """Publish one event; returns ``{channel, offset, epoch, ts, duplicate}``.

        Without ``idempotency_key`` a random one is used, and a publish whose answer is lost
        is retried with it (see the module's notes).

        Raises:
            ClientError: the server refused the event, or retries did not get an answer.
        """
        body: dict[str, Any] = {
            "channel": channel,
            "type": type,
            "data": data,
            "idempotency_key": idempotency_key or new_idempotency_key(),
        }
        if ephemeral:
            body["ephemeral"] = True
        result: dict[str, Any] = await self._publish("/api/v1/publish", body)
        return result

    async def publish_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Publish many events in one request (all stored or none); each dict as for
        :meth:`publish`. Events without an ``idempotency_key`` get a random one."""
        keyed = [
            {**e, "idempotency_key": e.get("idempotency_key") or new_idempotency_key()}
            for e in events
        ]
        doc = await self._publish("/api/v1/batch", {"events": keyed})
        results: list[dict[str, Any]] = doc["results"]
        return results

    async def _publish(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body``, sending it again (same keys) while the answer is lost."""
        attempt = 0
        while True:
            try:
                return await self._call("POST", path, body)
            except ClientError as exc:
                if exc.status != 503 or attempt >= self.retries:
                    raise
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt >= self.retries:
                    raise ClientError(
                        503, "unavailable", f"no answer from {self.url}: {exc}"
                    ) from exc
            await asyncio.sleep(min(self.max_backoff, 0.1 * 2**attempt) * random.uniform(0.5, 1))
            attempt += 1

    async def mint_token(
        self,
        sub: str,
        *,
        brand: str | None = None,
        name: str | None = None,
        channels: Sequence[str] = (),
        ttl: int = 3600,
    ) -> str:
        """A player token minted by the server (``POST /api/v1/tokens``; needs an ``admin``
        key, and a server that signs with a shared secret)."""
        body: dict[str, Any] = {"sub": sub, "channels": list(channels), "ttl": ttl}
        if brand is not None:
            body["brand"] = brand
        if name is not None:
            body["name"] = name
        doc = await self._call("POST", "/api/v1/tokens", body)
        minted: str = doc["token"]
        return minted

    async def history(self, channel: str, since: int = 0, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"/api/v1/channels/{channel}/history", since=since, limit=limit
        )
        return result

    # -- admin (an API key with the admin scope) ------------------------------------------

    async def connections(
        self, player: str | None = None, *, brand: str | None = None, client: str | None = None
    ) -> dict[str, Any]:
        """Connections on every node: ``{"connections": [...], "nodes": [...]}``."""
        result: dict[str, Any] = await self._call(
            "GET", "/api/v1/admin/connections", player=player, brand=brand, client=client
        )
        return result

    async def disconnect(
        self,
        player: str | None = None,
        *,
        brand: str | None = None,
        client: str | None = None,
        reason: str = "operator",
        reconnect: bool = True,
    ) -> dict[str, Any]:
        """End a player's connections (or the one ``client``) on every node; each client is
        told ``reason`` and whether to reconnect. Returns ``{"disconnected", "nodes"}``."""
        body: dict[str, Any] = {"reason": reason, "reconnect": reconnect}
        quote = urllib.parse.quote
        if client is not None:
            path = f"/api/v1/admin/connections/{quote(client, safe='')}/disconnect"
        elif player is not None:
            path = f"/api/v1/admin/players/{quote(player, safe='')}/disconnect"
            if brand is not None:
                body["brand"] = brand
        else:
            raise ValueError("say whose connections to end: a player or a client id")
        result: dict[str, Any] = await self._call("POST", path, body)
        return result

    async def live_log(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Yield the live log's records as they come (filters: ``kind``, ``channel_prefix``,
        ``player``, ``node``), until the server ends the stream."""
        params = {k: v for k, v in filters.items() if v is not None}
        async with self.http.get(
            self.url + "/api/v1/admin/log",
            params=params or None,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            if response.status >= 400:
                await _answer(response)  # raises the server's error
            event = "message"
            async for line in response.content:
                text = line.decode().rstrip("\r\n")
                if text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    doc = orjson.loads(text[5:])
                    yield {"kind": "hello", **doc} if event == "hello" else doc
                    event = "message"

    async def subscribe(self, *channels: str) -> AsyncIterator[dict[str, Any]]:
        """Yield every event of ``channels`` (and ``reset`` notices), forever.

        Reconnects on its own; raises :class:`ClientError` only when a subscription is
        refused (bad channel, forbidden), which retrying would not fix.
        """
        ws_url = self.url.replace("http", "ws", 1) + "/ws"
        attempt = 0
        # After a connect URL naming the channels was refused with 400 (more channels than
        # the server takes, say), they go as messages: the server's answer to each then
        # says what is wrong with which one.
        by_message = False
        while True:
            hint: float | None = None  # the server's "come back in" (overloaded), seconds
            in_url: list[tuple[str, str]] | None = None
            try:
                in_url = None if by_message else self._connect_query(channels)
                params = ([("token", self.token)] if self.token else []) + (in_url or [])
                async with self.http.ws_connect(
                    ws_url, params=params, heartbeat=20, max_msg_size=0
                ) as ws:
                    for i, channel in enumerate(() if in_url is not None else channels):
                        message: dict[str, Any] = {"type": "subscribe", "channel": channel, "id": i}
                        if channel in self.positions:
                            message["since"] = self.positions[channel]
                        await ws.send_bytes(orjson.dumps(message))
                    pinger = asyncio.create_task(self._ping(ws))
                    try:
                        async for frame in ws:
                            if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                                break
                            doc = orjson.loads(frame.data)
                            kind = doc.get("type")
                            if kind == "subscribed":
                                attempt = 0
                                position = doc.get("position")
                                channel = doc["channel"]
                                if position is not None:
                                    had = channel in self.positions
                                    self.positions[channel] = position
                                    if had and not doc.get("recovered"):
                                        yield {"type": "reset", "channel": channel}
                            elif kind == "error":
                                code = doc.get("code")
                                if code in _REFUSED:
                                    raise ClientError(_REFUSED[code], code, doc.get("message", ""))
                            elif kind == "disconnect":
                                hint = _seconds(doc.get("retry_after"))
                                break
                            elif kind not in _CONTROL:
                                offset = doc.get("offset")
                                if offset is not None:
                                    self.positions[doc["channel"]] = {
                                        "offset": offset,
                                        "epoch": doc.get("epoch"),
                                    }
                                yield doc
                    finally:
                        pinger.cancel()
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 400 and in_url:
                    by_message = True
                    continue  # at once: nothing is wrong with the server
                if exc.status in _REFUSED_AT_CONNECT:
                    raise ClientError(
                        exc.status,
                        _REFUSED_AT_CONNECT[exc.status],
                        f"the server refused the connection: {exc.message}",
                    ) from None
                if exc.status == 503 and exc.headers is not None:
                    hint = _seconds(exc.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            attempt += 1
            if hint is not None:
                # Told when to come back: then, plus up to as long again at random, so a
                # crowd refused together does not return together.
                await asyncio.sleep(hint + random.uniform(0, hint))
                continue
            delay = min(self.max_backoff, 0.1 * 2 ** min(attempt, 10))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    def _connect_query(self, channels: tuple[str, ...]) -> list[tuple[str, str]] | None:
        """The channels, and where each stands, for the connect URL (subscribed with the
        upgrade, no round trip); ``None`` when they would make too long a URL: then each is
        subscribed by a message."""
        query: list[tuple[str, str]] = []
        for channel in channels:
            query.append(("channel", channel))
            position = self.positions.get(channel)
            if position is not None:
                epoch = position.get("epoch")
                offset = position["offset"]
                query.append(("since", f"{offset}.{epoch}" if epoch else str(offset)))
        if sum(len(name) + len(value) + 2 for name, value in query) > _MAX_QUERY:
            return None
        return query

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(20)
            await ws.send_bytes(b'{"type":"ping"}')

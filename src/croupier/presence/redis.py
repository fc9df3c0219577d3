"""Presence across nodes in Redis.

Per channel, a sorted set maps each client id to the time its entry expires, and a hash
holds each client's info; per player, another sorted set holds the player's own clients
the same way, so whether a join is the player's first connection (or a leave their last)
is answered in the same round trip, whatever the channel's size. Every node refreshes the
entries of its own clients well before they expire, so the entries of a node that died
vanish on their own within ``ttl`` seconds; counts and member lists ignore expired entries
and sweep them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import Unavailable
from ..tasks import stop_task
from .base import Change, player_of

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

PREFIX = "croupier:presence:"


class RedisPresence:
    """Args:
    url: ``redis://host:port/db``.
    ttl: seconds an entry outlives its node's last refresh.
    """

    def __init__(self, url: str, *, ttl: float = 30.0) -> None:
        self.url = url
        self.ttl = ttl
        self._client: aioredis.Redis | None = None
        # channel -> client -> (info JSON, player)
        self._mine: dict[str, dict[str, tuple[bytes, str | None]]] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        # No presence command blocks: a reply later than this is a dead connection.
        self._client = aioredis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=5)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise Unavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._refresher = asyncio.create_task(self._refresh_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._refresher)
        if self._client is not None:
            # This node's clients are leaving with it.
            with contextlib.suppress(Exception):
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, members in self._mine.items():
                        if members:
                            pipe.zrem(PREFIX + channel, *members)
                            pipe.hdel(PREFIX + channel + ":info", *members)
                        for client, (_, player) in members.items():
                            if player is not None:
                                pipe.zrem(_player_key(channel, player), client)
                    await pipe.execute()
            await self._client.aclose()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise Unavailable("presence is closed")
        return self._client

    def join_now(self, channel: str, client: str, info: Mapping[str, Any]) -> Change | None:
        return None  # every join is a round trip to Redis

    async def join(self, channel: str, client: str, info: Mapping[str, Any]) -> Change:
        body = orjson.dumps(dict(info))
        player = player_of(info)
        self._mine.setdefault(channel, {})[client] = (body, player)
        now = time.time()
        expires = now + self.ttl
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                if player is not None:
                    pkey = _player_key(channel, player)
                    pipe.zcount(pkey, now, "+inf")
                    pipe.zadd(pkey, {client: expires})
                    pipe.pexpire(pkey, self._keep_ms)
                pipe.zadd(PREFIX + channel, {client: expires})
                pipe.hset(PREFIX + channel + ":info", client, body)
                pipe.zcount(PREFIX + channel, now, "+inf")
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"presence is unavailable: {exc}") from exc
        return Change(int(results[-1]), player is not None and int(results[0]) == 0)

    def leave_now(self, channel: str, client: str) -> Change | None:
        return None  # every leave is a round trip to Redis

    async def leave(self, channel: str, client: str) -> Change:
        player: str | None = None
        members = self._mine.get(channel)
        if members is not None:
            mine = members.pop(client, None)
            player = None if mine is None else mine[1]
            if not members:
                del self._mine[channel]
        now = time.time()
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                if player is not None:
                    pkey = _player_key(channel, player)
                    pipe.zrem(pkey, client)
                    pipe.zcount(pkey, now, "+inf")
                pipe.zrem(PREFIX + channel, client)
                pipe.hdel(PREFIX + channel + ":info", client)
                pipe.zcount(PREFIX + channel, now, "+inf")
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"presence is unavailable: {exc}") from exc
        last = player is not None and int(results[0]) == 1 and int(results[1]) == 0
        return Change(int(results[-1]), last)

    @property
    def _keep_ms(self) -> int:
        """How long a player's set outlives the last refresh of any of its entries."""
        return int(self.ttl * 2000)

    async def connections(self, channel: str, player: str) -> int:
        try:
            key = _player_key(channel, player)
            return int(await self.client.zcount(key, time.time(), "+inf"))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"presence is unavailable: {exc}") from exc

    async def _sweep(self, channel: str, now: float) -> None:
        key = PREFIX + channel
        expired = await self.client.zrangebyscore(key, "-inf", now)
        if expired:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.hdel(key + ":info", *expired)
                await pipe.execute()

    async def count(self, channel: str) -> int:
        try:
            return int(await self.client.zcount(PREFIX + channel, time.time(), "+inf"))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"presence is unavailable: {exc}") from exc

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        now = time.time()
        key = PREFIX + channel
        try:
            await self._sweep(channel, now)
            found: Any = await self.client.zrangebyscore(key, now, "+inf", start=0, num=limit)
            clients: list[bytes] = list(found)
            if not clients:
                return []
            infos = await self.client.hmget(key + ":info", clients)
        except (RedisError, OSError) as exc:
            raise Unavailable(f"presence is unavailable: {exc}") from exc
        out: list[Mapping[str, Any]] = []
        for client, info in zip(clients, infos, strict=True):
            name = client.decode() if isinstance(client, bytes) else str(client)
            out.append({"client": name, **(orjson.loads(info) if info else {})})
        return out

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            now = time.time()
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    expires = now + self.ttl
                    for channel, members in self._mine.items():
                        if not members:
                            continue
                        pipe.zadd(PREFIX + channel, dict.fromkeys(members, expires))
                        pipe.hset(
                            PREFIX + channel + ":info",
                            mapping={client: body for client, (body, _) in members.items()},
                        )
                        for player, clients in _by_player(members).items():
                            pkey = _player_key(channel, player)
                            pipe.zremrangebyscore(pkey, "-inf", now)  # a dead node's
                            pipe.zadd(pkey, dict.fromkeys(clients, expires))
                            pipe.pexpire(pkey, self._keep_ms)
                    await pipe.execute()
                for channel in list(self._mine):
                    await self._sweep(channel, now)
            except (RedisError, OSError) as exc:
                log.warning("presence refresh failed: %s", exc)


def _player_key(channel: str, player: str) -> str:
    return f"{PREFIX}{channel}:player:{player}"


def _by_player(members: Mapping[str, tuple[bytes, str | None]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for client, (_, player) in members.items():
        if player is not None:
            out.setdefault(player, []).append(client)
    return out

"""The Redis Broker: one Redis pub/sub channel per Croupier channel.

A node subscribes only to the channels its clients use, with sharded pub/sub
(``SSUBSCRIBE``/``SPUBLISH``) when the server has it (Redis 7+), so in a Redis Cluster each
channel's traffic stays on its shard. A subscription counts as in effect once Redis has
confirmed it, so nothing published after :meth:`subscribe` returns can be missed.

If the connection drops, the node resubscribes when Redis is back and asks the hub to
``resync``: every channel reads what it missed from the log. Publishing while Redis is down
raises, but the events are already stored; subscribers get them on the resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import Unavailable
from ..events import Event
from .base import EventHandler
from .codec import decode_event, encode_event

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)

PREFIX = "croupier:ch:"
NODE_CHANNEL = PREFIX + "__node__"
_CONFIRM_TIMEOUT = 5.0


def _nothing(event: Event) -> None:
    return None


class RedisBroker:
    """Args:
    url: ``redis://host:port/db`` (``rediss://`` for TLS).
    sharded: use sharded pub/sub; ``None`` (the default) decides by the server's version.
    """

    def __init__(self, url: str, *, sharded: bool | None = None) -> None:
        self.url = url
        self._sharded = sharded
        self._handler: EventHandler = _nothing
        self._resync: Callable[[], None] | None = None
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: set[str] = set()
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._connections = 0

    def bind(self, handler: EventHandler, resync: Callable[[], None] | None = None) -> None:
        self._handler = handler
        self._resync = resync

    async def __aenter__(self) -> Self:
        self._client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=5, health_check_interval=15
        )
        try:
            if self._sharded is None:
                info = await self._client.info("server")
                major = int(str(info.get("redis_version", "0")).split(".")[0])
                self._sharded = major >= 7
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise Unavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        await self._open_pubsub()
        self._reader = asyncio.create_task(self._read_forever())
        return self

    async def _open_pubsub(self) -> None:
        assert self._client is not None
        self._pubsub = self._client.pubsub()
        # A node channel keeps the connection subscribed (and readable) even when no client
        # has subscribed to anything.
        await self._pubsub.subscribe(NODE_CHANNEL)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def publish(self, events: Sequence[Event]) -> None:
        if self._client is None:
            raise Unavailable("the broker is closed")
        command = "SPUBLISH" if self._sharded else "PUBLISH"
        try:
            if len(events) == 1:
                event = events[0]
                await self._client.execute_command(  # type: ignore[no-untyped-call]
                    command, PREFIX + event.channel, encode_event(event)
                )
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.execute_command(command, PREFIX + event.channel, encode_event(event))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"Redis did not take the events: {exc}") from exc

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._channels:
                return
            name = PREFIX + channel
            fut = asyncio.get_running_loop().create_future()
            self._confirm[name] = fut
            self._channels.add(channel)
            try:
                if self._sharded:
                    await self._pubsub.ssubscribe(name)
                else:
                    await self._pubsub.subscribe(name)
                await asyncio.wait_for(asyncio.shield(fut), _CONFIRM_TIMEOUT)
            except (RedisError, OSError, TimeoutError) as exc:
                self._channels.discard(channel)
                raise Unavailable(f"cannot subscribe to {channel} on Redis: {exc}") from exc
            finally:
                self._confirm.pop(name, None)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._channels:
                return
            self._channels.discard(channel)
            name = PREFIX + channel
            try:
                if self._sharded:
                    await self._pubsub.sunsubscribe(name)
                else:
                    await self._pubsub.unsubscribe(name)
            except (RedisError, OSError) as exc:
                log.warning("could not unsubscribe from %s: %s", channel, exc)

    async def _read_forever(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection is gone, whatever redis-py raised
                log.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
                delay = 0.1
                while not await self._reconnect():
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                continue
            if message is None:
                continue
            kind = message["type"]
            if kind in ("message", "smessage"):
                try:
                    event = decode_event(message["data"])
                except ValueError:
                    log.warning("dropping a malformed message on %r", message["channel"])
                    continue
                self._handler(event)
            elif kind in ("subscribe", "ssubscribe"):
                name = message["channel"]
                name = name.decode() if isinstance(name, bytes) else name
                if name == NODE_CHANNEL:
                    # The node channel is confirmed once per connection: a second
                    # confirmation means the connection was re-established (by us or by
                    # redis-py on its own) and messages may have been lost meanwhile.
                    self._connections += 1
                    if self._connections > 1 and self._resync is not None:
                        log.info("Redis pub/sub reconnected; resyncing from the log")
                        self._resync()
                fut = self._confirm.get(name)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    async def _reconnect(self) -> bool:
        """Open a fresh pub/sub connection and resubscribe; return whether it worked."""
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        try:
            await self._open_pubsub()
            names = [PREFIX + c for c in sorted(self._channels)]
            if names:
                if self._sharded:
                    await self._pubsub.ssubscribe(*names)
                else:
                    await self._pubsub.subscribe(*names)
        except Exception as exc:
            log.warning("Redis still unreachable: %s", exc)
            return False
        return True

"""A recording WebSocket client for the matchmaking and room end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.support import timeout

Doc = dict[str, Any]


class Player:
    """One player's WebSocket: records every message; waits for the one a test needs."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
        self.ws = ws
        self.name = name
        self.seen: list[Doc] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.seen.append(json.loads(message.data))
                self._changed.set()

    async def send(self, doc: Doc) -> None:
        await self.ws.send_str(json.dumps(doc))

    async def publish(self, channel: str, event: str, data: Doc) -> None:
        await self.send({"type": "publish", "channel": channel, "event": event, "data": data})

    async def wait(self, found: Callable[[Doc], bool], seconds: float = 10.0) -> Doc:
        """The first message, seen already or still to come, for which ``found`` holds."""
        async with asyncio.timeout(timeout(seconds)):
            at = 0
            while True:
                for doc in self.seen[at:]:
                    if found(doc):
                        return doc
                at = len(self.seen)
                self._changed.clear()
                await self._changed.wait()

    async def wait_type(self, kind: str, seconds: float = 10.0, **data: Any) -> Doc:
        def match(doc: Doc) -> bool:
            d = doc.get("data") or {}
            return doc.get("type") == kind and all(d.get(k) == v for k, v in data.items())

        return await self.wait(match, seconds)

    def events(self, kind: str) -> list[Doc]:
        return [d for d in self.seen if d.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

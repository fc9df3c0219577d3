"""The live log as a console reads it, for the end-to-end tests: ``GET /api/v1/admin/log``
with the admin key in a header, parsed as an event stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.support import API_KEY, ServerProcess, timeout

ADMIN = {"Authorization": f"Bearer {API_KEY}"}


class LogStream:
    """The live log as a console reads it: ``fetch`` with the key in a header."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.hello: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    async def _next(self) -> tuple[str, dict[str, Any]]:
        kind, data = "message", ""
        async for line in self.lines:
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                return kind, json.loads(data)
        raise AssertionError("the log stream ended")

    async def until(self, check: Any, seconds: float = 10.0) -> dict[str, Any]:
        """The first record (from now on) for which ``check(record)`` is true."""
        async with asyncio.timeout(timeout(seconds)):
            while True:
                kind, record = await self._next()
                if kind == "hello":
                    self.hello = record
                    continue
                self.seen.append(record)
                if check(record):
                    return record


@contextlib.asynccontextmanager
async def live_log(server: ServerProcess, **params: Any) -> AsyncIterator[LogStream]:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(timeout(30), connect=timeout(10))) as client,
        client.stream(
            "GET", server.url + "/api/v1/admin/log", headers=ADMIN, params=params
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = LogStream(response)
        kind, stream.hello = await stream._next()
        assert kind == "hello"
        yield stream

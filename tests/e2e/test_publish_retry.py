"""Publishes whose answer is lost: the Python client and ``croupier publish`` retry with an
idempotency key of their own, so the event is stored once (issue 14).

A proxy in front of a real server loses answers the way a network does: the server stores
the event and answers, and the answer never reaches the client; or the proxy answers 503 on
its own, as a load balancer does when a node is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from croupier.client import Client, ClientError
from tests.support import API_KEY, ServerProcess, running_server, timeout

from .wsclient import history, http

pytestmark = pytest.mark.e2e

_ids = itertools.count(1)
_UNAVAILABLE = orjson.dumps({"error": {"code": "unavailable", "message": "node away"}})


def fresh() -> str:
    return f"tournament:retry-{next(_ids)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("retry")) as srv:
        yield srv


class LossyProxy:
    """HTTP/1.1 between a client and the server, one request at a time per connection.

    Args:
        lose: how many answers to lose: the request reaches the server, which answers, and
            the proxy then drops the client's connection instead of passing the answer on.
        unavailable: how many requests to answer ``503`` itself, without passing them on.
    """

    def __init__(self, upstream: ServerProcess, *, lose: int = 0, unavailable: int = 0) -> None:
        self.upstream = upstream
        self.lose = lose
        self.unavailable = unavailable
        self.forwarded = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await reader.readexactly(length)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream.port)
        try:
            while True:
                try:
                    request = await self._request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if self.unavailable > 0:
                    self.unavailable -= 1
                    writer.write(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json"
                        b"\r\nContent-Length: %d\r\n\r\n%b" % (len(_UNAVAILABLE), _UNAVAILABLE)
                    )
                    await writer.drain()
                    continue
                up_writer.write(request)
                self.forwarded += 1
                answer = await self._request(up_reader)  # the server has answered
                if self.lose > 0:
                    self.lose -= 1
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            up_writer.close()
            writer.close()


@contextlib.asynccontextmanager
async def lossy(upstream: ServerProcess, **losses: int) -> AsyncIterator[LossyProxy]:
    proxy = LossyProxy(upstream, **losses)
    listener = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    proxy.port = listener.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        listener.close()


async def stored(server: ServerProcess, channel: str) -> list[dict[str, object]]:
    async with http(server) as api:
        events: list[dict[str, object]] = (await history(api, channel))["events"]
        return events


async def test_a_publish_whose_answer_is_lost_is_stored_once(server: ServerProcess) -> None:
    channel = fresh()
    async with lossy(server, lose=2) as proxy, Client(proxy.url, api_key=API_KEY) as client:
        result = await client.publish(channel, "score.updated", {"score": 10})
    assert proxy.forwarded == 3  # the server stored it on the first, and saw two retries
    assert (result["offset"], result["duplicate"]) == (1, True)
    events = await stored(server, channel)
    assert [(e["offset"], e["data"]) for e in events] == [(1, {"score": 10})]


async def test_a_publish_answered_503_is_sent_again(server: ServerProcess) -> None:
    channel = fresh()
    async with lossy(server, unavailable=2) as proxy, Client(proxy.url, api_key=API_KEY) as c:
        result = await c.publish(channel, "score.updated", {"score": 11})
    assert proxy.forwarded == 1
    assert (result["offset"], result["duplicate"]) == (1, False)
    assert len(await stored(server, channel)) == 1


async def test_a_batch_whose_answer_is_lost_is_stored_once(server: ServerProcess) -> None:
    channel = fresh()
    events = [{"channel": channel, "type": "score.updated", "data": {"n": n}} for n in range(3)]
    async with lossy(server, lose=1) as proxy, Client(proxy.url, api_key=API_KEY) as client:
        results = await client.publish_batch(events)
    assert [(r["offset"], r["duplicate"]) for r in results] == [(1, True), (2, True), (3, True)]
    assert [e["data"] for e in await stored(server, channel)] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_retries_give_up_with_a_clear_error_and_still_store_once(
    server: ServerProcess,
) -> None:
    channel = fresh()
    async with (
        lossy(server, lose=100) as proxy,
        Client(proxy.url, api_key=API_KEY, retries=2, max_backoff=0.05) as client,
    ):
        with pytest.raises(ClientError) as info:
            await client.publish(channel, "score.updated", {"score": 12})
    assert (info.value.status, info.value.code) == (503, "unavailable")
    assert proxy.forwarded == 3
    assert len(await stored(server, channel)) == 1


async def test_refusals_are_not_retried(server: ServerProcess) -> None:
    async with lossy(server) as proxy, Client(proxy.url, api_key=API_KEY) as client:
        with pytest.raises(ClientError) as info:
            await client.publish("nowhere:1", "score.updated", {})
    assert (info.value.status, proxy.forwarded) == (400, 1)


async def test_cli_publish_retries_with_its_own_key(server: ServerProcess) -> None:
    channel = fresh()
    async with lossy(server, lose=1) as proxy:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "croupier",
            "publish",
            channel,
            "cli.said",
            '{"hello": "world"}',
            "--url",
            proxy.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "CROUPIER_API_KEY": API_KEY},
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout(30))
    assert proc.returncode == 0, err
    assert json.loads(out)["duplicate"] is True
    assert proxy.forwarded == 2
    assert len(await stored(server, channel)) == 1

"""Centrifugo's protocols across nodes: a ``centrifuge-python`` client on one node, ``cent``
on another (PostgreSQL log, Redis broker and presence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cent import (
    AsyncClient,
    ChannelsRequest,
    DisconnectRequest,
    PresenceStatsRequest,
    PublishRequest,
)
from centrifuge import Client

from tests.services import fresh_postgres_database
from tests.support import API_KEY, timeout, token

from .centrifugo_sdk import Recorder
from .cluster import cluster, private_redis

pytestmark = pytest.mark.e2e


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_database("croupier_cfmn") as url:
        yield url


async def test_publish_presence_channels_and_disconnect_reach_across_nodes(
    tmp_path: Path, database: str
) -> None:
    with private_redis(tmp_path) as redis:
        env = {"CROUPIER_DATABASE_URL": database, "CROUPIER_BROKER_URL": redis.url}
        with cluster(tmp_path, 2, env) as (near, far):
            channel = "room:cfmn-1"
            events = Recorder()
            client = Client(
                f"ws://127.0.0.1:{far.port}/connection/websocket",
                events=events,
                token=token("p5"),
                timeout=timeout(5),
            )
            await client.connect()
            sub = client.new_subscription(channel, events=events)
            await sub.subscribe()
            await events.wait("subscribed")
            async with AsyncClient(near.url + "/api", API_KEY, timeout=timeout(10)) as cent:
                result = await cent.publish(
                    PublishRequest(channel=channel, data={"n": 1}, tags={"type": "t.x"})
                )
                [pub] = await events.wait("publication")
                assert (pub.pub.offset, pub.pub.data) == (result.offset, {"n": 1})
                stats = await cent.presence_stats(PresenceStatsRequest(channel=channel))
                assert (stats.num_clients, stats.num_users) == (1, 1)
                found = await cent.channels(ChannelsRequest(pattern="room:cfmn-*"))
                assert found.channels[channel].num_clients == 1
                await cent.disconnect(DisconnectRequest(user="p5"))
                [gone] = await events.wait("disconnected", seconds=15)
                assert gone.code == 3503  # told not to come back
            await client.disconnect()

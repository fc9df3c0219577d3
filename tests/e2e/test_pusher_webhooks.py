"""Pusher-format webhooks (issue 20), checked with the ``pusher`` SDK's own validation.

A receiver on loopback records what arrives; each delivery must pass
``Pusher.validate_webhook`` with the app's key and secret, as a Pusher backend checks it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest

from tests.support import ServerProcess, running_server, token

from .pusherjs import Backend, pusher_js
from .test_webhooks import FAST, Receiver, eventually
from .wsclient import write_config, ws_connect

pytestmark = pytest.mark.e2e

KEY, SECRET = "app-key", "app-secret"
APP = pusher.Pusher(app_id="4242", key=KEY, secret=SECRET)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
def server(tmp_path: Path, receiver: Receiver) -> Iterator[ServerProcess]:
    config = write_config(
        tmp_path / "croupier.toml",
        f"""
[[pusher.apps]]
id = "4242"
key = "{KEY}"
secret = "{SECRET}"
webhooks = ["{receiver.url}"]
""",
    )
    with running_server(tmp_path, config=config, env=FAST) as srv:
        yield srv


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend() as b:
        yield b


def events(receiver: Receiver) -> list[dict[str, Any]]:
    """Every webhook event received, each delivery validated by the SDK first."""
    found = []
    for headers, body in receiver.received:
        doc = APP.validate_webhook(
            key=headers["X-Pusher-Key"], signature=headers["X-Pusher-Signature"], body=body
        )
        assert doc is not None, f"the SDK refused a delivery: {headers} {body!r}"
        found.extend(doc["events"])
    return found


async def wait_for(receiver: Receiver, wanted: list[dict[str, Any]]) -> None:
    async def arrived() -> bool:
        got = events(receiver)
        return all(w in got for w in wanted)

    await eventually(arrived, 10, f"webhooks {wanted}")


async def test_occupancy_and_members_arrive_signed_as_pusher_signs(
    server: ServerProcess, receiver: Receiver
) -> None:
    room = "pusher:presence-room"
    async with ws_connect(server, token("ann", channels=["pusher:*"])) as ann:
        await ann.subscribe(room)
        async with ws_connect(server, token("bob", channels=["pusher:*"])) as bob:
            await bob.subscribe(room)
            await wait_for(
                receiver,
                [
                    {"name": "channel_occupied", "channel": "presence-room"},
                    {"name": "member_added", "channel": "presence-room", "user_id": "ann"},
                    {"name": "member_added", "channel": "presence-room", "user_id": "bob"},
                ],
            )
        await wait_for(
            receiver, [{"name": "member_removed", "channel": "presence-room", "user_id": "bob"}]
        )
        assert {"name": "channel_vacated", "channel": "presence-room"} not in events(receiver)
    await wait_for(receiver, [{"name": "channel_vacated", "channel": "presence-room"}])
    names = [e["name"] for e in events(receiver)]
    assert names.count("channel_occupied") == 1
    assert names.count("channel_vacated") == 1


async def test_a_tampered_delivery_fails_the_sdk_check(
    server: ServerProcess, receiver: Receiver
) -> None:
    async with ws_connect(server, token("ann", channels=["pusher:*"])) as ann:
        await ann.subscribe("pusher:orders")
        await wait_for(receiver, [{"name": "channel_occupied", "channel": "orders"}])
    headers, body = receiver.received[0]
    assert headers["Content-Type"] == "application/json"
    tampered = body.replace(b"orders", b"orderz")
    assert (
        APP.validate_webhook(headers["X-Pusher-Key"], headers["X-Pusher-Signature"], tampered)
        is None
    )
    other = pusher.Pusher(app_id="4242", key=KEY, secret="another")
    assert (
        other.validate_webhook(headers["X-Pusher-Key"], headers["X-Pusher-Signature"], body) is None
    )


async def test_client_events_are_reported(
    server: ServerProcess, receiver: Receiver, backend: Backend
) -> None:
    async with pusher_js(server, backend, "ann") as ann, pusher_js(server, backend, "bob") as bob:
        await ann.subscribe("private-chat")
        await bob.subscribe("private-chat")
        await ann.send(op="trigger", channel="private-chat", event="client-hello", data={"a": 1})
        await bob.event("private-chat", "client-hello")
        await wait_for(
            receiver,
            [
                {
                    "name": "client_event",
                    "channel": "private-chat",
                    "event": "client-hello",
                    "data": '{"a":1}',
                    "socket_id": ann.socket_id,
                }
            ],
        )

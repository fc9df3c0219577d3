"""The real ``centrifuge`` npm SDK against ``/connection/websocket``: under Node with the
``ws`` package and in Chromium, each scenario through the same remote control
(:mod:`tests.e2e.centrifugo_sdk`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import API_KEY, ServerProcess, running_server, timeout, token

from .browser import Publisher, chromium
from .centrifugo_sdk import BrowserSdk, Sdk, fresh, node_or_skip, node_sdk, shared_server
from .sseclient import publish

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("centrifugo-js")
    with shared_server(tmp) as server:
        yield server


@pytest.fixture(params=["node", "chromium"])
def make_sdk(request: pytest.FixtureRequest) -> Iterator[Callable[[ServerProcess], Sdk]]:
    """Opens SDK instances of one runner; all are closed at the end of the test."""
    with contextlib.ExitStack() as stack:
        if request.param == "node":
            node_or_skip()
            yield lambda server: stack.enter_context(node_sdk())
        else:
            node_or_skip()  # the page loads the SDK's bundle from the npm package
            browser = stack.enter_context(chromium())

            def open_page(server: ServerProcess) -> Sdk:
                page = browser.new_page()
                stack.callback(page.close)
                return BrowserSdk(page, server)

            yield open_page


def history_offsets(server: ServerProcess, channel: str) -> list[int]:
    r = httpx.get(
        f"{server.url}/api/v1/channels/{channel}/history",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=timeout(10),
    )
    assert r.status_code == 200, r.text
    return [e["offset"] for e in r.json()["events"]]


# -- one connection: subscribe, receive, publish, presence, history, refusals -------------


def test_subscribe_receive_publish_presence_history(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    sdk = make_sdk(srv)
    tournament, room = fresh("tournament"), fresh("room")
    sdk.connect(srv, token("p1", name="Ann"))
    sdk.wait_event("connected")

    sdk.do("subscribe", channel=tournament)
    subscribed = sdk.wait_event("subscribed", channel=tournament)
    assert subscribed["recoverable"] is True
    assert subscribed["positioned"] is True
    assert subscribed["recovered"] is False
    stored = publish(srv, tournament, "player.score.updated", {"score": 1250})
    [pub] = sdk.wait_publications(tournament, 1)
    assert pub["data"] == {"score": 1250}
    assert pub["offset"] == stored["offset"] == 1
    assert pub["tags"] == {"type": "player.score.updated"}

    history = sdk.call("history", channel=tournament, options={"limit": 10})["ok"]
    assert [(p["offset"], p["data"]) for p in history["publications"]] == [(1, {"score": 1250})]
    assert (history["offset"], history["epoch"]) == (1, stored["epoch"])

    # A player publishes where the namespace lets them: the server sets who sent it.
    sdk.do("subscribe", channel=room)
    sdk.wait_event("subscribed", channel=room)
    sent = sdk.call("publish", channel=room, data={"type": "chat.message", "text": "hi"})
    assert "ok" in sent, sent
    [chat] = sdk.wait_publications(room, 1)
    assert chat["data"] == {"text": "hi", "from": {"id": "p1", "name": "Ann"}}
    assert chat["tags"] == {"type": "chat.message"}
    assert chat["offset"] is None  # players' events are ephemeral
    # A room takes two event types: without one in the data the publish is refused.
    untyped = sdk.call("publish", channel=room, data={"text": "which?"})
    assert untyped["error"]["code"] == 107
    assert "chat.message" in untyped["error"]["message"]
    forbidden = sdk.call("publish", channel=fresh("lobby"), data={"news": 1})
    assert forbidden["error"]["code"] == 103  # players may not publish in the lobby

    presence = sdk.call("presence", channel=room)["ok"]
    assert [info["user"] for info in presence["clients"].values()] == ["p1"]
    stats = sdk.call("presenceStats", channel=room)["ok"]
    assert (stats["numClients"], stats["numUsers"]) == (1, 1)

    # Refused by the namespace rules: another player's channel, an unknown namespace.
    sdk.do("subscribe", channel="player:1001:p2")
    refused = sdk.wait_event("unsubscribed", channel="player:1001:p2")
    assert refused["code"] == 103
    sdk.do("subscribe", channel="nowhere:1")
    assert sdk.wait_event("unsubscribed", channel="nowhere:1")["code"] == 102

    unknown = sdk.call("rpc", method="teleport", data={})
    assert unknown["error"]["code"] == 108
    # Still connected and served after every refusal.
    publish(srv, tournament, "player.score.updated", {"score": 1300})
    assert [p["data"]["score"] for p in sdk.wait_publications(tournament, 2)] == [1250, 1300]
    assert sdk.count("disconnected") == 0


def test_join_and_leave_where_the_namespace_announces_them(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    room = fresh("room")
    watcher, visitor = make_sdk(srv), make_sdk(srv)
    watcher.connect(srv, token("p1"))
    watcher.do("subscribe", channel=room)
    watcher.wait_event("subscribed", channel=room)
    visitor.connect(srv, token("p2", name="Bob"))
    visitor.do("subscribe", channel=room)
    visitor.wait_event("subscribed", channel=room)
    join = watcher.wait(lambda e: e.get("event") == "join" and e["info"]["user"] == "p2")
    assert join["channel"] == room
    visitor.do("unsubscribe", channel=room)
    # The leave is announced once the grace for a quick return has passed.
    watcher.wait(lambda e: e.get("event") == "leave" and e["info"]["user"] == "p2", 15)


def test_anonymous_clients_read_public_channels_only(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    sdk = make_sdk(srv)
    lobby = fresh("lobby")
    sdk.connect(srv)
    sdk.wait_event("connected")
    sdk.do("subscribe", channel=lobby)
    sdk.wait_event("subscribed", channel=lobby)
    publish(srv, lobby, "lobby.news", {"n": 1})
    assert sdk.wait_publications(lobby, 1)[0]["data"] == {"n": 1}
    sdk.do("subscribe", channel=fresh("tournament"))
    refused = sdk.wait(lambda e: e.get("event") == "unsubscribed")
    assert refused["code"] == 101  # a token is needed there


# -- tokens ---------------------------------------------------------------------------------


def test_the_sdk_refreshes_its_token_before_it_runs_out(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    sdk = make_sdk(srv)
    tournament = fresh("tournament")
    sdk.connect(srv, token("p1", ttl=8), refreshable=True)
    sdk.wait_event("connected")
    sdk.do("subscribe", channel=tournament)
    sdk.wait_event("subscribed", channel=tournament)
    sdk.wait_event("getToken", 12)
    sdk.do("token", token=token("p1", ttl=3600))
    time.sleep(timeout(3))  # past the first token's expiry
    publish(srv, tournament, "t.after", {"n": 1})
    assert sdk.wait_publications(tournament, 1)[0]["data"] == {"n": 1}
    kinds = [e.get("event") for e in sdk.events]
    assert kinds.count("connected") == 1, kinds  # never dropped, never reconnected
    assert "connecting" not in kinds[kinds.index("connected") :], kinds


def test_an_expired_token_is_refreshed_on_connect(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    sdk = make_sdk(srv)
    sdk.connect(srv, token("p1", ttl=-30), refreshable=True)
    sdk.wait_event("getToken")
    sdk.do("token", token=token("p1"))
    sdk.wait_event("connected")
    error = sdk.wait_event("error")
    assert error["error"]["code"] == 109  # token expired, told before the refresh


# -- resuming -------------------------------------------------------------------------------

TOTAL = 90


def test_resume_across_a_graceful_restart_and_a_crash(
    tmp_path: Path, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    channel = "tournament:resume"
    with running_server(tmp_path) as server:
        sdk = make_sdk(server)
        sdk.connect(server, token("p1"))
        sdk.do("subscribe", channel=channel)
        sdk.wait_event("subscribed", channel=channel)
        publisher = Publisher(server, [channel], TOTAL)
        try:
            publisher.start()
            sdk.wait_publications(channel, 25, 30)
            server.stop()  # graceful: told to reconnect (3001), then closed
            server.start()
            sdk.wait_publications(channel, 55, 30)
            server.restart()  # SIGKILL: the connection just drops
            publisher.join(timeout(60))
            assert publisher.error is None, publisher.error
            pubs = sdk.wait_publications(channel, TOTAL, 30)
            time.sleep(0.3)  # a duplicate would show up now
            pubs = sdk.publications(channel)
        finally:
            publisher.stop.set()
    assert [p["data"]["n"] for p in pubs] == list(range(1, TOTAL + 1))
    assert [p["offset"] for p in pubs] == list(range(1, TOTAL + 1))
    resumed = [e for e in sdk.events if e.get("event") == "subscribed"][1:]
    assert len(resumed) >= 2, sdk.events
    assert all(e["recovered"] and e["wasRecovering"] for e in resumed), resumed


def test_not_recovered_when_history_was_trimmed(
    srv: ServerProcess, make_sdk: Callable[[ServerProcess], Sdk]
) -> None:
    channel = fresh("short")
    sdk = make_sdk(srv)
    sdk.connect(srv)
    sdk.do("subscribe", channel=channel)
    sdk.wait_event("subscribed", channel=channel)
    publish(srv, channel, "t.x", {"n": 1})
    sdk.wait_publications(channel, 1)
    sdk.do("disconnect")
    sdk.wait_event("disconnected")
    for n in range(2, 12):
        publish(srv, channel, "t.x", {"n": n})
    deadline = time.monotonic() + timeout(10)
    while history_offsets(srv, channel)[0] <= 2:  # the retention task trims to 3
        assert time.monotonic() < deadline
        time.sleep(0.1)
    start = len(sdk.events)
    sdk.do("reconnect")
    again = sdk.wait_event("subscribed", start=start, channel=channel)
    assert again["wasRecovering"] is True
    assert again["recovered"] is False
    assert again["streamPosition"]["offset"] == 11
    assert len(sdk.publications(channel)) == 1  # nothing partial was replayed

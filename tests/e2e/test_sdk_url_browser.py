"""The browser SDK resumes in the connect URL, in real Chromium.

After a drop or a restart a page's channels come back with one upgrade request that names
them, where each stands and the token (``/ws?token=…&channel=…&since=…``), and no
``subscribe`` or ``auth`` message. Each page talks to its server through a proxy that
records what the server receives (every upgrade's request target and the messages sent on
it) and that can cut the page off, as a lost network does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import FOLLOW, Upgrade, WatchingProxy, chromium, publish, wait_for
from tests.support import ServerProcess, running_server, token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WS = {"transport": "websocket"}


@contextlib.contextmanager
def watched(tmp_path: Path, **kw: Any) -> Iterator[tuple[ServerProcess, WatchingProxy, Any]]:
    """A server, a watching proxy in front of it, and a page opened on the proxy."""
    with (
        running_server(tmp_path, **kw) as server,
        WatchingProxy(server.port) as proxy,
        chromium() as browser,
    ):
        page = browser.new_page()
        page.goto(proxy.url + "/healthz")
        yield server, proxy, page


def ticks(server: ServerProcess, channels: list[str], numbers: range) -> dict[str, str]:
    """Publish ``t.tick`` ``{"n": n}`` on each channel; returns each channel's epoch."""
    epochs = {}
    for n in numbers:
        for channel in channels:
            epochs[channel] = publish(server, channel, "t.tick", {"n": n})["epoch"]
    return epochs


def has(channels: list[str], n: int) -> str:
    return " && ".join(f"window.got[{c!r}].length >= {n}" for c in channels)


def connected(n: int) -> str:
    return f"window.states.filter((s) => s[0] === 'connected').length >= {n}"


def cut_off_and_restart(page: Any, proxy: WatchingProxy, server: ServerProcess) -> None:
    """Cut the page off and crash and restart the server while it cannot reach it."""
    proxy.block()
    wait_for(page, "window.states.some((s) => s[0] === 'reconnecting')", 10)
    server.restart()


def kinds(upgrade: Upgrade) -> list[str]:
    """The types of the messages sent on ``upgrade``, but pings."""
    return [m["type"] for m in upgrade.sent if m["type"] != "ping"]


@pytest.mark.parametrize("in_url", [True, False], ids=["in-url", "by-message"])
def test_a_page_cut_off_gets_exactly_the_missed_events_once_in_order(
    tmp_path: Path, in_url: bool
) -> None:
    """With ``subscribeInUrl`` (the default) the reconnect names both channels and their
    positions in its URL and sends no message; without it, the same resume goes as
    ``auth`` and ``subscribe`` messages, as before."""
    channels = ["tournament:url-a", "table:url-b"]
    fan = token("fan")
    with watched(tmp_path) as (server, proxy, page):
        page.evaluate(FOLLOW, [channels, fan, {**WS, "subscribeInUrl": in_url}])
        wait_for(page, "window.subscribed.length === 2", 10)
        ticks(server, channels, range(1, 4))
        wait_for(page, has(channels, 3), 10)
        cut_off_and_restart(page, proxy, server)
        epochs = ticks(server, channels, range(4, 7))  # missed
        proxy.unblock()
        wait_for(page, connected(2), 30)
        ticks(server, channels, range(7, 8))  # live: after the replay, on the same socket
        wait_for(page, has(channels, 7), 10)
        got = page.evaluate("window.got")
        subscribed = page.evaluate("window.subscribed")
        resets = page.evaluate("window.resets")
    for channel in channels:
        assert got[channel] == [[n, n] for n in range(1, 8)], channel
    assert resets == []
    assert sorted(subscribed[2:]) == sorted([c, True, True] for c in channels)
    first, again = proxy.upgrades_to("/ws")  # the attempts while cut off never reached it
    since = [(c, {"offset": 3, "epoch": epochs[c]}) for c in channels]
    if in_url:
        assert first.query == [("token", fan), ("channel", channels[0]), ("channel", channels[1])]
        assert again.query == [
            ("token", fan),
            *(pair for c in channels for pair in [("channel", c), ("since", f"3.{epochs[c]}")]),
        ]
        assert kinds(first) == kinds(again) == []
    else:
        assert again.query == []
        assert kinds(again) == ["auth", "subscribe", "subscribe"]
        assert [(m["channel"], m["since"]) for m in again.sent[1:3]] == since


def test_a_channel_refused_at_reconnect_fails_only_itself(tmp_path: Path) -> None:
    """The server comes back with a rule the token no longer meets for one of the page's
    channels: that subscription gets its `error` and ends; the other resumes, and the
    connection stays."""
    vip, open_ = "match:url-vip", "tournament:url-open"
    stricter = tmp_path / "stricter.toml"
    stricter.write_text('[namespaces.match]\nsubscribe = "grant"\n')
    with watched(tmp_path) as (server, proxy, page):
        page.evaluate(FOLLOW, [[vip, open_], token("fan"), WS])
        wait_for(page, "window.subscribed.length === 2", 10)
        ticks(server, [vip, open_], range(1, 3))
        wait_for(page, has([vip, open_], 2), 10)
        proxy.block()
        wait_for(page, "window.states.some((s) => s[0] === 'reconnecting')", 10)
        server.config = stricter
        server.restart()
        ticks(server, [vip, open_], range(3, 5))
        proxy.unblock()
        wait_for(page, "window.errors.length === 1", 30)
        ticks(server, [open_], range(5, 6))
        wait_for(page, has([open_], 5), 10)
        errors = page.evaluate("window.errors")
        followed = page.evaluate("[...window.client.subscriptions.keys()]")
        active = page.evaluate(f"window.client.subscribe({open_!r}).active")
        got = page.evaluate("window.got")
        states = page.evaluate("window.states")
    assert errors == [[vip, "forbidden"]]
    assert followed == [open_]
    assert active is True
    assert got[open_] == [[n, n] for n in range(1, 6)]
    assert got[vip] == [[1, 1], [2, 2]]
    assert [s for s, _ in states].count("connected") == 2, states  # no reconnect over it
    again = proxy.upgrades_to("/ws")[-1]
    assert ("channel", vip) in again.query  # refused as a URL subscription, by its name
    assert kinds(again) == []


def test_a_token_that_runs_out_while_cut_off_is_refreshed_before_the_reconnect(
    tmp_path: Path,
) -> None:
    """The token in the connect URL is checked at the upgrade, so the SDK must not put one
    there that has run out: it asks for a fresh one first."""
    channel = "tournament:url-token"
    fresh: list[str] = []

    def fresh_token() -> str:
        fresh.append(token("fan", ttl=120))
        return fresh[-1]

    with watched(tmp_path) as (server, proxy, page):
        page.expose_function("freshToken", fresh_token)
        ttl = 4
        short, runs_out = token("fan", ttl=ttl), time.time() + ttl
        page.evaluate(FOLLOW, [[channel], short, {**WS, "refresh": "freshToken"}])
        wait_for(page, "window.subscribed.length === 1", 10)
        ticks(server, [channel], range(1, 2))
        wait_for(page, has([channel], 1), 10)
        proxy.block()
        # Until the server would refuse the first token: past its expiry and the 5 s the
        # server allows for clock skew. (Waiting through Playwright lets it answer the
        # page's calls to freshToken meanwhile.)
        page.wait_for_timeout(max(0.0, runs_out + 5 + 1 - time.time()) * 1000)
        ticks(server, [channel], range(2, 4))
        proxy.unblock()
        wait_for(page, connected(2), 30)
        ticks(server, [channel], range(4, 5))
        wait_for(page, has([channel], 4), 10)
        got = page.evaluate(f"window.got[{channel!r}]")
        errors = page.evaluate("window.errors")
    first, again = proxy.upgrades_to("/ws")
    assert dict(first.query)["token"] == short
    assert fresh, "the token was never refreshed"
    assert dict(again.query)["token"] in fresh
    assert kinds(again) == []
    assert errors == []
    assert got == [[n, n] for n in range(1, 5)]


def test_a_url_the_server_refuses_falls_back_to_messages_at_once(tmp_path: Path) -> None:
    """A server that allows fewer subscriptions per connection than the page follows refuses
    that connect URL before the upgrade (400), which a page cannot read: the same attempt
    connects with the bare URL and subscribes by message, and only the channel over the
    limit fails."""
    config = tmp_path / "croupier.toml"
    config.write_text("[limits]\nmax_subscriptions = 2\n")
    channels = ["tournament:url-1", "tournament:url-2", "tournament:url-3"]
    with watched(tmp_path, config=config) as (server, proxy, page):
        page.evaluate(FOLLOW, [channels, token("fan"), WS])
        wait_for(page, "window.subscribed.length === 2 && window.errors.length === 1", 20)
        ticks(server, channels[:2], range(1, 2))
        wait_for(page, has(channels[:2], 1), 10)
        errors = page.evaluate("window.errors")
        states = page.evaluate("window.states")
    refused, bare = proxy.upgrades_to("/ws")
    assert [v for k, v in refused.query if k == "channel"] == channels
    assert kinds(refused) == []
    assert bare.query == []
    assert kinds(bare) == ["auth", "subscribe", "subscribe", "subscribe"]
    assert errors == [[channels[2], "too_many_subscriptions"]]
    assert [s for s, _ in states] == ["connecting", "connected"]


def test_channels_past_the_url_budget_resume_by_message(tmp_path: Path) -> None:
    """Twenty channels with long names make more than 4 KB of query: the first ones that fit
    resume in the URL, the rest by message, and every one gets exactly what it missed."""
    channels = [f"room:{i:02d}-" + "x" * 240 for i in range(20)]
    with watched(tmp_path) as (server, proxy, page):
        page.evaluate(FOLLOW, [channels, token("fan"), WS])
        wait_for(page, "window.subscribed.length === 20", 20)
        ticks(server, channels, range(1, 2))
        wait_for(page, has(channels, 1), 10)
        cut_off_and_restart(page, proxy, server)
        epochs = ticks(server, channels, range(2, 3))
        proxy.unblock()
        wait_for(page, connected(2), 30)
        ticks(server, channels, range(3, 4))
        wait_for(page, has(channels, 3), 20)
        got = page.evaluate("window.got")
        resets = page.evaluate("window.resets")
    again = proxy.upgrades_to("/ws")[-1]
    named = [v for k, v in again.query if k == "channel"]
    assert 0 < len(named) < len(channels)
    assert named == channels[: len(named)]  # in the order subscribed
    assert [v for k, v in again.query if k == "since"] == [f"1.{epochs[c]}" for c in named]
    assert len(again.target.partition("?")[2]) <= 4096 + 1000  # the budget, plus the token
    messages = [m for m in again.sent if m["type"] == "subscribe"]
    assert [(m["channel"], m["since"]["offset"]) for m in messages] == [
        (c, 1) for c in channels[len(named) :]
    ]
    assert "auth" not in kinds(again)  # the token went in the URL with the channels
    assert resets == []
    for channel in channels:
        assert got[channel] == [[1, 1], [2, 2], [3, 3]], channel

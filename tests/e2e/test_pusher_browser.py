"""pusher-js and Laravel Echo in Chromium against Croupier's Pusher protocol (issue 20).

The page is served by the test's backend (whose ``/broadcasting/auth`` signs with the PyPI
SDK, as Laravel's does); the browser builds are the npm packages' own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess, running_server

from .browser import chromium, wait_for
from .pusherjs import CONFIG, KEY, Backend, node_or_skip, sdk
from .wsclient import write_config

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<meta charset="utf-8">
<script src="/node_modules/pusher-js/dist/web/pusher.min.js"></script>
<script src="/node_modules/laravel-echo/dist/echo.iife.js"></script>
<script>window.seen = []; window.note = (doc) => window.seen.push(doc);</script>
"""

# pusher-js alone: subscribe, record every event of every channel.
PUSHER = """([port, key, user]) => {
  const pusher = new Pusher(key, {
    wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"],
    cluster: "unused", disableStats: true,
    channelAuthorization: {endpoint: "/broadcasting/auth", transport: "ajax", params: {user}},
  });
  window.client = pusher;
  pusher.connection.bind("connected", () => note({kind: "connected"}));
  window.sub = (name) => pusher.subscribe(name).bind_global((event, data) => {
    if (event === "pusher:subscription_succeeded" && name.startsWith("presence-")) {
      data = {count: data.count, ids: Object.keys(data.members).sort()};
    }
    note({kind: "event", channel: name, event, data});
  });
}"""

# Laravel Echo on pusher-js, as a Laravel page sets it up.
ECHO = """([port, key, user]) => {
  window.echo = new Echo.default({
    broadcaster: "pusher", key, cluster: "mt1", wsHost: "127.0.0.1", wsPort: port,
    forceTLS: false, enabledTransports: ["ws"], disableStats: true,
    authEndpoint: "/broadcasting/auth", auth: {params: {user}},
  });
  window.echo.connector.pusher.connection.bind("connected", () => note({kind: "connected"}));
}"""


def seen(page: Any, match: str) -> Any:
    """The first note for which the JavaScript predicate ``match`` (on ``d``) holds."""
    expression = f"window.seen.find((d) => {match})"
    wait_for(page, f"() => !!({expression})", 20)
    return page.evaluate(f"() => {expression}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    node_or_skip()  # the browser builds come from the same npm install
    config = write_config(tmp_path / "croupier.toml", CONFIG)
    with running_server(tmp_path, config=config) as srv:
        yield srv


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend() as b:
        b.pages["/"] = PAGE
        yield b


def open_page(browser: Any, backend: Backend, server: ServerProcess, script: str, user: str) -> Any:
    page = browser.new_page()
    page.goto(backend.origin + "/")
    page.evaluate(script, [server.port, KEY, user])
    seen(page, 'd.kind === "connected"')
    return page


def test_pusher_js_in_chromium_public_private_presence(
    server: ServerProcess, backend: Backend
) -> None:
    with chromium() as browser:
        ann = open_page(browser, backend, server, PUSHER, "ann")
        bob = open_page(browser, backend, server, PUSHER, "bob")
        for page in (ann, bob):
            for name in ("orders", "private-tournament-42", "presence-lobby"):
                page.evaluate("(name) => sub(name)", name)
        for name in ("orders", "private-tournament-42"):
            seen(bob, f'd.event === "pusher:subscription_succeeded" && d.channel === "{name}"')
        joined = seen(
            bob,
            'd.event === "pusher:subscription_succeeded" && d.channel === "presence-lobby"'
            " && d.data.count === 2",
        )
        assert joined["data"]["ids"] == ["ann", "bob"]
        client = sdk(server)
        client.trigger(["orders", "private-tournament-42"], "score", {"points": 3})
        for page in (ann, bob):
            for name in ("orders", "private-tournament-42"):
                got = seen(page, f'd.event === "score" && d.channel === "{name}"')
                assert got["data"] == {"points": 3}
        # The browser's client events reach the other browser.
        ann.evaluate(
            """() => client.channel("presence-lobby").trigger("client-wave", {from: "ann"})"""
        )
        wave = seen(bob, 'd.event === "client-wave"')
        assert wave["data"] == {"from": "ann"}


def test_laravel_echo_in_chromium(server: ServerProcess, backend: Backend) -> None:
    with chromium() as browser:
        ann = open_page(browser, backend, server, ECHO, "ann")
        bob = open_page(browser, backend, server, ECHO, "bob")
        listen = """() => {
          echo.channel("orders").listen(".order.paid", (e) => note({kind: "paid", e}));
          echo.private("orders.1").listen("OrderShipped", (e) => note({kind: "shipped", e}))
            .listenForWhisper("typing", (e) => note({kind: "typing", e}));
          echo.join("table.7")
            .here((users) => note({kind: "here", users: users.map((u) => u.name).sort()}))
            .joining((user) => note({kind: "joining", user: user.name}))
            .leaving((user) => note({kind: "leaving", user: user.name}))
            .error((error) => note({kind: "presence-error", error}));
        }"""
        ann.evaluate(listen)
        seen(ann, 'd.kind === "here"')
        bob.evaluate(listen)
        here = seen(bob, 'd.kind === "here"')
        assert here["users"] == ["Ann", "Bob"]
        assert seen(ann, 'd.kind === "joining"')["user"] == "Bob"
        wait_for(bob, "() => echo.connector.channels['private-orders.1'].subscribed", 20)
        wait_for(ann, "() => echo.connector.channels['private-orders.1'].subscribed", 20)
        client = sdk(server)
        # What Laravel's broadcaster sends: the event's class name, its public properties.
        client.trigger(["private-orders.1"], "App\\Events\\OrderShipped", {"order": {"id": 1}})
        client.trigger(["orders"], "order.paid", {"id": 9})
        for page in (ann, bob):
            assert seen(page, 'd.kind === "shipped"')["e"] == {"order": {"id": 1}}
            assert seen(page, 'd.kind === "paid"')["e"] == {"id": 9}
        bob.evaluate("""() => echo.private("orders.1").whisper("typing", {name: "Bob"})""")
        assert seen(ann, 'd.kind === "typing"')["e"] == {"name": "Bob"}
        bob.close()
        assert seen(ann, 'd.kind === "leaving"')["user"] == "Bob"

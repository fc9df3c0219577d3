"""The browser SDK in real Chromium: resume across server restarts, SSE fallback, the queue.

Each page is opened on the server it talks to (or on the proxy in front of it) and loads
the SDK the server serves, ``/sdk/croupier.js``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import FOLLOW, NoUpgradeProxy, Publisher, chromium, publish, wait_for
from tests.support import ServerProcess, running_server, timeout, token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TOTAL = 60


def _counts(channels: list[str]) -> str:
    return " && ".join(f"window.got[{c!r}].length >= {{n}}" for c in channels)


def _run_restarts(page: Any, server: ServerProcess, channels: list[str]) -> Publisher:
    """Publish TOTAL events per channel while the server stops gracefully, then crashes.

    Returns once the page has every event and has connected a third time.
    """
    publisher = Publisher(server, channels, TOTAL, interval=0.05)
    publisher.start()
    done = _counts(channels)
    connected = "window.states.filter((s) => s[0] === 'connected').length >= {n}"
    wait_for(page, done.format(n=15), 20)
    server.stop()  # graceful: clients are told to reconnect
    server.start()
    wait_for(page, connected.format(n=2), 30)
    wait_for(page, done.format(n=30), 30)
    server.restart()  # a crash: connections just drop
    wait_for(page, connected.format(n=3), 30)
    publisher.join(timeout(60))
    assert publisher.error is None, publisher.error
    assert publisher.sent == TOTAL
    wait_for(page, done.format(n=TOTAL), 30)
    return publisher


def _exactly_once(got: dict[str, list[list[int]]]) -> None:
    for channel, events in got.items():
        assert [n for n, _ in events] == list(range(1, TOTAL + 1)), channel
        assert [offset for _, offset in events] == list(range(1, TOTAL + 1)), channel


def test_sdk_resumes_without_loss_after_restarts(tmp_path: Path) -> None:
    channels = ["tournament:sdk"]
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.evaluate(FOLLOW, [channels, token("fan"), {"transport": "websocket"}])
        wait_for(page, "window.subscribed.length === 1", 10)
        publisher = _run_restarts(page, server, channels)
        time.sleep(timeout(0.3))  # a duplicate would show up now
        got = page.evaluate("window.got")
        states = page.evaluate("window.states")
        resets = page.evaluate("window.resets")
        publisher.stop.set()
    _exactly_once(got)
    assert resets == []
    assert [s for s, _ in states].count("connected") >= 3, states  # it reconnected twice
    assert all(t == "websocket" for s, t in states if s == "connected")


def test_sdk_surfaces_lost_history_as_reset(tmp_path: Path) -> None:
    """A server that comes back without the channel's history: recovered false, reset."""
    channel = "tournament:gone"
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.evaluate(FOLLOW, [[channel], token("fan"), {"transport": "websocket"}])
        wait_for(page, "window.subscribed.length === 1", 10)
        for n in (1, 2, 3):
            publish(server, channel, "t.tick", {"n": n})
        wait_for(page, f"window.got[{channel!r}].length === 3", 10)
        server.kill()
        for suffix in ("", "-wal", "-shm"):
            Path(str(server.db) + suffix).unlink(missing_ok=True)
        server.start()
        wait_for(page, "window.resets.length === 1", 30)
        publish(server, channel, "t.tick", {"n": 4})
        wait_for(page, f"window.got[{channel!r}].length === 4", 10)
        resets = page.evaluate("window.resets")
        got = page.evaluate(f"window.got[{channel!r}]")
    assert resets[0][0] == channel
    assert resets[0][1] is False
    assert got[-1] == [4, 1]  # the new history's first event, delivered after the reset


@contextlib.contextmanager
def behind_proxy(tmp_path: Path) -> Iterator[tuple[ServerProcess, NoUpgradeProxy, Any]]:
    """A server, a proxy in front of it that refuses WebSocket upgrades, and a page opened
    on the proxy."""
    with (
        running_server(tmp_path) as server,
        NoUpgradeProxy(server.port) as proxy,
        chromium() as browser,
    ):
        page = browser.new_page()
        page.goto(proxy.url + "/healthz")
        yield server, proxy, page


def test_sdk_falls_back_to_sse_when_websocket_is_refused(tmp_path: Path) -> None:
    """Behind a proxy that refuses upgrades the SDK streams over SSE, two channels at once,
    and resumes both across restarts with the server's multi-channel cursor."""
    channels = ["tournament:sse-a", "tournament:sse-b"]
    with behind_proxy(tmp_path) as (server, proxy, page):
        page.evaluate(FOLLOW, [channels, token("fan"), {}])
        wait_for(page, "window.client.transport === 'sse'", 20)
        refused = proxy.refused
        publisher = _run_restarts(page, server, channels)
        time.sleep(timeout(0.3))
        got = page.evaluate("window.got")
        states = page.evaluate("window.states")
        # On SSE a publish waits in the queue for a WebSocket (see the next test).
        queued = page.evaluate(
            "window.client.publish('match:x', 'reaction', {emoji: 'x'}); window.client.queue.length"
        )
        publisher.stop.set()
    assert refused >= 2  # the WebSocket really was tried and refused
    _exactly_once(got)
    assert any(s == "connected" and t == "sse" for s, t in states)
    assert queued == 1


# A client with the SDK's defaults (transport "auto") that records what becomes of every
# message it publishes, and every drop.
SENDER = """
async ([token]) => {
  const { Client } = await import("/sdk/croupier.js");
  window.results = {};
  window.dropped = [];
  window.fallbacks = 0;
  window.states = [];
  const client = new Client({
    token, backoff: { initial: 200, max: 1000 },
    onDrop: (message, reason) => window.dropped.push([message.data.n, reason]),
  });
  window.client = client;
  client.on("fallback", () => { window.fallbacks += 1; });
  client.on("state", (s) => window.states.push([s.state, s.transport || client.transport]));
  window.send = (n) => client.publish("room:q", "chat.message", { text: `m${n}`, n }).then(
    () => { window.results[n] = "ok"; }, (e) => { window.results[n] = e.code; });
  client.connect();
}
"""


def test_queued_messages_survive_a_fallback_to_sse_and_back(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (_, proxy, page):
        page.evaluate(SENDER, [token("sender")])
        page.evaluate("window.client.subscribe('room:q')")
        wait_for(page, "window.client.transport === 'sse'", 20)
        page.evaluate("[1, 2, 3].forEach((n) => window.send(n))")
        assert page.evaluate("window.client.queue.length") == 3
        proxy.refusing = False  # the WebSocket works again
        wait_for(page, "Object.keys(window.results).length === 3", 30)
        results = page.evaluate("window.results")
        dropped = page.evaluate("window.dropped")
        transport = page.evaluate("window.client.transport")
    assert results == {"1": "ok", "2": "ok", "3": "ok"}
    assert dropped == []
    assert transport == "websocket"


def test_queued_messages_survive_a_full_server_restart_with_the_default_transport(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.evaluate(SENDER, [token("sender")])
        wait_for(page, "window.client.transport === 'websocket'", 10)
        server.stop()
        wait_for(page, "window.states.some((s) => s[0] === 'reconnecting')", 10)
        page.evaluate("[1, 2, 3, 4, 5].forEach((n) => window.send(n))")
        # With the server down the WebSocket is refused, and "auto" falls back to SSE: the
        # queue must outlive that.
        wait_for(page, "window.fallbacks >= 1", 30)
        server.start()
        wait_for(page, "Object.keys(window.results).length === 5", 60)
        results = page.evaluate("window.results")
        dropped = page.evaluate("window.dropped")
        transport = page.evaluate("window.client.transport")
    assert results == {str(n): "ok" for n in range(1, 6)}
    assert dropped == []
    assert transport == "websocket"


QUEUE = """
async ([token]) => {
  const { Client } = await import("/sdk/croupier.js");
  window.dropped = [];
  const client = new Client({
    token, queueSize: 3, onDrop: (message, reason) => window.dropped.push([message.data.n, reason]),
  });
  window.client = client;
  // Offline (not connected yet): five messages, room for three.
  window.results = [1, 2, 3, 4, 5].map((n) =>
    client.publish("room:q", "chat.message", { text: `m${n}`, n }).then(
      () => "ok", (e) => e.code));
  window.queued = client.queue.map((item) => item.message.data.n);
}
"""


def test_offline_queue_keeps_the_newest_and_sends_them_on_connect(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        # A second client watches the room and sees what the first one sends.
        page.evaluate(
            """async ([token]) => {
              const { Client } = await import("/sdk/croupier.js");
              window.seen = [];
              const watcher = new Client({ token });
              watcher.subscribe("room:q").on("chat.message", (d) => window.seen.push(d.n));
              await new Promise((ok) => watcher.subscribe("room:q").on("subscribed", ok));
            }""",
            [token("watcher")],
        )
        page.evaluate(QUEUE, [token("sender")])
        assert page.evaluate("window.queued") == [3, 4, 5]
        assert page.evaluate("window.dropped") == [[1, "overflow"], [2, "overflow"]]
        page.evaluate("window.client.connect()")
        wait_for(page, "window.seen.length === 3", 15)
        results = page.evaluate("Promise.all(window.results)")
        seen = page.evaluate("window.seen")
    assert seen == [3, 4, 5]
    assert results == ["overflow", "overflow", "ok", "ok", "ok"]


def test_sdk_is_served_as_module_and_classic_script(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, chromium() as browser:
        module = httpx.get(server.url + "/sdk/croupier.js", timeout=timeout(5))
        assert module.headers["content-type"].startswith("text/javascript")
        assert module.headers["access-control-allow-origin"] == "*"
        again = httpx.get(
            server.url + "/sdk/croupier.js",
            headers={"If-None-Match": module.headers["etag"]},
            timeout=timeout(5),
        )
        assert again.status_code == 304
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.add_script_tag(url="/sdk/croupier.classic.js")
        names = page.evaluate("Object.keys(window.Croupier).sort()")
        delays = page.evaluate(
            "[0, 1, 2, 3, 4, 5, 9].map((a) => window.Croupier.backoffDelay(a, {}, () => 0))"
        )
        jittered = page.evaluate("window.Croupier.backoffDelay(0, {}, () => 0.999)")
    assert {"Client", "GameBridge", "CasinoBridge", "backoffDelay"} <= set(names)
    assert delays == [1000, 2000, 4000, 8000, 16000, 30000, 30000]
    assert 500 <= jittered < 1000


def test_sdk_pings_and_refreshes_its_token_before_it_expires(tmp_path: Path) -> None:
    """A server that closes silent connections after 2 s and a token good for 4 s: the SDK
    pings on the server's interval and swaps in a fresh token, so the connection lives."""
    config = tmp_path / "croupier.toml"
    config.write_text("[limits]\nping_interval = 1\n")
    refreshed: list[str] = []

    def fresh_token() -> str:
        refreshed.append("yes")
        return token("fan", ttl=60)

    with running_server(tmp_path, config=config) as server, chromium() as browser:
        page = browser.new_page()
        page.goto(server.url + "/healthz")
        page.expose_function("freshToken", fresh_token)
        page.evaluate(
            """async ([token]) => {
              const { Client } = await import("/sdk/croupier.js");
              window.states = [];
              window.got = [];
              const client = new Client({ token, refreshToken: () => window.freshToken() });
              client.on("state", (s) => window.states.push(s.state));
              client.on("disconnect", (m) => window.states.push(m.code));
              const sub = client.subscribe("tournament:alive");
              sub.on("t.tick", (d) => window.got.push(d.n));
              await new Promise((ok) => sub.on("subscribed", ok));
            }""",
            [token("fan", ttl=4)],
        )
        # Past the first token's expiry and many idle timeouts. (Waiting through Playwright
        # lets it answer the page's calls to freshToken meanwhile.)
        page.wait_for_timeout((timeout(2) + 5) * 1000)
        publish(server, "tournament:alive", "t.tick", {"n": 1})
        wait_for(page, "window.got.length === 1", 10)
        states = page.evaluate("window.states")
    assert refreshed, states
    assert states == ["connecting", "connected"], states  # never dropped

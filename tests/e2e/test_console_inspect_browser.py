"""The console's debugging views in real Chromium: the live log, the connection and channel
inspectors, and the webhooks page, each against a real server, with no console errors.

The "player" in these tests is a second page running the browser SDK, as a casino page
would, so what it receives is what a player's browser receives.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.browser import chromium, publish, wait_for
from tests.support import API_KEY, ServerProcess, free_port, running_server, timeout
from tests.support import token as token_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@contextlib.contextmanager
def console(server: ServerProcess) -> Iterator[tuple[Any, Any, list[str]]]:
    """The signed-in console page, a blank page for the player, and the errors both log."""
    errors: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        player = browser.new_page()
        for p in (page, player):
            p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            p.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.locator("#signin").wait_for(state="visible", timeout=timeout(10) * 1000)
        page.fill("#key", API_KEY)
        page.click("#signin button")
        wait_for(page, "document.getElementById('state').textContent === 'connected'", 15)
        player.set_content("<!doctype html><link rel=icon href='data:,'><title>player</title>")
        yield page, player, errors


def connect_player(player: Any, server: ServerProcess, token: str, channel: str) -> None:
    """Connect the player page with the SDK, subscribe to ``channel``, and keep what comes."""
    player.evaluate(
        """async ([url, token, channel]) => {
            const { Client } = await import(url + "/sdk/croupier.js");
            window.got = [];
            const client = new Client({ url, token });
            window.client = client;
            client.on("disconnect", (m) => window.got.push(m));
            const sub = client.subscribe(channel);
            sub.on("*", (data, event) => window.got.push(event));
            sub.on("subscribed", () => (window.subscribed = true));
            client.connect();
        }""",
        [server.url, token, channel],
    )
    wait_for(player, "window.subscribed === true", 15)


def open_view(page: Any, view: str) -> None:
    page.click(f'#views [data-view="{view}"]')
    wait_for(page, f"document.body.dataset.view === '{view}'", 5)


def log_has(page: Any, kind: str, text: str, seconds: float = 10) -> None:
    wait_for(
        page,
        """([kind, text]) => [...document.querySelectorAll(`#log-rows tr[data-kind="${kind}"]`)]
            .some((row) => row.textContent.includes(text))""",
        seconds,
        [kind, text],
    )


def test_a_players_connection_is_found_disconnected_and_both_are_in_the_log(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server, console(server) as (page, player, errors):
        open_view(page, "log")
        wait_for(page, "document.body.dataset.log === 'live'", 10)
        assert "200 records/s" in page.inner_text("#log-sampling")
        connect_player(player, server, token_for("p-debug", brand="1001"), "tournament:debug")
        # The SDK's token went in the connect URL with the channel: the player is known
        # from the connection's first record.
        log_has(page, "connection.opened", "p-debug")
        log_has(page, "subscribed", "tournament:debug")

        open_view(page, "connections")
        page.fill("#connection-player", "p-debug")
        page.click("#connection-search button[type=submit]")
        wait_for(page, "document.querySelectorAll('#connection-rows tr').length === 1", 10)
        row = page.locator("#connection-rows tr").first
        assert "tournament:debug" in row.inner_text()
        assert "websocket" in row.inner_text()
        client = row.get_attribute("data-client")
        page.fill("#disconnect-reason", "support_ticket_42")
        page.uncheck("#disconnect-reconnect")
        row.locator("button", has_text="Disconnect").click()
        wait_for(page, "document.querySelectorAll('#connection-rows tr').length === 0", 10)

        # The player's page is told why, and that it should not come back.
        wait_for(player, "window.got.some((m) => m.type === 'disconnect')", 10)
        told = player.evaluate("window.got.find((m) => m.type === 'disconnect')")
        assert told["code"] == "support_ticket_42"
        assert told["reconnect"] is False

        open_view(page, "log")
        page.fill("#log-player", "p-debug")
        log_has(page, "disconnect.requested", "support_ticket_42")
        log_has(page, "connection.closed", "support_ticket_42")
        assert client is not None
        assert client in page.inner_text("#log-rows")
        assert API_KEY not in page.content()
        assert errors == []


def test_a_channels_history_and_a_test_event_the_log_and_a_subscriber_see(
    tmp_path: Path,
) -> None:
    channel = "tournament:history-1"
    with running_server(tmp_path) as server:
        for n in range(1, 31):
            publish(server, channel, "t.tick", {"n": n})
        publish(server, "room:elsewhere", "t.tick", {})
        with console(server) as (page, player, errors):
            connect_player(player, server, token_for("p-watch"), channel)
            open_view(page, "log")
            wait_for(page, "document.body.dataset.log === 'live'", 10)

            open_view(page, "channels")
            page.fill("#channel-query", "history")
            page.click("#channel-search button[type=submit]")
            wait_for(page, "document.querySelectorAll('#channel-list tr').length === 1", 10)
            page.click(f'#channel-list tr[data-channel="{channel}"] button')
            wait_for(page, "document.querySelector('#history-rows tr[data-offset=\"30\"]')", 10)
            assert page.inner_text("#channel-name") == channel
            assert "offset 30" in page.inner_text("#channel-summary")
            assert "1" in page.inner_text("#channel-nodes")
            offsets = page.eval_on_selector_all(
                "#history-rows tr", "rows => rows.map(r => Number(r.dataset.offset))"
            )
            assert offsets == list(range(11, 31))
            page.click("#history-older")
            wait_for(page, "document.querySelector('#history-rows tr[data-offset=\"1\"]')", 10)
            assert '{"n":1}' in page.inner_text("#history-rows tr:first-child")

            page.fill("#publish-type", "console.test")
            page.fill("#publish-data", '{"from": "the console"}')
            page.click("#publish-form button[type=submit]")
            wait_for(
                page, "document.getElementById('publish-result').textContent.includes('31')", 10
            )
            wait_for(player, "window.got.some((e) => e.type === 'console.test')", 10)
            seen = player.evaluate("window.got.find((e) => e.type === 'console.test')")
            assert seen["data"] == {"from": "the console"}
            assert seen["offset"] == 31

            open_view(page, "log")
            log_has(page, "published", "console:env-0")
            row = page.locator('#log-rows tr[data-kind="published"]', has_text="console.test")
            assert channel in row.first.inner_text()
            assert errors == []


class FlakyReceiver:
    """A webhook receiver on loopback that answers ``status`` and keeps what it got."""

    def __init__(self) -> None:
        self.status = 500
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.status == 200:
                    receiver.received.append(orjson.loads(body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?token=do-not-show"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_dead_letter_is_redelivered_from_the_webhooks_page(tmp_path: Path) -> None:
    receiver = FlakyReceiver()
    env = {"CROUPIER_WEBHOOK_MAX_ATTEMPTS": "1"}
    try:
        with running_server(tmp_path, env=env) as server:
            r = httpx.post(
                server.url + "/api/v1/webhooks",
                json={"url": receiver.url, "event_types": ["bonus.granted"], "description": "crm"},
                headers=server.headers,
                timeout=timeout(10),
            )
            assert r.status_code == 200, r.text
            endpoint = r.json()["id"]
            secret = r.json()["secret"]
            with console(server) as (page, _, errors):
                open_view(page, "log")
                wait_for(page, "document.body.dataset.log === 'live'", 10)
                publish(server, "player:1001:p1", "bonus.granted", {"amount": 5})
                log_has(page, "webhook.failed", "HTTP 500")

                open_view(page, "webhooks")
                page.click(f'#webhook-rows tr[data-endpoint="{endpoint}"] button')
                wait_for(page, "document.querySelectorAll('#dead-rows tr').length === 1", 10)
                assert "HTTP 500" in page.inner_text("#dead-rows")
                assert "do-not-show" not in page.inner_text("#view-webhooks")
                receiver.status = 200
                page.click("#dead-rows tr button")
                wait_for(page, "document.querySelectorAll('#dead-rows tr').length === 0", 10)
                assert "redelivered 1" in page.inner_text("#webhook-status")

                open_view(page, "log")
                log_has(page, "webhook.delivered", endpoint)
                assert [d["type"] for d in receiver.received] == ["bonus.granted"]
                assert secret not in page.content()
                assert errors == []
    finally:
        receiver.close()

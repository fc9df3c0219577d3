"""The operator console in real Chromium: it signs in, and its panels follow the server.

Everything the panels show is published here through the HTTP API, in the shapes the
services use, while the page is watched for console errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.browser import chromium, publish, wait_for
from tests.support import API_KEY, ServerProcess, running_server, timeout
from tests.support import token as token_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _post(server: ServerProcess, path: str, body: Any) -> Any:
    r = httpx.post(
        server.url + path,
        content=orjson.dumps(body),
        headers=server.headers,
        timeout=timeout(10),
    )
    assert r.status_code == 200, r.text
    return r.json()


def _text(page: Any, selector: str) -> str:
    text: str = page.locator(selector).inner_text()
    return text


def test_console_signs_in_and_its_panels_update(tmp_path: Path) -> None:
    errors: list[str] = []
    with running_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")

        # Not a demo server: the operator pastes a key; a wrong one is refused.
        page.locator("#signin").wait_for(state="visible", timeout=timeout(10) * 1000)
        page.fill("#key", "not-a-key")
        page.click("#signin button")
        wait_for(page, "document.getElementById('signin-error').textContent !== ''", 10)
        errors.clear()  # the browser logs the refused request's 401 itself
        page.fill("#key", API_KEY)
        page.click("#signin button")
        wait_for(page, "document.getElementById('state').textContent === 'connected'", 15)
        assert page.evaluate("sessionStorage.getItem('croupier.apiKey')") == API_KEY
        for panel in ("tournament", "match", "player"):
            wait_for(page, f"document.getElementById('{panel}-panel').dataset.live", 15)

        # Nodes: this server, with the console's own two connections.
        wait_for(
            page, f"document.getElementById('nodes').textContent.includes('{server.port}')", 10
        )
        wait_for(page, "Number(document.getElementById('total-connections').textContent) >= 2", 10)

        # A tournament's leaderboard, from score updates and then a full board.
        score = {"tournamentId": "demo", "round": 1}
        publish(
            server,
            "tournament:demo",
            "player.score.updated",
            {**score, "playerId": "p-ann", "score": 100, "position": 2},
        )
        publish(
            server,
            "tournament:demo",
            "player.score.updated",
            {**score, "playerId": "p-bob", "score": 250, "position": 1},
        )
        wait_for(page, "document.querySelectorAll('#leaderboard tr').length === 2", 10)
        assert _text(page, "#leaderboard tr:first-child").split("\t")[1] == "p-bob"
        board = [
            {"position": 1, "playerId": "p-ann", "displayName": "Ann", "score": 900},
            {"position": 2, "playerId": "p-bob", "displayName": "Bob", "score": 250},
            {"position": 3, "playerId": "p-cy", "displayName": "Cy", "score": 10},
        ]
        publish(
            server,
            "tournament:demo",
            "leaderboard.updated",
            {"tournamentId": "demo", "leaderboard": board, "lastUpdated": "2026-01-01T00:00:00Z"},
        )
        wait_for(page, "document.querySelectorAll('#leaderboard tr').length === 3", 10)
        assert _text(page, "#leaderboard tr:first-child").split("\t")[1] == "Ann"

        # A match: a score update, a reactions summary and the viewer count.
        publish(
            server,
            "match:demo",
            "score.updated",
            {
                "eventId": "demo",
                "sport": "cricket",
                "seq": 1,
                "update": {"over": 0, "ball": 1, "runs": 4},
                "snapshot": {"runs": 4, "wickets": 0, "overs": "0.1"},
            },
        )
        publish(
            server,
            "match:demo",
            "reactions.summary",
            {
                "eventId": "demo",
                "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:01Z"},
                "total": 15,
                "counts": {"🔥": 12, "👏": 3},
                "samples": [{"id": "v1", "emoji": "🔥", "comment": "what a shot"}],
            },
            ephemeral=True,
        )
        publish(
            server,
            "match:demo",
            "viewers.count",
            {"eventId": "demo", "viewers": 42, "peak": 57},
            ephemeral=True,
        )
        wait_for(page, "document.getElementById('viewers').textContent === '42'", 10)
        wait_for(page, "document.getElementById('reactions').dataset.total === '15'", 10)
        wait_for(page, "document.getElementById('match-updates').children.length === 1", 10)
        assert "runs4" in _text(page, "#scoreboard").replace(" ", "").replace("\n", "")
        assert _text(page, "#viewers-peak") == "57"
        assert "🔥 12" in _text(page, "#reactions")
        assert "what a shot" in _text(page, "#reaction-samples")

        # The player's notification centre: a notification and a coin balance arrive.
        _post(
            server,
            "/api/v1/players/1001/p1/notifications",
            {
                "message_id": "3c2f7a1e-0000-4000-8000-000000000001",
                "event": "bonus_granted",
                "event_details": {"amount": 5},
            },
        )
        _post(
            server,
            "/api/v1/players/1001/p1/coins/earn",
            {"amount": 500, "idempotency_key": "earn-1"},
        )
        wait_for(page, "document.querySelectorAll('#notifications li').length === 1", 10)
        wait_for(page, "document.getElementById('unread').textContent === '1'", 10)
        wait_for(page, "document.getElementById('coins').textContent === '500'", 10)
        page.click("#mark-read")
        wait_for(page, "document.getElementById('unread').textContent === '0'", 10)

        # Channels with their subscribers, and the rate chart drawn from the samples.
        wait_for(page, "document.getElementById('channels').textContent.includes('match:demo')", 10)
        wait_for(page, "Number(document.getElementById('rates').dataset.points) >= 2", 15)
        page.screenshot(path=str(tmp_path / "console.png"))
    assert errors == []


def test_console_lists_every_node_of_a_cluster(tmp_path: Path) -> None:
    """Two nodes on PostgreSQL: the console on one shows both, with the other's clients."""
    from tests.e2e.cluster import cluster
    from tests.services import fresh_postgres_database

    with (
        fresh_postgres_database("croupier_console") as url,
        cluster(tmp_path, 2, {"CROUPIER_DATABASE_URL": url, "CROUPIER_BROKER_URL": url}) as nodes,
        chromium() as browser,
    ):
        # A player on the second node.
        other = browser.new_page()
        other.goto(nodes[1].url + "/healthz")
        other.evaluate(
            """async ([token]) => {
              const { Client } = await import("/sdk/croupier.js");
              const sub = new Client({ token }).subscribe("tournament:cluster");
              await new Promise((ok) => sub.on("subscribed", ok));
            }""",
            [token_for("fan")],
        )
        page = browser.new_page()
        page.goto(nodes[0].url + "/")
        page.evaluate("(key) => sessionStorage.setItem('croupier.apiKey', key)", API_KEY)
        page.reload()
        wait_for(page, "document.querySelectorAll('#nodes tr').length === 2", 30)
        text = _text(page, "#nodes")
        rows = [line.split("\t") for line in text.splitlines()]
        wait_for(page, "Number(document.getElementById('total-connections').textContent) >= 3", 15)
    assert any(f":{nodes[0].port}" in r[1] for r in rows)
    assert any(f":{nodes[1].port}" in r[1] for r in rows)


def test_console_follows_a_running_tournament_of_the_service(tmp_path: Path) -> None:
    """The tournament panel picks the running tournament, loads its standings, and moves
    with the scores the tournament service publishes."""
    errors: list[str] = []
    with running_server(tmp_path) as server, chromium() as browser:
        base = "/api/v1/tournaments"
        _post(server, base, {"name": "Cup", "id": "cup1", "scoring": {"rule": "points"}})
        _post(server, f"{base}/cup1/open", {})
        for player, name in (("p-ann", "Ann"), ("p-bob", "Bob")):
            _post(
                server,
                f"{base}/cup1/players",
                {"playerId": player, "brand": "1001", "displayName": name},
            )
        _post(server, f"{base}/cup1/start", {})
        _post(
            server,
            f"{base}/cup1/scores",
            {"submissionId": "s1", "playerId": "p-ann", "points": 300},
        )

        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/")
        page.evaluate("(key) => sessionStorage.setItem('croupier.apiKey', key)", API_KEY)
        page.reload()
        wait_for(page, "document.getElementById('tournament-panel').dataset.live", 15)
        assert page.input_value("#tournament-id") == "cup1"
        wait_for(page, "document.querySelectorAll('#leaderboard tr').length === 2", 10)
        assert _text(page, "#leaderboard tr:first-child").split("\t")[1] == "Ann"
        assert "running" in _text(page, "#tournament-status")

        _post(
            server,
            f"{base}/cup1/scores",
            {"submissionId": "s2", "playerId": "p-bob", "points": 500},
        )
        wait_for(page, "document.querySelector('#leaderboard tr').textContent.includes('Bob')", 10)
    assert errors == []

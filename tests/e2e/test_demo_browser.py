"""``croupier serve --demo`` in real Chromium: the console signs itself in and, with no
typing, every panel moves on what the simulator makes happen."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium, wait_for
from tests.e2e.demoserver import demo_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Where to save a screenshot of the running demo (docs/console.png is made this way).
SCREENSHOT = os.environ.get("CROUPIER_DEMO_SCREENSHOT")


def _changes(page: Any, expression: str, seconds: float) -> None:
    """Wait until ``expression`` (a string) is non-empty, then until it says something else."""
    wait_for(page, f"({expression}) !== ''", seconds)
    before = page.evaluate(expression)
    changed = f"(before) => ({expression}) !== '' && ({expression}) !== before"
    wait_for(page, changed, seconds, before)


def test_every_console_panel_moves_on_the_demo(tmp_path: Path) -> None:
    errors: list[str] = []
    with demo_server(tmp_path) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")

        # Signed in with the demo key, nothing typed.
        wait_for(page, "document.getElementById('state').textContent === 'connected'", 15)
        assert page.locator("#demo").is_visible()
        assert page.locator("#signin").is_hidden()

        # The tournament panel follows the demo tournament: rows, and they move.
        wait_for(page, "document.getElementById('tournament-id').value.startsWith('demo-')", 15)
        wait_for(page, "document.querySelectorAll('#leaderboard tr').length >= 3", 20)
        _changes(page, "document.getElementById('leaderboard').textContent", 20)
        assert "running" in page.locator("#tournament-status").inner_text()

        # The match: the score moves, fans watch and react.
        wait_for(page, "document.getElementById('match-id').value.startsWith('demo-')", 15)
        _changes(page, "document.getElementById('scoreboard').textContent", 20)
        wait_for(page, "document.getElementById('match-updates').children.length >= 2", 20)
        wait_for(page, "Number(document.getElementById('viewers').textContent) >= 3", 20)
        wait_for(page, "Number(document.getElementById('reactions').dataset.total) > 0", 20)

        # p1's notification centre: a new notification, coins and the wallet.
        page.evaluate(
            "window.seen = new Set([...document.querySelectorAll('#notifications li')]"
            ".map((li) => li.dataset.messageId))"
        )
        wait_for(
            page,
            "[...document.querySelectorAll('#notifications li')]"
            ".some((li) => !window.seen.has(li.dataset.messageId))",
            20,
        )
        wait_for(page, "document.getElementById('coins').textContent !== '—'", 20)
        wait_for(page, "document.getElementById('wallet').textContent.includes('EUR')", 20)
        assert int(page.locator("#unread").inner_text().replace(",", "")) > 0

        # Nodes, counters, channels and the rate chart show the traffic.
        number = "Number(document.getElementById('{}').textContent.replace(/,/g, ''))"
        wait_for(page, number.format("total-published") + " > 0", 20)
        wait_for(page, number.format("total-connections") + " >= 10", 20)  # fans, bots, console
        wait_for(page, "Number(document.getElementById('rates').dataset.points) >= 3", 20)
        wait_for(page, "document.getElementById('channels').textContent.includes('room:m-')", 30)

        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT)

        # The tournament completes with its winners, and the panel moves on to the next one.
        first = page.locator("#tournament-id").input_value()
        wait_for(page, "document.getElementById('tournament-status').textContent"
                 ".startsWith('completed · 1. ')", 90)  # fmt: skip
        if "Player One" in page.locator("#tournament-status").inner_text():  # p1 won a prize
            wait_for(page, "document.getElementById('notifications').textContent"
                     ".includes('tournament_win')", 20)  # fmt: skip
        wait_for(
            page, "(first) => document.getElementById('tournament-id').value !== first", 30, first
        )
        wait_for(page, "document.querySelectorAll('#leaderboard tr').length >= 3", 20)
        assert errors == []

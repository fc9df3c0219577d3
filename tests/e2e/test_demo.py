"""``croupier serve --demo``: the simulator drives every service over the server's own API,
and picks up where it stood after a restart on the same database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.demoserver import DemoServer
from tests.support import timeout

pytestmark = [pytest.mark.e2e]


def _live_demo(server: DemoServer, path: str, key: str, status: str) -> Any:
    listed = server.get(path)[key]
    return next((x for x in listed if x["id"].startswith("demo-") and x["status"] == status), None)


def _matched_rooms(server: DemoServer) -> list[str]:
    channels = server.get("/api/v1/channels?prefix=room:m-&limit=1000")["channels"]
    return [c["channel"] for c in channels]


def _croupier_token(server: DemoServer) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}
    env["CROUPIER_URL"] = server.url  # where `make demo` listens is the default; not here
    done = subprocess.run(
        [sys.executable, "-m", "croupier", "token", "p1", "--brand", "1001"],
        env=env,
        capture_output=True,
        timeout=timeout(30),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


def test_the_demo_runs_every_part_and_continues_after_a_restart(tmp_path: Path) -> None:
    server = DemoServer(tmp_path).start()
    try:
        tournament = server.until(
            "a running tournament",
            lambda: _live_demo(server, "/api/v1/tournaments?limit=5", "tournaments", "running"),
            20,
        )
        match = server.until(
            "a live match",
            lambda: _live_demo(server, "/api/v1/sports/events?limit=5", "events", "live"),
            20,
        )
        tid, mid = tournament["id"], match["id"]
        # The banner names what is live, so a newcomer knows what to watch.
        server.until("the banner", lambda: f"live match: {mid}" in server.output(), 10)
        assert f"live tournament: {tid} (channel tournament:{tid})" in server.output()
        # `croupier token` works against the demo with no secret or key to hunt for.
        minted = _croupier_token(server)
        mine = httpx.get(
            server.url + "/api/v1/players/1001/p1/notifications/unread-count",
            headers={"x-auth-token": minted},
            timeout=timeout(10),
        )
        assert mine.status_code == 200, mine.text
        scored = lambda: server.get(f"/api/v1/tournaments/{tid}/players?limit=10")["players"]  # noqa: E731
        server.until("a score", lambda: any(p["score"] > 0 for p in scored()), 20)
        server.until(
            "fans watching",
            lambda: server.get(f"/api/v1/sports/events/{mid}/viewers")["viewers"] >= 3,
            20,
        )
        base = "/api/v1/players/1001/p1"
        unread = lambda: server.get(base + "/notifications/unread-count")["unread"]  # noqa: E731
        server.until("p1's notifications", unread, 20)
        server.until("p1's coins", lambda: server.get(base + "/coins")["total_received"] > 0, 20)
        server.until("a matchmade Nim room", lambda: _matched_rooms(server), 30)
        server.until(
            "Nim results on the leaderboard",
            lambda: server.get("/api/v1/leaderboards/rooms.nim")["size"] >= 2,
            30,
        )
        seq = server.get(f"/api/v1/sports/events/{mid}")["seq"]
    finally:
        server.stop()
    assert "failed" not in server.output(), server.output()[-3000:]  # nor on the way out

    # The same directory, so the same croupier.db: nothing is made twice, nothing crashes.
    server.start()
    try:
        server.until(
            "the match continue",
            lambda: (
                server.get(f"/api/v1/sports/events/{mid}")["seq"] > seq
                or server.get(f"/api/v1/sports/events/{mid}")["status"] == "finished"
            ),
            20,
        )
        running = server.get(f"/api/v1/tournaments/{tid}")
        assert running["status"] in ("running", "completed")
        if running["status"] == "running":
            server.until(
                "the tournament continue",
                lambda: (
                    server.get(f"/api/v1/tournaments/{tid}")["currentRound"]
                    > running["currentRound"]
                    or server.get(f"/api/v1/tournaments/{tid}")["status"] == "completed"
                ),
                60,
            )
        rooms = len(_matched_rooms(server))
        server.until("another Nim room", lambda: len(_matched_rooms(server)) > rooms, 30)
    finally:
        server.stop()
    output = server.output()
    assert "failed" not in output, output[-3000:]
    assert "Traceback" not in output

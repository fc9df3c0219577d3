"""The sports gateway seed's feed and viewer, unchanged, against a live server.

The feed posts the seed's own cricket example (string values, a ``"ball 12"`` key, a bowler
with more wickets than the innings shows); the viewer joins ``/ws/events`` with
``{"id","eventId"}`` and reads the update's fields as the feed published them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import ServerProcess

from .test_sports import live_match, sockets, viewer

pytestmark = pytest.mark.e2e

MATCH = "ipl-final"
# The seed's "Data Received" example, field for field.
SEED_BALL: dict[str, Any] = {
    "ball 12": "13/1",
    "comment": "Bumrah has drawn the first blood",
    "batsman": {"name": "rohit", "runs": "100", "balls": "96"},
    "bowler": {"name": "yuvi", "overs": "3.6", "runs": "10", "maiden": "1", "wickets": "2"},
}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_the_seed_cricket_ball_is_taken_with_a_warning_and_reaches_viewers_as_sent(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    await live_match(api, MATCH)
    async with sockets() as session:
        client, joined, _ = await viewer(session, server, "viewer-17", MATCH)
        assert joined["eventId"] == MATCH
        answer = await api.post(f"/api/v1/sports/events/{MATCH}/updates", json=SEED_BALL)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [w["code"] for w in body["warnings"]] == ["bowler_wickets"]
        assert "yuvi" in body["warnings"][0]["message"]
        assert body["snapshot"]["score"] == "13/1"

        update = await client.recv_quiet(10)
        while update["type"] == "sport.event.updated":  # the match went live before the join
            update = await client.recv_quiet(10)
        assert update["type"] == "score.updated", update
        data = update["data"]
        # What the feed published, exactly: its key, its strings.
        for key, value in SEED_BALL.items():
            assert data[key] == value, key
        # Beside Croupier's numbered fields.
        assert (data["eventId"], data["sport"], data["seq"]) == (MATCH, "cricket", 1)
        assert data["update"]["ball"] == 12
        assert data["update"]["bowler"]["wickets"] == 2
        assert data["snapshot"]["runs"] == 13
        await client.ws.close()

    metrics = (await api.get("/metrics")).text
    assert _metric(metrics, "croupier_sports_update_warnings_total") == 1


async def test_a_football_score_that_disagrees_with_the_goals_does_not_freeze_the_match(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post(
        "/api/v1/sports/events",
        json={"id": "derby", "sport": "football", "title": "Derby", "competitors": ["A", "B"]},
    )
    assert created.status_code == 200, created.text
    live = await api.post("/api/v1/sports/events/derby/status", json={"status": "live"})
    assert live.status_code == 200, live.text
    base = "/api/v1/sports/events/derby/updates"
    # The feed missed the first goal: its next goal says 2-0.
    goal = {
        "type": "goal",
        "minute": 30,
        "team": "A",
        "player": "x",
        "score": {"home": 2, "away": 0},
    }
    answer = await api.post(base, json=goal)
    assert answer.status_code == 200, answer.text
    assert [w["code"] for w in answer.json()["warnings"]] == ["score_mismatch"]
    assert answer.json()["snapshot"]["score"] == {"home": 2, "away": 0}
    # The match goes on; a structural error is still refused and changes nothing.
    after = await api.post(base, json={"type": "foul", "minute": 31, "team": "B", "player": "y"})
    assert after.status_code == 200, after.text
    assert after.json()["warnings"] == []
    bad = await api.post(base, json={"type": "goal", "minute": "late", "team": "A", "player": "x"})
    assert bad.status_code == 409
    assert bad.json()["error"]["code"] == "bad_update"
    assert "minute" in bad.json()["error"]["message"]
    assert (await api.get("/api/v1/sports/events/derby/snapshot")).json()["seq"] == 2

"""The demo simulator's pure parts: the balls it bowls, the Nim move it makes, and how a
failing part is retried without stopping the others."""

from __future__ import annotations

import asyncio
import random

import pytest

from croupier.demo import keep_running
from croupier.demo.match import BALLS, next_ball
from croupier.demo.queue import nim_take
from croupier.services.sports.rules import fold, validate_update
from tests.support import timeout


@pytest.mark.parametrize("seed", range(20))
def test_every_ball_of_an_innings_is_one_the_sports_api_accepts(seed: int) -> None:
    rng = random.Random(seed)
    board: dict[str, object] = {}
    balls = 0
    while int(str(board.get("wickets", 0))) < 10 and int(str(board.get("ball", 0))) < BALLS:
        update = validate_update("cricket", next_ball(board, rng))
        after, findings = fold("cricket", board, update, ("Demo XI", "Sample XI"))
        assert findings == []  # the demo's feed is consistent: no warnings
        assert after["runs"] >= int(str(board.get("runs", 0)))
        board = after
        balls += 1
    assert balls == board["ball"] <= BALLS
    assert int(str(board["wickets"])) <= 10


def test_the_nim_move_leaves_a_multiple_of_one_more_than_the_most_one_may_take() -> None:
    for most in (2, 3, 5):
        for pile in range(1, 40):
            take = nim_take(pile, most)
            assert 1 <= take <= min(pile, most)
            if pile % (most + 1):
                assert (pile - take) % (most + 1) == 0


async def test_a_failing_part_is_retried_and_never_stops_the_others() -> None:
    calls = {"flaky": 0, "steady": 0}
    both_ran_again = asyncio.Event()

    async def flaky() -> None:
        calls["flaky"] += 1
        raise RuntimeError("the server said no")

    async def steady() -> None:
        calls["steady"] += 1
        if calls["flaky"] >= 3 and calls["steady"] >= 3:
            both_ran_again.set()
        await asyncio.sleep(0)

    tasks = [
        asyncio.create_task(keep_running("flaky", flaky, retry=0.001)),
        asyncio.create_task(keep_running("steady", steady, retry=0.001)),
    ]
    try:
        async with asyncio.timeout(timeout(10)):
            await both_ran_again.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert calls["flaky"] >= 3  # retried after each failure

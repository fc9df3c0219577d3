"""Stopping a background task: also one that swallows its first cancellation."""

from __future__ import annotations

import asyncio

import pytest

from croupier.tasks import stop_task


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    steps: list[str] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                steps.append("swallowed")  # as a client library caught mid-command might
                if len(steps) == 2:
                    raise

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, patience=0.05), 5)
    assert task.cancelled()
    assert steps == ["swallowed", "swallowed"]


async def test_a_failed_task_raises_and_none_is_a_no_op() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await stop_task(task)
    await stop_task(None)

"""Background tasks: held until done and stopped on close, even one that resists cancelling."""

from __future__ import annotations

import asyncio

import pytest

from croupier.tasks import Background, stop_task


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


async def test_background_holds_a_task_until_it_is_done() -> None:
    background = Background()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    task = background.spawn(work())
    assert len(background) == 1
    release.set()
    assert await task == "done"
    await asyncio.sleep(0)  # the done callback runs on the next turn
    assert len(background) == 0


async def test_close_cancels_what_is_pending_and_waits_for_it() -> None:
    background = Background()
    stopped: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that takes a turn still finishes before close returns
            stopped.append(name)

    spawned = background.spawn(forever("spawned"))
    own = asyncio.get_running_loop().create_task(forever("own"))
    await asyncio.sleep(0)
    await asyncio.wait_for(background.close(own, None), 5)
    assert spawned.cancelled()
    assert own.cancelled()
    assert sorted(stopped) == ["own", "spawned"]


async def test_a_failed_task_does_not_escape_wait_or_close() -> None:
    background = Background()
    release = asyncio.Event()

    async def fails() -> None:
        await release.wait()
        raise RuntimeError("boom")

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("boom while stopping") from None

    first = background.spawn(fails())
    release.set()
    await asyncio.wait_for(background.wait(), 5)
    assert isinstance(first.exception(), RuntimeError)

    second = background.spawn(fails_on_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(background.close(), 5)
    assert isinstance(second.exception(), RuntimeError)

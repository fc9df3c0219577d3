"""Background tasks: how a component holds the tasks it starts, and stops them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Background", "stop_task"]

_T = TypeVar("_T")


async def stop_task(task: asyncio.Task[Any] | None, *, patience: float = 1.0) -> None:
    """Cancel ``task`` (if any) and wait until it has finished.

    A task that swallows its cancellation (a client library caught it mid-command, and the
    task's loop went on) is cancelled again every ``patience`` seconds until it ends. After
    this returns the task runs no more of its code.

    Raises:
        Exception: the one the task failed with, if it failed rather than being cancelled.
            The caller's own cancellation is not absorbed either.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=patience)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


class Background:
    """The tasks a component starts and does not await: held until each is done, then dropped.

    Holding them keeps them from being garbage-collected mid-run. A task that fails is
    dropped like the others; its exception is not retrieved here, so asyncio reports it.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` as a task held until it is done, and return the task."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self) -> None:
        """Wait until the tasks held now have finished; their exceptions are swallowed.

        A task spawned meanwhile is not waited for.
        """
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, *also: asyncio.Task[Any] | None) -> None:
        """Cancel the tasks held now, then those in ``also``, and wait until all have finished.

        ``also`` takes the owner's long-running tasks, which it keeps in attributes of its
        own, finished or not; ``None`` is skipped. Exceptions, cancellations included, are
        swallowed. A task spawned meanwhile is neither cancelled nor waited for.
        """
        tasks = [*self._tasks, *(task for task in also if task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

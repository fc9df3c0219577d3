"""Background tasks: the one way a component stops the task it started."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop_task"]


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

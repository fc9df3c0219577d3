"""The end of a loop turn: every connection's writes of the turn leave in one callback.

A connection that writes queues the bytes on itself (``pending``) and, the first time in a
turn, joins its loop's :class:`Flusher`; the flusher's one callback then hands each
connection's bytes to its transport in one ``transport.write``. So a burst of events that
reach a connection in one turn costs one send, and nothing waits longer than the turn it
was written in (see :meth:`croupier.transports.connection.Connection.write`).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

__all__ = ["Flushable", "Flusher", "flusher"]


class Flushable(Protocol):
    """What the flusher reads and resets on a connection."""

    pending: bytes | list[bytes] | None
    pending_bytes: int
    transport: asyncio.Transport | None


class Flusher:
    """The connections with writes waiting in this loop turn; one callback writes them all.

    Scheduled once per turn (by the first connection that writes, see
    :meth:`~croupier.transports.connection.Connection.write`), it runs right after the
    turn's other callbacks: nothing waits longer than the turn it was written in.
    """

    __slots__ = ("dirty", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[Flushable] = []

    def schedule(self) -> None:
        self.loop.call_soon(self.run)

    def run(self) -> None:
        dirty = self.dirty
        batch = dirty[:]  # the same list object stays every connection's ``dirty``
        dirty.clear()
        for conn in batch:
            pending = conn.pending
            if pending is None:
                continue  # written already (past the size threshold, or a close)
            conn.pending = None
            transport = conn.transport
            assert transport is not None  # only an attached connection writes
            if isinstance(pending, bytes):
                transport.write(pending)
            else:
                conn.pending_bytes = 0
                transport.write(b"".join(pending))


# One flusher per event loop (a loop that is gone takes its flusher with it).
_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher(loop: asyncio.AbstractEventLoop | None = None) -> Flusher:
    """The flusher of ``loop`` (default: the running loop's).

    A caller that makes many connections (the front door) passes its loop: on Python 3.11
    each ``asyncio.get_running_loop()`` is a ``getpid`` system call.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    found = _flushers.get(loop)
    if found is None:
        found = _flushers[loop] = Flusher(loop)
    return found

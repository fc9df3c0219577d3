"""The Log seam: the durable, per-channel, gap-free source of truth for stored events."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

import msgspec

from ..events import Event, History, Position

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "Append",
    "Appended",
    "Log",
    "Retention",
    "new_epoch",
    "now_ts",
]

IDEMPOTENCY_WINDOW = 300.0  # seconds an idempotency key is remembered

# Retention rules by channel name: (keep at most N events, keep events younger than T
# seconds). ``None`` keeps everything.
Retention = Callable[[str], tuple[int, float] | None]


def new_epoch() -> str:
    return secrets.token_hex(3)


# The last whole second formatted, as (second, text): replaced whole, never half-updated.
_formatted: list[tuple[int, str]] = [(-1, "")]


def now_ts(now: float | None = None) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. ``2026-11-22T09:29:01.123Z``."""
    moment = time.time() if now is None else now
    second = int(moment // 1)
    micros = round((moment - second) * 1_000_000)  # rounded as datetime rounds it
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached = _formatted[0]
    if cached[0] != second:  # every publish stamps its events: format each second once
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
        _formatted[0] = cached
    return f"{cached[1]}{micros // 1000:03d}Z"


class Append(msgspec.Struct, frozen=True, gc=False):
    """A request to store one event. ``payload`` is the event's data as JSON."""

    channel: str
    type: str
    payload: bytes
    ts: str
    idempotency_key: str | None = None


class Appended(msgspec.Struct, frozen=True, gc=False):
    """The stored event, and whether it was already there (a repeated idempotency key)."""

    event: Event
    duplicate: bool = False


class Log(Protocol):
    """Stores events with per-channel offsets 1, 2, 3 … that never skip and never repeat.

    Use as ``async with log:``; every method may be called only inside that block.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def append(self, items: Sequence[Append]) -> list[Appended]:
        """Store ``items`` atomically, in order, and return them numbered.

        An item whose idempotency key was used on the same channel within the last
        :data:`IDEMPOTENCY_WINDOW` seconds is not stored again: its result is the first
        event, marked ``duplicate``. After this returns, every event is durable and visible
        to :meth:`read`.

        Raises:
            Unavailable: the store cannot take writes; nothing was stored.
        """
        ...

    async def read(self, channel: str, after: int, limit: int) -> History:
        """Up to ``limit`` stored events of ``channel`` with offsets above ``after``."""
        ...

    async def position(self, channel: str) -> Position:
        """The channel's last offset and epoch (offset 0 for a channel never written)."""
        ...

    async def channels(
        self, prefix: str, limit: int, *, after: str = "", contains: str = ""
    ) -> list[tuple[str, Position]]:
        """Channels whose name starts with ``prefix``, by name, with their positions.

        Only names after ``after`` (the last name of the page before) and holding
        ``contains`` are listed.
        """
        ...

    async def trim(self, retention: Retention, now: float | None = None) -> int:
        """Drop events past their channel's retention and expired idempotency keys.

        Returns the number of events removed. Offsets are never reused.
        """
        ...

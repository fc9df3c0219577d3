"""The in-memory Log: the test double, and the store of a process that needs no history
across restarts. Its epoch is new for every instance, so clients of a restarted process
reload state instead of resuming into a different history."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ..events import Event, History, Position
from .base import IDEMPOTENCY_WINDOW, Append, Appended, Retention, new_epoch

__all__ = ["MemoryLog"]


@dataclass(slots=True)
class _Channel:
    epoch: str
    top: int = 0
    events: deque[tuple[float, Event]] = field(default_factory=deque)
    keys: dict[str, tuple[float, Event]] = field(default_factory=dict)


class MemoryLog:
    def __init__(self) -> None:
        self._epoch = new_epoch()
        self._channels: dict[str, _Channel] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _channel(self, name: str) -> _Channel:
        ch = self._channels.get(name)
        if ch is None:
            ch = self._channels[name] = _Channel(self._epoch)
        return ch

    async def append(self, items: Sequence[Append]) -> list[Appended]:
        now = time.time()
        out: list[Appended] = []
        for item in items:
            ch = self._channel(item.channel)
            key = item.idempotency_key
            if key is not None:
                seen = ch.keys.get(key)
                if seen is not None and now - seen[0] < IDEMPOTENCY_WINDOW:
                    out.append(Appended(seen[1], duplicate=True))
                    continue
            ch.top += 1
            event = Event(item.channel, item.type, item.payload, item.ts, ch.top, ch.epoch)
            ch.events.append((now, event))
            if key is not None:
                ch.keys[key] = (now, event)
            out.append(Appended(event))
        return out

    async def read(self, channel: str, after: int, limit: int) -> History:
        ch = self._channels.get(channel)
        if ch is None:
            return History((), Position(0, self._epoch), 1)
        first = ch.events[0][1].offset if ch.events else ch.top + 1
        assert first is not None
        start = max(0, after + 1 - first)
        picked = tuple(ch.events[i][1] for i in range(start, min(len(ch.events), start + limit)))
        return History(picked, Position(ch.top, ch.epoch), first)

    async def position(self, channel: str) -> Position:
        ch = self._channels.get(channel)
        return Position(ch.top, ch.epoch) if ch else Position(0, self._epoch)

    async def channels(
        self, prefix: str, limit: int, *, after: str = "", contains: str = ""
    ) -> list[tuple[str, Position]]:
        names = sorted(
            n
            for n in self._channels
            if n.startswith(prefix) and n > after and (not contains or contains in n)
        )[:limit]
        return [(n, Position(self._channels[n].top, self._channels[n].epoch)) for n in names]

    async def trim(self, retention: Retention, now: float | None = None) -> int:
        now = time.time() if now is None else now
        removed = 0
        for name, ch in self._channels.items():
            ch.keys = {k: v for k, v in ch.keys.items() if now - v[0] < IDEMPOTENCY_WINDOW}
            rule = retention(name)
            if rule is None:
                continue
            size, ttl = rule
            while ch.events and (len(ch.events) > size or now - ch.events[0][0] > ttl):
                ch.events.popleft()
                removed += 1
        return removed

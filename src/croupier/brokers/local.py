"""The in-process Broker: one node, events handed straight to the hub."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from ..events import Event
from .base import EventHandler

__all__ = ["LocalBroker"]


def _nothing(event: Event) -> None:
    return None


class LocalBroker:
    def __init__(self) -> None:
        self._handler: EventHandler = _nothing
        self.channels: set[str] = set()

    def bind(self, handler: EventHandler, resync: Callable[[], None] | None = None) -> None:
        # In one process nothing is ever lost in transit, so there is never a resync.
        self._handler = handler

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        handler = self._handler
        for event in events:
            handler(event)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

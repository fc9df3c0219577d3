"""The Broker seam: fan-out of already-numbered events between gateway nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, Self

from ..events import Event

__all__ = ["Broker", "EventHandler"]

EventHandler = Callable[[Event], None]


class Broker(Protocol):
    """Carries events from the node that stored them to every node with subscribers.

    Call :meth:`bind` once, then use as ``async with broker:``. The handler is called on the
    event loop, one event at a time, and must not block.
    """

    def bind(self, handler: EventHandler, resync: Callable[[], None] | None = None) -> None:
        """Set where events go. ``resync`` is called after the broker lost messages (a
        reconnect), so the receiver can read what it missed from the log."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Send ``events`` to every node subscribed to their channels (this one included)."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s events on this node. Returns once it is in effect."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s events on this node."""
        ...

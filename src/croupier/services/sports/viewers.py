"""Who is watching, as plain rules: counted on join, uncounted after a grace period. No I/O.

Rules:

* A viewer is one viewer id on one event, however many connections it has open (two tabs
  count once).
* A viewer whose last connection goes is still counted for :data:`GRACE` seconds; back
  within that time, it was never gone. Only :meth:`ViewerBook.expire` uncounts.
* The clock is the caller's (monotonic seconds), so the rules are tested without waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["GRACE", "ViewerBook"]

GRACE = 3.0

_Key = tuple[str, str]  # (event id, viewer id)


class ViewerBook:
    """This node's viewers per event."""

    __slots__ = ("_connections", "_counted", "_leaving", "grace")

    def __init__(self, grace: float = GRACE) -> None:
        self.grace = grace
        self._connections: dict[_Key, int] = {}
        self._leaving: dict[_Key, float] = {}  # deadline of each viewer in its grace period
        self._counted: dict[str, int] = {}

    def join(self, event_id: str, viewer: str) -> bool:
        """One more connection of ``viewer`` on ``event_id``; True if it is newly counted."""
        key = (event_id, viewer)
        held = self._connections.get(key)
        if held is not None:
            self._connections[key] = held + 1
            return False
        self._connections[key] = 1
        if self._leaving.pop(key, None) is not None:
            return False  # back within the grace period: never gone
        self._counted[event_id] = self._counted.get(event_id, 0) + 1
        return True

    def leave(self, event_id: str, viewer: str, now: float) -> None:
        """One connection fewer; the viewer's last one starts its grace period."""
        key = (event_id, viewer)
        held = self._connections.get(key)
        if held is None:
            return
        if held > 1:
            self._connections[key] = held - 1
            return
        del self._connections[key]
        self._leaving[key] = now + self.grace

    def expire(self, now: float) -> list[_Key]:
        """Uncount the viewers whose grace period is over; return them."""
        gone = [key for key, deadline in self._leaving.items() if deadline <= now]
        for key in gone:
            del self._leaving[key]
            left = self._counted[key[0]] - 1
            if left:
                self._counted[key[0]] = left
            else:
                del self._counted[key[0]]
        return gone

    def count(self, event_id: str) -> int:
        """Viewers of ``event_id`` on this node, those in their grace period included."""
        return self._counted.get(event_id, 0)

    def events(self) -> Iterator[str]:
        """The events with at least one counted viewer."""
        return iter(list(self._counted))

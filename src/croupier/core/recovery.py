"""The resume decision: can a client's gap be filled from history? No I/O.

Recovery is all or nothing per channel. A client that last saw ``since`` is recovered only if
the log still holds every event after it, under the same epoch, and not more than a bound:
otherwise nothing partial is sent and the client is told to reload state.
"""

from __future__ import annotations

from ..events import Position

__all__ = ["can_recover"]


def can_recover(since: Position, top: Position, first: int, max_events: int) -> bool:
    """Whether every event after ``since`` can be replayed.

    Args:
        since: the client's last seen position.
        top: the channel's current last position.
        first: the lowest offset the log still holds (``top.offset + 1`` if none).
        max_events: the most events one resume may replay.
    """
    if since.epoch != top.epoch:
        return False
    if since.offset < 0 or since.offset > top.offset:
        return False
    if top.offset - since.offset > max_events:
        return False
    return since.offset + 1 >= first

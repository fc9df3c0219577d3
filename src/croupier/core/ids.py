"""How ids travel in player-facing answers: one rule for the stream and for HTTP. No I/O.

An id made only of ASCII digits (``"12345"``) is a JSON number, as the casino player stream
has always sent ``brand_id`` and ``player_id``; an id that would not survive the round trip
as a number (a leading zero, 19 digits or more, any other character) stays a string.
"""

from __future__ import annotations

__all__ = ["wire_id"]


def wire_id(text: str) -> int | str:
    """``"12345"`` as ``12345``; ``"007"``, ``"p1"`` and very long digit runs as they are."""
    if text.isascii() and text.isdigit() and len(text) < 19 and str(int(text)) == text:
        return int(text)
    return text

"""Reactions as plain rules: what a reaction may be, and the tally that summarises them. No I/O.

Rules:

* A reaction is one emoji (a single emoji, possibly a ZWJ sequence, a flag or a keycap, or one
  of a few text emoticons such as ``:)``) and an optional comment of at most
  :data:`MAX_COMMENT` characters without control characters.
* Reactions are never sent on one by one. Each node counts what its viewers send in a
  :class:`Tally`; once a second the node drains it into a partial summary, every node merges
  the partials of every node into another :class:`Tally`, and drains that into the
  ``reactions.summary`` its own viewers get. A partial that arrives late is counted in the
  next summary, so the summaries of an event always add up to the reactions taken.
* A summary keeps at most :data:`SAMPLES` sample comments, the first ones of its window, one
  per viewer.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ...errors import BadRequest

__all__ = [
    "EMOTICONS",
    "MAX_COMMENT",
    "SAMPLES",
    "Reaction",
    "Summary",
    "Tally",
    "is_emoji",
    "validate_reaction",
]

MAX_COMMENT = 140
SAMPLES = 5
EMOTICONS = frozenset({":)", ":(", ":D", ";)", ":P", ":O", "<3", ":'("})

_PICTOGRAPHIC = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x21AA),
    (0x231A, 0x23FF),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25FE),
    (0x2600, 0x27BF),
    (0x2934, 0x2935),
    (0x2B05, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3299),
    (0x1F000, 0x1FAFF),
)
_JOINERS = {0x200D, 0xFE0F, 0xFE0E, 0x20E3}
_SKIN = (0x1F3FB, 0x1F3FF)
_TAGS = (0xE0020, 0xE007F)
_KEYCAP_BASE = set(b"0123456789#*")


def _pictographic(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _PICTOGRAPHIC)


def is_emoji(text: str) -> bool:
    """Whether ``text`` is one emoji (up to 10 code points: ZWJ sequences, flags, keycaps,
    skin tones, tag sequences) or one of :data:`EMOTICONS`."""
    if text in EMOTICONS:
        return True
    if not text or len(text) > 10:
        return False
    points = [ord(c) for c in text]
    if points[-1] == 0x20E3:  # keycap: 1️⃣, #️⃣
        return points[0] in _KEYCAP_BASE and all(p in _JOINERS for p in points[1:])
    seen = False
    for cp in points:
        if cp in _JOINERS or _SKIN[0] <= cp <= _SKIN[1] or _TAGS[0] <= cp <= _TAGS[1]:
            continue  # modifiers: an emoji needs a base
        if _pictographic(cp):
            seen = True
        else:
            return False
    return seen


@dataclass(frozen=True, slots=True)
class Reaction:
    viewer: str
    emoji: str
    comment: str | None = None


def validate_reaction(viewer: str, data: Any) -> Reaction:
    """The reaction in ``data`` (``{"emoji", "comment"?}``; other fields are ignored).

    Raises:
        BadRequest: no emoji, something else than one emoji, or a bad comment
            (code ``bad_reaction``).
    """
    if not isinstance(data, dict):
        raise BadRequest("a reaction is a JSON object {emoji, comment?}", code="bad_reaction")
    emoji = data.get("emoji")
    if not isinstance(emoji, str) or not is_emoji(emoji):
        raise BadRequest(
            "emoji must be one emoji (🔥, 👏🏽, 🇮🇳) or one of " + " ".join(sorted(EMOTICONS)),
            code="bad_reaction",
        )
    comment = data.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise BadRequest("comment must be a string", code="bad_reaction")
        comment = comment.strip()
        if len(comment) > MAX_COMMENT:
            raise BadRequest(
                f"comment is {len(comment)} characters; the limit is {MAX_COMMENT}",
                code="bad_reaction",
            )
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in comment):
            raise BadRequest("comment has control characters", code="bad_reaction")
        comment = comment or None
    return Reaction(viewer, emoji, comment)


@dataclass(slots=True)
class Summary:
    """What one event's reactions add up to over ``[start, end)`` (seconds since the epoch)."""

    start: float
    end: float
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": self.counts,
            "samples": self.samples,
            "start": self.start,
            "end": self.end,
        }


class Tally:
    """Reactions per event since the last :meth:`drain`."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[str, Summary] = {}

    def __bool__(self) -> bool:
        return bool(self._events)

    def _summary(self, event_id: str, start: float, end: float) -> Summary:
        summary = self._events.get(event_id)
        if summary is None:
            summary = self._events[event_id] = Summary(start, end)
        else:
            summary.start = min(summary.start, start)
            summary.end = max(summary.end, end)
        return summary

    def add(self, event_id: str, reaction: Reaction, start: float, end: float) -> None:
        """Count one reaction, taken in the window ``[start, end)``."""
        summary = self._summary(event_id, start, end)
        summary.total += 1
        summary.counts[reaction.emoji] = summary.counts.get(reaction.emoji, 0) + 1
        samples = summary.samples
        if (
            reaction.comment is not None
            and len(samples) < SAMPLES
            and all(s["id"] != reaction.viewer for s in samples)
        ):
            samples.append(
                {"id": reaction.viewer, "emoji": reaction.emoji, "comment": reaction.comment}
            )

    def merge(self, event_id: str, part: Summary) -> None:
        """Add another tally's summary of ``event_id`` (a node's partial) to this one."""
        summary = self._summary(event_id, part.start, part.end)
        summary.total += part.total
        for emoji, n in part.counts.items():
            summary.counts[emoji] = summary.counts.get(emoji, 0) + n
        room = SAMPLES - len(summary.samples)
        if room > 0:
            summary.samples.extend(part.samples[:room])

    def drain(self) -> dict[str, Summary]:
        """Every event's summary since the last drain; the tally starts again empty."""
        events, self._events = self._events, {}
        return events

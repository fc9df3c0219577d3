"""A ranking of players by score, without I/O.

Rules:

* Order: score descending; on equal scores, whoever reached the score earlier
  (``achieved_at``) first; then player id, so the order is total and every node that holds
  the same entries ranks them the same.
* Ranks are 1-based and dense in position: the n-th entry in that order has rank n (ties
  are broken, never shared).
* An update has a mode. ``set`` replaces the score; ``add`` adds to it (a new player starts
  at 0); ``max`` keeps the better of the old and the new. ``achieved_at`` moves only when
  the score changes: a player who re-submits the score they already have keeps their place.
* An entry carries a ``version`` that only grows; :meth:`Ranking.put` ignores an entry
  whose version is not newer than the one held. Replicas fed the same entries in any order
  and any number of times converge.

:func:`apply_mode` is the one statement of these update rules; the leaderboards service's
SQL upsert mirrors it, and a test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import msgspec
from sortedcontainers import SortedList

__all__ = ["MODES", "Entry", "Mode", "Ranking", "Standing", "apply_mode"]

Mode = Literal["set", "add", "max"]
MODES: tuple[Mode, ...] = ("set", "add", "max")


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One player's place on a board: score, when they reached it, name, version.

    ``achieved_at`` is seconds since the Unix epoch. ``version`` counts the writes to this
    entry (the database's, when there is one); newer versions replace older ones.
    """

    player: str
    score: float
    achieved_at: float
    display_name: str | None = None
    version: int = 0


class Standing(msgspec.Struct, frozen=True, gc=False):
    """An entry together with its rank (1 = first) at the moment it was read."""

    rank: int
    player: str
    score: float
    achieved_at: float
    display_name: str | None = None

    @classmethod
    def of(cls, rank: int, entry: Entry) -> Standing:
        return cls(rank, entry.player, entry.score, entry.achieved_at, entry.display_name)


def apply_mode(
    old: Entry | None,
    player: str,
    score: float,
    mode: Mode,
    at: float,
    display_name: str | None = None,
) -> Entry:
    """The entry an update makes of ``old`` (``None``: the player is new).

    The version is ``old.version + 1`` (1 for a new entry).

    Raises:
        ValueError: ``mode`` is not one of :data:`MODES`.
    """
    name = display_name if display_name is not None else (old.display_name if old else None)
    version = old.version + 1 if old is not None else 1
    if old is None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        return Entry(player, float(score), at, name, version)
    if mode == "set":
        new, when = float(score), (old.achieved_at if score == old.score else at)
    elif mode == "add":
        new, when = old.score + score, (old.achieved_at if score == 0 else at)
    elif mode == "max":
        new, when = (float(score), at) if score > old.score else (old.score, old.achieved_at)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return Entry(player, new, when, name, version)


def _key(entry: Entry) -> tuple[float, float, str]:
    return (-entry.score, entry.achieved_at, entry.player)


class Ranking:
    """Entries in rank order. Updates, ``rank`` and ``get`` take O(log n); ``top(n)`` and
    ``around(player, n)`` O(log n + n)."""

    __slots__ = ("_entries", "_order")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[str, Entry] = {}
        self._order = SortedList()
        for entry in entries:
            self.put(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, player: object) -> bool:
        return player in self._entries

    def __iter__(self) -> Iterator[Entry]:
        """Entries in rank order."""
        entries = self._entries
        return (entries[key[2]] for key in self._order)

    def get(self, player: str) -> Entry | None:
        return self._entries.get(player)

    def update(
        self,
        player: str,
        score: float,
        *,
        mode: Mode = "set",
        at: float,
        display_name: str | None = None,
    ) -> Entry:
        """Apply one update (see :func:`apply_mode`) and return the player's new entry."""
        entry = apply_mode(self._entries.get(player), player, score, mode, at, display_name)
        self._replace(entry)
        return entry

    def put(self, entry: Entry) -> bool:
        """Hold ``entry`` unless the entry held for its player has an equal or newer version.

        Returns whether the board changed (a newer version with the same values is taken,
        but is no change).
        """
        old = self._entries.get(entry.player)
        if old is not None and old.version >= entry.version:
            return False
        changed = (
            old is None
            or old.score != entry.score
            or old.achieved_at != entry.achieved_at
            or old.display_name != entry.display_name
        )
        self._replace(entry)
        return changed

    def _replace(self, entry: Entry) -> None:
        old = self._entries.get(entry.player)
        if old is not None:
            self._order.remove(_key(old))
        self._entries[entry.player] = entry
        self._order.add(_key(entry))

    def remove(self, player: str) -> Entry | None:
        """Take ``player`` off the board; return the entry they had."""
        old = self._entries.pop(player, None)
        if old is not None:
            self._order.remove(_key(old))
        return old

    def rank(self, player: str) -> int | None:
        """``player``'s rank (1 = first), or ``None`` when they are not on the board."""
        entry = self._entries.get(player)
        if entry is None:
            return None
        index: int = self._order.index(_key(entry))
        return index + 1

    def standing(self, player: str) -> Standing | None:
        entry = self._entries.get(player)
        if entry is None:
            return None
        return Standing.of(self._order.index(_key(entry)) + 1, entry)

    def top(self, n: int) -> list[Standing]:
        """The first ``n`` standings (fewer when the board is shorter)."""
        return self._slice(0, max(n, 0))

    def around(self, player: str, n: int) -> list[Standing]:
        """Up to ``n`` standings above ``player``, theirs, and up to ``n`` below; empty when
        ``player`` is not on the board."""
        entry = self._entries.get(player)
        if entry is None:
            return []
        index = self._order.index(_key(entry))
        n = max(n, 0)
        return self._slice(max(index - n, 0), index + n + 1)

    def _slice(self, start: int, stop: int) -> list[Standing]:
        entries = self._entries
        return [
            Standing.of(start + i + 1, entries[key[2]])
            for i, key in enumerate(self._order.islice(start, stop))
        ]

"""Leaderboards: named boards of player scores, live on every node, pushed once a second.

Rules:

* The database is the truth. A write is one atomic upsert per ``(board, player)``: the new
  score is computed by the database from the row it holds (``add`` and ``max`` read the row
  under its lock), and the row's ``version`` grows by one. The upsert mirrors
  :func:`croupier.core.ranking.apply_mode`.
* Every node holds a :class:`~croupier.core.ranking.Ranking` replica of each board it has
  used, loaded from the database on first use (and, for watched boards, on start). After a
  write, the writing node sends the rows it wrote (absolute values and versions) on the
  board's internal broker channel; every node with the board loaded takes each entry only if
  its version is newer than the one it holds. Replicas therefore converge whatever the order
  or repetition of those messages. A node subscribes to the channel *before* it reads the
  board, so no write falls between the two.
* On one node, submissions go through one writer task that upserts them in batches (one
  statement, one transaction per batch, rows in ``(board, player)`` order so that two nodes
  never lock rows in opposite orders); two submissions for the same player never share a
  batch, so each sees the other's result.
* A watched board pushes ``leaderboard.updated`` (top 10) on its channel at most once a
  second, and at most a second after a change: the first change after a quiet second
  schedules a push for one second after the last push. Across nodes, the node that pushes is
  the one that made the newest change it knows of (changes are ordered by time, then node
  id); every node learns of every change through the internal messages, so exactly one node
  believes itself the newest once they have arrived (two may push in the same second while
  they are in flight). A node that pushes tells the others, which then count their second
  from that push.

Known limits: a broker message lost on the way (a Redis reconnect) leaves that entry stale on
the nodes that missed it until the next write to it or a restart; if the node that made the
newest change stops before its push, the next change pushes.

The package: :mod:`.rules` (names, limits, shapes; no I/O), :mod:`.store` (the tables and
their SQL), :mod:`.service` (the service), :mod:`.api` (its HTTP routes and OpenAPI
operations).
"""

from .rules import (
    BOARD_PATTERN,
    PLAYER_PATTERN,
    Watch,
    check_board,
    check_player,
    number,
    pushed_entry,
)
from .service import Leaderboards

__all__ = [
    "BOARD_PATTERN",
    "PLAYER_PATTERN",
    "Leaderboards",
    "Watch",
    "check_board",
    "check_player",
    "number",
    "pushed_entry",
]

"""Tournaments: schedule, registration, rounds, scores, rebuys, prizes — live and exactly once.

See ``docs/tournaments.md`` for the API and the events.
"""

from .service import Tournaments

__all__ = ["Tournaments"]

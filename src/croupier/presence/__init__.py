"""Presence: who is in a channel."""

from .base import Presence
from .memory import MemoryPresence
from .redis import RedisPresence

__all__ = ["MemoryPresence", "Presence", "RedisPresence", "presence_from_url"]


def presence_from_url(url: str | None) -> Presence:
    """``redis://…`` for presence across nodes; anything else (or nothing) keeps it in this
    process."""
    if url and url.split("://", 1)[0].lower() in ("redis", "rediss"):
        return RedisPresence(url)
    return MemoryPresence()

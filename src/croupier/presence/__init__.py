"""Presence: who is in a channel."""

from .base import Presence
from .memory import MemoryPresence

__all__ = ["MemoryPresence", "Presence"]

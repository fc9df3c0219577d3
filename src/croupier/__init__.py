"""Croupier: a self-hosted real-time gateway for game and casino platforms."""

from .config import NamespaceRules, PublishRule, Settings, SubscribeMode, load_settings
from .errors import CroupierError
from .events import Event, History, Position
from .gateway import Gateway, PublishRequest, PublishResult

__all__ = [
    "CroupierError",
    "Event",
    "Gateway",
    "History",
    "NamespaceRules",
    "Position",
    "PublishRequest",
    "PublishResult",
    "PublishRule",
    "Settings",
    "SubscribeMode",
    "load_settings",
]

__version__ = "0.1.0"

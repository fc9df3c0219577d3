"""Bodies and replies of the admin routes the console stands on (see :mod:`.admin`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .schemas import EventData, EventType, PositionReply

__all__ = [
    "AdminChannel",
    "AdminChannelsReply",
    "AdminPublishBody",
    "ChannelDetailReply",
    "ChannelRules",
    "ConnectionInfo",
    "ConnectionsReply",
    "DisconnectBody",
    "DisconnectReply",
    "LogRecord",
    "NodeSubscribers",
    "OutboxLimits",
    "PresenceSummary",
    "SubscriptionInfo",
]

Reason = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern="^[a-z0-9_.-]+$",
        description="Why, as a short code the client receives in its `disconnect` message.",
        examples=["operator"],
    ),
]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class AdminChannel(msgspec.Struct):
    channel: str
    offset: int
    epoch: str
    subscribers: int  # on every node that answered


class AdminChannelsReply(msgspec.Struct):
    channels: list[AdminChannel]
    next: str | None = None  # pass as ``after`` for the next page; null: the last page


class NodeSubscribers(msgspec.Struct):
    node: str
    subscribers: int


class PresenceSummary(msgspec.Struct):
    enabled: bool
    count: int
    members: list[dict[str, Any]]


class ChannelRules(msgspec.Struct):
    namespace: str
    history_size: int
    history_ttl: float
    subscribe: str
    presence: bool


class ChannelDetailReply(msgspec.Struct):
    channel: str
    position: PositionReply
    first: int
    rules: ChannelRules
    presence: PresenceSummary
    nodes: list[NodeSubscribers]


class AdminPublishBody(msgspec.Struct, forbid_unknown_fields=True):
    type: EventType
    data: EventData = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    ephemeral: bool = False


class SubscriptionInfo(msgspec.Struct):
    channel: str
    # The last stored event queued to the connection (or where it started); null for an
    # ephemeral channel, or while it is still subscribing.
    position: PositionReply | None = None


class OutboxLimits(msgspec.Struct):
    bytes: int  # past either limit the connection is cut off as a slow consumer
    messages: int


class ConnectionInfo(msgspec.Struct):
    id: str
    node: str
    transport: str  # websocket or sse
    protocol: str  # the codec: native, centrifugo, pusher, an SSE dialect …
    player: str | None
    brand: str | None
    created: int  # ms since the epoch
    last_activity: int  # ms since the epoch: the client's last message
    subscriptions: list[SubscriptionInfo]
    outbox: int  # bytes waiting in the socket's buffer
    outbox_messages: int  # pushed while the buffer was not empty
    outbox_limits: OutboxLimits
    name: str | None = None
    origin: str | None = None
    closed: bool = False


class ConnectionsReply(msgspec.Struct):
    connections: list[ConnectionInfo]
    nodes: list[str]  # the nodes that answered


class DisconnectBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "operator"
    reconnect: bool = True  # whether the client should connect again
    brand: Id | None = None  # a player's: only their connections under this brand


class DisconnectReply(msgspec.Struct):
    disconnected: int
    nodes: list[str]


class LogRecord(msgspec.Struct):
    """One record of the live log, as each ``data:`` line of the stream carries it.

    Besides these, a record has fields of its kind (``channel``, ``player``, ``brand``,
    ``transport``, ``offset``, ``code``, ``reason`` …). ``skipped`` is how many records the
    rate cap left out just before this one on its node.
    """

    t: int
    node: str
    kind: str
    skipped: int | None = None

"""Bodies of the HTTP API as msgspec Structs: the source of the OpenAPI document's schemas.

Request bodies are decoded and validated with these types. Replies are built as plain dicts
in :mod:`croupier.api.http` (the publish path stays an ``orjson.dumps`` away from the wire);
the reply Structs below describe them, and the schemathesis suite checks that they agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "CHANNEL_PATTERN",
    "BatchBody",
    "BroadcastBody",
    "ChannelInfo",
    "ChannelsReply",
    "ErrorDetail",
    "ErrorReply",
    "HealthReply",
    "HistoryEvent",
    "HistoryReply",
    "PositionReply",
    "PresenceReply",
    "PublishBody",
    "PublishReplies",
    "PublishReply",
    "ReadyReply",
    "TokenBody",
    "TokenReply",
]

# Documentation only: the gateway checks names itself (core.channels) so that its errors carry
# the codes ``bad_channel`` / ``bad_type`` rather than msgspec's generic message.
_SEGMENT = "[A-Za-z0-9_.@=-]+"
CHANNEL_PATTERN = f"^{_SEGMENT}(?::{_SEGMENT})*$"
TYPE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\\-]{0,127}$"

ChannelName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=255,
        description="`namespace:rest`, e.g. `tournament:42`; the namespace must be configured.",
        examples=["tournament:42"],
        extra_json_schema={"pattern": CHANNEL_PATTERN},
    ),
]
EventType = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="A dotted event name.",
        examples=["leaderboard.updated"],
        extra_json_schema={"pattern": TYPE_PATTERN},
    ),
]
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="A repeat within 5 minutes is not stored again; its reply is the first "
        "event's, with `duplicate: true`.",
    ),
]
EventData = Annotated[
    msgspec.Raw,
    msgspec.Meta(
        description="Any JSON value, delivered to subscribers as is.",
        extra_json_schema={"default": None},
    ),
]
Ephemeral = Annotated[
    bool, msgspec.Meta(description="Deliver to live subscribers only; never stored or replayed.")
]

_NULL = msgspec.Raw(b"null")


def _null() -> msgspec.Raw:
    # A factory rather than a default: msgspec cannot put a Raw default into a JSON schema.
    return _NULL


# -- requests ------------------------------------------------------------------------------


class PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    """One event for one channel."""

    channel: ChannelName
    type: EventType
    data: EventData = msgspec.field(default_factory=_null)
    idempotency_key: IdempotencyKey | None = None
    ephemeral: Ephemeral = False


class BroadcastBody(msgspec.Struct, forbid_unknown_fields=True):
    """The same event for many channels, stored in one append."""

    channels: Annotated[
        list[ChannelName],
        msgspec.Meta(
            min_length=1,
            max_length=1000,
            description="Distinct channel names.",
            extra_json_schema={"uniqueItems": True},
        ),
    ]
    type: EventType
    data: EventData = msgspec.field(default_factory=_null)
    idempotency_key: IdempotencyKey | None = None
    ephemeral: Ephemeral = False


class BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Many events, validated together and stored in one append: all or none."""

    events: Annotated[
        list[PublishBody],
        msgspec.Meta(
            min_length=1,
            max_length=10_000,
            description="At most the server's `max_batch` (1000 by default).",
        ),
    ]


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    """The claims of a player token to mint."""

    sub: Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="Player id.")]
    brand: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=128, description="Display name.")] | None = None
    channels: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=255)]],
        msgspec.Meta(
            max_length=256, description="Channels, or glob patterns such as `room:*`, granted."
        ),
    ] = []
    # JSON Schema counts 600.0 as an integer, so the server does too: a whole-number float.
    ttl: Annotated[
        float, msgspec.Meta(ge=1, le=30 * 86400, multiple_of=1, description="Seconds to expiry.")
    ] = 3600


# -- replies -------------------------------------------------------------------------------


class PublishReply(msgspec.Struct):
    """Where an event went. ``offset`` and ``epoch`` are null for ephemeral events."""

    channel: str
    offset: int | None
    epoch: str | None
    ts: Annotated[str, msgspec.Meta(description="ISO-8601 UTC time of the publish.")]
    duplicate: Annotated[
        bool, msgspec.Meta(description="True when the idempotency key was seen before.")
    ]


class PublishReplies(msgspec.Struct):
    """One result per event, in request order."""

    results: list[PublishReply]


class HistoryEvent(msgspec.Struct):
    type: str
    channel: str
    offset: int
    epoch: str
    ts: str
    data: Any


class PositionReply(msgspec.Struct):
    """A channel's last offset (0 when never written) within its epoch."""

    offset: int
    epoch: str


class HistoryReply(msgspec.Struct):
    """Stored events after ``since``; ``complete`` is false when some were already trimmed."""

    channel: str
    events: list[HistoryEvent]
    position: PositionReply
    first: Annotated[int, msgspec.Meta(description="The lowest offset the log still holds.")]
    complete: bool


class PresenceReply(msgspec.Struct):
    """Who is subscribed; each member has its connection's ``client`` id and player info."""

    channel: str
    count: int
    members: list[dict[str, Any]]


class ChannelInfo(msgspec.Struct):
    channel: str
    offset: int
    epoch: str
    subscribers: Annotated[int, msgspec.Meta(description="Subscribers on this node.")]


class ChannelsReply(msgspec.Struct):
    channels: list[ChannelInfo]


class TokenReply(msgspec.Struct):
    token: str
    expires_in: Annotated[int, msgspec.Meta(description="Seconds.")]


class HealthReply(msgspec.Struct):
    status: Literal["ok"]


class ReadyReply(msgspec.Struct):
    status: Literal["ready"]
    log_ms: Annotated[float, msgspec.Meta(description="Time the log took to answer.")]


class ErrorDetail(msgspec.Struct):
    code: Annotated[
        str, msgspec.Meta(description="Stable, for programs: `bad_channel`, `invalid_key`, …")
    ]
    message: Annotated[str, msgspec.Meta(description="For people.")]


class ErrorReply(msgspec.Struct):
    """Every error, whatever its status."""

    error: ErrorDetail

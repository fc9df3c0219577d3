"""Request bodies of the HTTP API, validated by msgspec (also the OpenAPI schemas' source)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["BatchBody", "BroadcastBody", "PublishBody", "TokenBody"]

ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class PublishBody(msgspec.Struct, forbid_unknown_fields=True):
    channel: ChannelName
    type: EventType
    data: msgspec.Raw = msgspec.Raw(b"null")
    idempotency_key: IdempotencyKey | None = None
    ephemeral: bool = False


class BroadcastBody(msgspec.Struct, forbid_unknown_fields=True):
    channels: Annotated[list[ChannelName], msgspec.Meta(min_length=1, max_length=1000)]
    type: EventType
    data: msgspec.Raw = msgspec.Raw(b"null")
    idempotency_key: IdempotencyKey | None = None
    ephemeral: bool = False


class BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[PublishBody], msgspec.Meta(min_length=1, max_length=10_000)]


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    sub: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    brand: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    channels: Annotated[list[ChannelName], msgspec.Meta(max_length=256)] = []
    ttl: Annotated[int, msgspec.Meta(ge=1, le=30 * 86400)] = 3600

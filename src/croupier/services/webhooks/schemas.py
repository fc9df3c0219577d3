"""Bodies and replies of the webhook API, as msgspec Structs (the OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "DeliveryAttemptReply",
    "DeliveryDetailReply",
    "DeliveryReply",
    "WebhookCreateBody",
    "WebhookCreatedReply",
    "WebhookDeletedReply",
    "WebhookDeliveriesReply",
    "WebhookRedeliveredReply",
    "WebhookReply",
    "WebhookUpdateBody",
    "WebhooksReply",
]

_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# http or https, a host name or IPv4 address, an optional port, then any printable ASCII.
URL_PATTERN = f"^https?://{_LABEL}(?:\\.{_LABEL})*(?::{_PORT})?(?:[/?][!-~]*)?$"
TYPE_PATTERN = "^[A-Za-z0-9_.:*-]+$"
ENDPOINT_ID_PATTERN = "^wh_[0-9a-f]{24}$"
DELIVERY_ID_PATTERN = "^dl_[0-9a-f]{32}$"

Url = Annotated[
    str,
    msgspec.Meta(
        pattern=URL_PATTERN,
        max_length=2048,
        description="Where deliveries are POSTed: `http` or `https`, host, optional port and "
        "path. Redirects are not followed.",
        examples=["https://backend.casino.example/hooks/croupier"],
    ),
]
TypePattern = Annotated[
    str,
    msgspec.Meta(
        pattern=TYPE_PATTERN,
        min_length=1,
        max_length=128,
        description="An event type, or a pattern where `*` matches any characters.",
        examples=["tournament.completed"],
    ),
]
EventTypes = Annotated[
    list[TypePattern],
    msgspec.Meta(
        min_length=1,
        max_length=50,
        description="The event types delivered to this endpoint, e.g. `tournament.completed`, "
        "`rebuy.requested`, `notification`, `*_balance_update`, or `*` for all.",
    ),
]
Secret = Annotated[
    str,
    msgspec.Meta(
        pattern="^[!-~]+$",
        min_length=16,
        max_length=256,
        description="The HMAC-SHA256 signing key (printable ASCII). Generated when absent.",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=500)]
Status = Literal["pending", "delivered", "dead"]


class WebhookCreateBody(msgspec.Struct, forbid_unknown_fields=True):
    """A webhook endpoint to register."""

    url: Url
    event_types: EventTypes
    secret: Secret | None = None
    active: bool = True
    description: Description = ""


class WebhookUpdateBody(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; the others stay as they are."""

    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    secret: Secret | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    description: Description | UnsetType = UNSET


class WebhookReply(msgspec.Struct):
    """A registered endpoint. The secret is shown only when it is created."""

    id: str
    url: str
    event_types: list[str]
    active: bool
    description: str
    created_at: Annotated[float, msgspec.Meta(description="Unix seconds.")]
    updated_at: float
    format: Annotated[
        str,
        msgspec.Meta(
            description="`croupier`, or `pusher` for a Pusher app's webhook (from the config)."
        ),
    ] = "croupier"


class WebhookCreatedReply(msgspec.Struct):
    """The new endpoint, with its secret: store it now, it is never shown again."""

    id: str
    url: str
    event_types: list[str]
    active: bool
    description: str
    created_at: float
    updated_at: float
    secret: str
    format: str = "croupier"


class WebhooksReply(msgspec.Struct):
    webhooks: list[WebhookReply]


class WebhookDeletedReply(msgspec.Struct):
    id: str
    deleted: Literal[True]


class DeliveryReply(msgspec.Struct):
    """One (endpoint, event) delivery from the outbox."""

    id: str
    endpoint_id: str
    type: str
    channel: str
    offset: int | None
    ts: str
    status: Status
    attempts: Annotated[int, msgspec.Meta(description="HTTP attempts made in all.")]
    next_at: Annotated[float, msgspec.Meta(description="When a pending one is next tried.")]
    created_at: float
    finished_at: float | None
    last_status: Annotated[int | None, msgspec.Meta(description="The last HTTP status.")]
    last_error: str | None


class DeliveryAttemptReply(msgspec.Struct):
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryDetailReply(msgspec.Struct):
    """A delivery, the body it POSTs, and every attempt."""

    delivery: DeliveryReply
    body: Annotated[str, msgspec.Meta(description="The exact JSON body sent.")]
    attempts: list[DeliveryAttemptReply]


class WebhookDeliveriesReply(msgspec.Struct):
    """Newest first."""

    deliveries: list[DeliveryReply]


class WebhookRedeliveredReply(msgspec.Struct):
    redelivered: Annotated[int, msgspec.Meta(description="Dead letters made pending again.")]

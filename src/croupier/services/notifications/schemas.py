"""What the notification centre's HTTP API takes and answers."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .rules import MAX_BATCH, MAX_DETAILS_BYTES, UUID_PATTERN

__all__ = [
    "MarkReadBody",
    "MarkedRead",
    "NewNotification",
    "Notification",
    "NotificationBatchBody",
    "NotificationCreated",
    "NotificationFor",
    "NotificationPage",
    "NotificationsCreated",
    "UnreadCount",
]

EventName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern="^[a-z0-9_.-]+$",
        description="`bonus_granted`, `promotion_available`, `deposit_success`, "
        "`withdrawal_approved`, `kyc_approved`, `kyc_rejected`, `account_update`, "
        "`tournament_update`, `tournament_win`, `limit_reminder`, `document_required`, "
        "or a custom name.",
        examples=["bonus_granted"],
    ),
]
MessageId = Annotated[
    str,
    msgspec.Meta(
        min_length=36,
        max_length=36,
        pattern=UUID_PATTERN,
        description="A UUID. A repeat is not stored again.",
        examples=["a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"],
    ),
]
PlayerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.@=-]+$")]
Details = Annotated[
    dict[str, Any],
    msgspec.Meta(description=f"Any JSON object, at most {MAX_DETAILS_BYTES} bytes encoded."),
]


class NewNotification(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One notification for the player in the path."""

    event: EventName
    event_details: Details = {}
    message_id: MessageId | None = None


class NotificationFor(NewNotification, forbid_unknown_fields=True, kw_only=True):
    """One notification of a batch, naming its player."""

    brand_id: PlayerId
    player_id: PlayerId


class NotificationBatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Notifications for any players, stored together: all or none."""

    notifications: Annotated[
        list[NotificationFor], msgspec.Meta(min_length=1, max_length=MAX_BATCH)
    ]


class MarkReadBody(msgspec.Struct, forbid_unknown_fields=True):
    """Which notifications to mark read: those listed, or every one with ``all``."""

    message_ids: Annotated[list[MessageId], msgspec.Meta(max_length=MAX_BATCH)] = []
    all: bool = False


class Notification(msgspec.Struct):
    """A notification as the player sees it (the data of its ``notification`` event)."""

    message_id: str
    event: str
    event_details: dict[str, Any]
    is_read: bool
    time: Annotated[str, msgspec.Meta(description="Created at, UTC, `YYYY-MM-DD HH:MM:SS`.")]


class NotificationCreated(msgspec.Struct):
    brand_id: int | str
    player_id: int | str
    notification: Notification
    duplicate: Annotated[
        bool, msgspec.Meta(description="True when the message_id was already stored.")
    ]


class NotificationsCreated(msgspec.Struct):
    results: list[NotificationCreated]


class NotificationPage(msgspec.Struct):
    """Newest first. ``next_cursor`` is null on the last page."""

    notifications: list[Notification]
    next_cursor: str | None
    unread: int


class UnreadCount(msgspec.Struct):
    unread: int


class MarkedRead(msgspec.Struct):
    marked: Annotated[int, msgspec.Meta(description="Notifications that were unread before.")]
    unread: int

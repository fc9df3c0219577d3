"""The notification centre's rules, without I/O: names, ids, sizes, retention."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from ...errors import BadRequest, PayloadTooLarge, shown

__all__ = [
    "CURSOR",
    "CURSOR_PATTERN",
    "EVENTS",
    "EVENT_TYPE",
    "MAX_BATCH",
    "MAX_DETAILS_BYTES",
    "RETENTION_DAYS",
    "UUID_PATTERN",
    "encode_details",
    "validate_event",
    "validate_message_id",
]

EVENTS = frozenset(
    {
        "bonus_granted",
        "promotion_available",
        "deposit_success",
        "withdrawal_approved",
        "kyc_approved",
        "kyc_rejected",
        "account_update",
        "tournament_update",
        "tournament_win",
        "limit_reminder",
        "document_required",
    }
)
RETENTION_DAYS = 90
MAX_DETAILS_BYTES = 16 * 1024
MAX_BATCH = 1000
EVENT_TYPE = "notification"

_EVENT = re.compile(r"[a-z0-9_.-]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A page of a player's list ends at a notification: "{created_ms}_{message_id}".
CURSOR = re.compile(r"([0-9]{1,15})_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
CURSOR_PATTERN = f"^{CURSOR.pattern}$"


def validate_event(event: str) -> str:
    """Return ``event`` if it is a well-formed name (known or custom).

    Raises:
        BadRequest: not 1-64 characters of ``[a-z0-9_.-]``.
    """
    if not _EVENT.fullmatch(event):
        raise BadRequest(
            f"invalid event {shown(event, 80)}: use 1-64 characters of a-z 0-9 _ . -",
            code="bad_event",
        )
    return event


def validate_message_id(message_id: str | None) -> str:
    """A fresh UUID when ``message_id`` is None, else ``message_id`` in lower case.

    Raises:
        BadRequest: not a UUID in its 8-4-4-4-12 hexadecimal form.
    """
    if message_id is None:
        return str(uuid.uuid4())
    if not _UUID.fullmatch(message_id):
        raise BadRequest(f"message_id {shown(message_id, 80)} is not a UUID", code="bad_message_id")
    return message_id.lower()


def encode_details(details: dict[str, Any]) -> bytes:
    """``details`` as JSON.

    Raises:
        PayloadTooLarge: over :data:`MAX_DETAILS_BYTES`.
    """
    # msgspec, not orjson: it also writes the integers beyond 64 bits that JSON allows.
    raw = msgspec.json.encode(details)
    if len(raw) > MAX_DETAILS_BYTES:
        raise PayloadTooLarge(
            f"event_details is {len(raw)} bytes encoded; the limit is {MAX_DETAILS_BYTES}"
        )
    return raw

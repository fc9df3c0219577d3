"""The player notification centre: stored, pushed at once, listed, marked read, purged.

A backend creates a notification (or a batch of them) for a player. Each is stored, then
published as a ``notification`` event on ``player:{brand}:{player}``, whose data is exactly
what the casino front end parses::

    {"message_id": "…uuid…", "event": "bonus_granted", "event_details": {…},
     "is_read": false, "time": "2025-10-22 14:30:45"}

Rules:

* ``message_id`` is a UUID, made here when the backend sends none. A repeated id is a no-op
  that answers with the notification already stored (``duplicate: true``); an id already
  used for another player is a conflict.
* ``event`` is one of :data:`EVENTS` or a custom name of ``[a-z0-9_.-]{1,64}``;
  ``event_details`` a JSON object of at most :data:`MAX_DETAILS_BYTES` encoded.
* ``time`` is the creation time in UTC, ``YYYY-MM-DD HH:MM:SS``.
* Storing comes first: a notification that could not be published (the log is down) is
  kept and published again by the maintenance task, with ``message_id`` as the idempotency
  key, so a retry never shows a player the same notification twice.
* Notifications are kept :data:`RETENTION_DAYS` days, then purged.

The package: :mod:`.rules` (names, ids, sizes, without I/O), :mod:`.schemas` (what the API
takes and answers), :mod:`.store` (the table and its SQL), :mod:`.service` (the service),
:mod:`.api` (its HTTP routes and OpenAPI operations).
"""

from .rules import (
    EVENTS,
    MAX_DETAILS_BYTES,
    RETENTION_DAYS,
    encode_details,
    validate_event,
    validate_message_id,
)
from .schemas import NewNotification, Notification
from .service import NotificationsService
from .store import keep_published, migrate_table

__all__ = [
    "EVENTS",
    "MAX_DETAILS_BYTES",
    "RETENTION_DAYS",
    "NewNotification",
    "Notification",
    "NotificationsService",
    "encode_details",
    "keep_published",
    "migrate_table",
    "validate_event",
    "validate_message_id",
]

"""Webhooks: signed (HMAC-SHA256) HTTP deliveries of chosen event types, from a durable outbox,
retried with exponential backoff and full jitter, then dead-lettered for redelivery.

See docs/webhooks.md for the API, the headers and how a receiver verifies a delivery.
"""

from .delivery import WebhookSettings
from .service import WebhookService
from .signing import sign, verify

__all__ = ["WebhookService", "WebhookSettings", "sign", "verify"]

"""The OpenAPI operations of the webhook routes (see ``WebhookService.routes``)."""

from __future__ import annotations

from typing import Any

from ...api.openapi import Operation
from . import schemas as s

__all__ = ["OPERATIONS"]

_ERRORS = (400, 401, 403, 404, 503)
_ENDPOINT_ID: tuple[str, str, dict[str, Any]] = (
    "endpoint_id",
    "path",
    {
        "description": "The endpoint's id, as returned when it was registered.",
        "schema": {"type": "string", "pattern": s.ENDPOINT_ID_PATTERN},
        "example": "wh_5f0c2a7e9b1d4c3a8e6f0b2d",
    },
)
_DELIVERY_ID: tuple[str, str, dict[str, Any]] = (
    "delivery_id",
    "path",
    {
        "description": "A delivery's id (also sent in the `Croupier-Webhook-Id` header).",
        "schema": {"type": "string", "pattern": s.DELIVERY_ID_PATTERN},
        "example": "dl_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    },
)
_STATUS: tuple[str, str, dict[str, Any]] = (
    "status",
    "query",
    {
        "description": "Only deliveries in this state; `dead` lists the dead letters.",
        "schema": {"type": "string", "enum": ["pending", "delivered", "dead"]},
        "example": "dead",
    },
)
_TS = 1735732800.0
_ENDPOINT = {
    "id": "wh_5f0c2a7e9b1d4c3a8e6f0b2d",
    "url": "https://backend.casino.example/hooks/croupier",
    "event_types": ["tournament.completed", "rebuy.requested", "*_balance_update"],
    "active": True,
    "description": "casino backend",
    "created_at": _TS,
    "updated_at": _TS,
}
_DELIVERY = {
    "id": "dl_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "endpoint_id": _ENDPOINT["id"],
    "type": "tournament.completed",
    "channel": "tournament:42",
    "offset": 311,
    "ts": "2025-01-01T12:00:00.000Z",
    "status": "dead",
    "attempts": 12,
    "next_at": _TS + 7200,
    "created_at": _TS,
    "finished_at": _TS + 7200,
    "last_status": 503,
    "last_error": "HTTP 503",
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/api/v1/webhooks",
        "create_webhook",
        "Register a webhook endpoint; the reply shows its signing secret, once",
        "webhooks",
        scope="admin",
        body=s.WebhookCreateBody,
        body_example={
            "url": _ENDPOINT["url"],
            "event_types": _ENDPOINT["event_types"],
            "description": "casino backend",
        },
        reply=s.WebhookCreatedReply,
        reply_example={**_ENDPOINT, "secret": "whsec_3q2-7wEAAAB1c2VyLXNlY3JldC1rZXktZm9yLWRvY3M"},
        errors=(400, 401, 403, 413, 503),
    ),
    Operation(
        "get",
        "/api/v1/webhooks",
        "list_webhooks",
        "Registered webhook endpoints, oldest first",
        "webhooks",
        scope="admin",
        reply=s.WebhooksReply,
        reply_example={"webhooks": [_ENDPOINT]},
        query=("limit",),
        errors=(400, 401, 403, 503),
    ),
    Operation(
        "get",
        "/api/v1/webhooks/{endpoint_id}",
        "get_webhook",
        "One webhook endpoint",
        "webhooks",
        scope="admin",
        reply=s.WebhookReply,
        reply_example=_ENDPOINT,
        params=(_ENDPOINT_ID,),
        errors=_ERRORS,
    ),
    Operation(
        "patch",
        "/api/v1/webhooks/{endpoint_id}",
        "update_webhook",
        "Change a webhook endpoint's URL, event types, secret, active flag or description",
        "webhooks",
        scope="admin",
        body=s.WebhookUpdateBody,
        body_example={"active": False},
        reply=s.WebhookReply,
        reply_example={**_ENDPOINT, "active": False},
        params=(_ENDPOINT_ID,),
        errors=(400, 401, 403, 404, 413, 503),
    ),
    Operation(
        "delete",
        "/api/v1/webhooks/{endpoint_id}",
        "delete_webhook",
        "Remove a webhook endpoint and its deliveries",
        "webhooks",
        scope="admin",
        reply=s.WebhookDeletedReply,
        reply_example={"id": _ENDPOINT["id"], "deleted": True},
        params=(_ENDPOINT_ID,),
        errors=_ERRORS,
    ),
    Operation(
        "get",
        "/api/v1/webhooks/{endpoint_id}/deliveries",
        "list_webhook_deliveries",
        "An endpoint's deliveries, newest first (status=dead: its dead letters)",
        "webhooks",
        scope="admin",
        reply=s.WebhookDeliveriesReply,
        reply_example={"deliveries": [_DELIVERY]},
        query=("limit",),
        params=(_ENDPOINT_ID, _STATUS),
        errors=_ERRORS,
    ),
    Operation(
        "get",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}",
        "get_webhook_delivery",
        "One delivery, its body and every attempt (status code, error, duration)",
        "webhooks",
        scope="admin",
        reply=s.DeliveryDetailReply,
        reply_example={
            "delivery": _DELIVERY,
            "body": '{"id":"dl_0a1b2c3d4e5f60718293a4b5c6d7e8f9","type":"tournament.completed",'
            '"channel":"tournament:42","offset":311,"ts":"2025-01-01T12:00:00.000Z",'
            '"data":{"tournament_id":"42"}}',
            "attempts": [
                {
                    "attempt": 1,
                    "at": _TS,
                    "status_code": 503,
                    "error": "HTTP 503",
                    "duration_ms": 12.5,
                }
            ],
        },
        params=(_ENDPOINT_ID, _DELIVERY_ID),
        errors=_ERRORS,
    ),
    Operation(
        "post",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
        "redeliver_webhook_delivery",
        "Send a dead letter again, with a fresh attempt budget",
        "webhooks",
        scope="admin",
        reply=s.WebhookRedeliveredReply,
        reply_example={"redelivered": 1},
        params=(_ENDPOINT_ID, _DELIVERY_ID),
        errors=_ERRORS,
    ),
    Operation(
        "post",
        "/api/v1/webhooks/{endpoint_id}/redeliver",
        "redeliver_webhook_dead_letters",
        "Send all of an endpoint's dead letters again",
        "webhooks",
        scope="admin",
        reply=s.WebhookRedeliveredReply,
        reply_example={"redelivered": 3},
        params=(_ENDPOINT_ID,),
        errors=_ERRORS,
    ),
)

"""The notification centre's HTTP routes and their OpenAPI operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...api.openapi import Operation
from ...api.toolkit import int_query, json_response, query, read_body, require_key
from ...errors import BadRequest, shown
from ..players import (
    LIMIT_PARAM,
    PLAYER_PARAMS,
    Player,
    authorize,
    check_id,
    cursor_param,
    player_from_path,
)
from .rules import CURSOR_PATTERN
from .schemas import (
    MarkedRead,
    MarkReadBody,
    NewNotification,
    NotificationBatchBody,
    NotificationCreated,
    NotificationPage,
    NotificationsCreated,
    UnreadCount,
)

if TYPE_CHECKING:
    from .service import NotificationsService

__all__ = ["OPERATIONS", "bool_query", "created", "routes"]


def routes(service: NotificationsService) -> list[web.RouteDef]:
    async def create_one(request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish", players=False)
        body = await read_body(request, NewNotification)
        ((_, notification, duplicate),) = await service.create([(who, body)])
        return json_response(created(who, notification, duplicate))

    async def create_batch(request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, NotificationBatchBody)
        items = [
            (Player(check_id("brand_id", n.brand_id), check_id("player_id", n.player_id)), n)
            for n in body.notifications
        ]
        results = await service.create(items)
        return json_response({"results": [created(w, n, d) for w, n, d in results]})

    async def list_(request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        unread_only = bool_query(request, "unread")
        limit = int_query(request, "limit", 50, 1, 200)
        cursor = query(request, "cursor")
        page = await service.page(who, unread_only=unread_only, limit=limit, cursor=cursor)
        return json_response(page)

    async def unread(request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "read")
        return json_response({"unread": await service.unread(who)})

    async def mark_read(request: web.Request) -> web.Response:
        who = player_from_path(request)
        authorize(request, who, "publish")
        body = await read_body(request, MarkReadBody)
        marked = await service.mark_read(who, body.message_ids, everything=body.all)
        return json_response({"marked": marked, "unread": await service.unread(who)})

    base = _BASE
    return [
        web.post(base, create_one),
        web.get(base, list_, allow_head=False),
        web.get(base + "/unread-count", unread, allow_head=False),
        web.post(base + "/read", mark_read),
        web.post("/api/v1/notifications/batch", create_batch),
    ]


def bool_query(request: web.Request, name: str) -> bool:
    """The boolean query parameter ``name`` (``true``/``1``, ``false``/``0``); False if absent."""
    raw = query(request, name)
    if raw is None:
        return False
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, not {shown(raw, 32)}")


def created(who: Player, notification: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    """The answer for one created (or repeated) notification."""
    return {
        **who.ids(),
        "notification": notification,
        "duplicate": duplicate,
    }


# -- the OpenAPI document -----------------------------------------------------------------------

_BASE = "/api/v1/players/{brand}/{player}/notifications"
_EXAMPLE = {
    "message_id": "a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c",
    "event": "bonus_granted",
    "event_details": {"bonus_amount": 100, "bonus_type": "welcome", "currency": "USD"},
    "is_read": False,
    "time": "2025-10-22 14:30:45",
}
_NEW = {k: _EXAMPLE[k] for k in ("message_id", "event", "event_details")}
_CREATED = {"brand_id": 1001, "player_id": 12345, "notification": _EXAMPLE, "duplicate": False}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        _BASE,
        "create_notification",
        "Store a notification for a player and push it on their channel",
        "notifications",
        scope="publish",
        body=NewNotification,
        body_example=_NEW,
        reply=NotificationCreated,
        reply_example=_CREATED,
        errors=(400, 401, 403, 409, 413, 503),
        params=PLAYER_PARAMS,
    ),
    Operation(
        "post",
        "/api/v1/notifications/batch",
        "create_notifications",
        "Store notifications for many players at once (all or none) and push them",
        "notifications",
        scope="publish",
        body=NotificationBatchBody,
        body_example={
            "notifications": [
                {**_NEW, "brand_id": "1001", "player_id": "12345"},
                {
                    "brand_id": "1001",
                    "player_id": "777",
                    "event": "promotion_available",
                    "event_details": {"promo_id": "spring-25"},
                },
            ]
        },
        reply=NotificationsCreated,
        reply_example={"results": [_CREATED]},
        errors=(400, 401, 403, 409, 413, 503),
    ),
    Operation(
        "get",
        _BASE,
        "list_notifications",
        "A player's notifications, newest first (API key or the player's own token)",
        "notifications",
        scope="read",
        reply=NotificationPage,
        reply_example={"notifications": [_EXAMPLE], "next_cursor": None, "unread": 1},
        errors=(400, 401, 403, 503),
        params=(
            *PLAYER_PARAMS,
            (
                "unread",
                "query",
                {
                    "description": "Only unread notifications.",
                    "schema": {"type": "boolean", "default": False},
                },
            ),
            ("limit", "query", LIMIT_PARAM),
            (
                "cursor",
                "query",
                cursor_param(CURSOR_PATTERN, "1761143445000_a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"),
            ),
        ),
    ),
    Operation(
        "get",
        _BASE + "/unread-count",
        "count_unread_notifications",
        "How many of a player's notifications are unread",
        "notifications",
        scope="read",
        reply=UnreadCount,
        reply_example={"unread": 3},
        errors=(400, 401, 403, 503),
        params=PLAYER_PARAMS,
    ),
    Operation(
        "post",
        _BASE + "/read",
        "mark_notifications_read",
        "Mark some or all of a player's notifications read",
        "notifications",
        scope="publish",
        body=MarkReadBody,
        body_example={"message_ids": ["a7f8c934-1b2d-4e5f-9c8a-7d6e5f4a3b2c"]},
        reply=MarkedRead,
        reply_example={"marked": 1, "unread": 2},
        errors=(400, 401, 403, 413, 503),
        params=PLAYER_PARAMS,
    ),
)

"""The live sports HTTP routes, their bodies and replies, and their OpenAPI operations."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from aiohttp import web

from ...api.openapi import Operation
from ...api.toolkit import int_query, query, read_body, require_key, struct_response
from ...errors import BadRequest, Conflict, NotFound, shown
from .events_ws import EventsInfo, events_handler
from .rules import MAX_UPDATE_BYTES, Status

if TYPE_CHECKING:
    from .service import Sports
    from .store import SportEvent

__all__ = ["EVENT_ID_PATTERN", "OPERATIONS", "routes"]

EVENT_ID_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_BASE = "/api/v1/sports/events"
_E = _BASE + "/{eventId}"

EventId = Annotated[str, msgspec.Meta(pattern=EVENT_ID_PATTERN, examples=["ipl-final"])]
SportName = Annotated[
    str,
    msgspec.Meta(
        pattern="^[a-z][a-z0-9_-]{0,31}$",
        description="`cricket`, `chess`, `football`, or any other sport (generic updates).",
        examples=["cricket"],
    ),
]
Competitor = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class NewEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename="camel"):
    """A sporting event to schedule; its channel is ``match:{id}``."""

    id: EventId
    sport: SportName
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    competitors: Annotated[
        list[Competitor],
        msgspec.Meta(
            min_length=1,
            max_length=64,
            description="Teams or players; for football, home first, then away.",
        ),
    ]
    starts_at: (
        Annotated[str, msgspec.Meta(max_length=40, description="Start time, ISO 8601.")] | None
    ) = None


class StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    """The status to move to: scheduled → live → finished (or scheduled → finished)."""

    status: Status


class SportEventReply(msgspec.Struct, rename="camel"):
    """A sporting event (also the data of its ``sport.event.updated`` events)."""

    id: str
    sport: str
    title: str
    competitors: list[str]
    status: Status
    starts_at: str | None
    channel: str
    seq: Annotated[int, msgspec.Meta(description="The last published score update's number.")]


class SportEventsReply(msgspec.Struct):
    events: list[SportEventReply]


class PositionReply(msgspec.Struct):
    offset: int
    epoch: str


class SnapshotReply(msgspec.Struct, rename="camel"):
    """The scoreboard after update ``seq``, and the channel position of that update: subscribe
    with ``since`` set to it to get every later update exactly once."""

    event_id: str
    sport: str
    seq: int
    snapshot: dict[str, Any]
    position: PositionReply | None


class WarningReply(msgspec.Struct):
    """A consistency finding on an update that was taken all the same."""

    code: Annotated[
        str,
        msgspec.Meta(
            description="The rule: `ball_order`, `score_fell`, `bowler_wickets`, `game_over`, "
            "`ply_order`, `minute_order` or `score_mismatch`."
        ),
    ]
    message: str


class UpdateReply(msgspec.Struct, rename="camel"):
    event_id: str
    seq: int
    offset: int | None
    epoch: str | None
    snapshot: dict[str, Any]
    warnings: Annotated[
        list[WarningReply],
        msgspec.Meta(
            description="What in the update disagrees with the scoreboard (empty when "
            "nothing does). The update is taken anyway and the feed's figures win: a "
            "correction or a missed event must not freeze the match."
        ),
    ]


class ViewersReply(msgspec.Struct, rename="camel"):
    event_id: str
    viewers: int
    peak: int


def _event_id(request: web.Request) -> str:
    value = request.match_info["eventId"]
    if not _EVENT_ID.fullmatch(value):
        raise NotFound(
            f"no sporting event {shown(value, 64)}: an id is 1-64 of A-Z a-z 0-9 _ . @ = -"
        )
    return value


def event_reply(view: dict[str, Any]) -> SportEventReply:
    return msgspec.convert(view, SportEventReply)


def snapshot_reply(event: SportEvent) -> SnapshotReply:
    position = None
    if event.snap_offset is not None and event.snap_epoch is not None:
        position = PositionReply(event.snap_offset, event.snap_epoch)
    return SnapshotReply(event.id, event.sport, event.published_seq, event.pub_snapshot, position)


def routes(service: Sports) -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, NewEvent)
        event = await service.create(
            body.id, body.sport, body.title, tuple(body.competitors), body.starts_at
        )
        return struct_response(event_reply(service.view(event)))

    async def list_(request: web.Request) -> web.Response:
        require_key(request, "read")
        raw = query(request, "status")
        if raw is not None and raw not in {x.value for x in Status}:
            raise BadRequest(f"status must be one of {', '.join(x.value for x in Status)}")
        limit = int_query(request, "limit", 100, 1, 1000)
        found = await service.find(None if raw is None else Status(raw), limit)
        return struct_response(SportEventsReply([event_reply(service.view(e)) for e in found]))

    async def get(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(event_reply(service.view(await service.get(_event_id(request)))))

    async def snapshot(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(snapshot_reply(await service.get(_event_id(request))))

    async def viewers(request: web.Request) -> web.Response:
        require_key(request, "read")
        event_id = _event_id(request)
        count, peak = await service.viewers(event_id)
        return struct_response(ViewersReply(event_id, count, peak))

    async def status(request: web.Request) -> web.Response:
        require_key(request, "publish")
        event_id = _event_id(request)
        body = await read_body(request, StatusBody)
        return struct_response(
            event_reply(service.view(await service.set_status(event_id, body.status)))
        )

    async def update(request: web.Request) -> web.Response:
        require_key(request, "publish")
        event_id = _event_id(request)
        doc = await read_body(request, dict[str, Any], max_bytes=MAX_UPDATE_BYTES)
        try:
            event, published, findings = await service.update(event_id, doc)
        except BadRequest as exc:
            if exc.code != "bad_update":
                raise
            # Which shape is right depends on the event's sport, not on the request alone:
            # an update that does not fit it conflicts with the event.
            raise Conflict(exc.message, code="bad_update") from None
        return struct_response(
            UpdateReply(
                event.id,
                event.seq,
                published.offset,
                published.epoch,
                event.snapshot,
                [WarningReply(f.code, f.message) for f in findings],
            )
        )

    return [
        web.post(_BASE, create),
        web.get(_BASE, list_, allow_head=False),
        web.get(_E, get, allow_head=False),
        web.get(_E + "/snapshot", snapshot, allow_head=False),
        web.get(_E + "/viewers", viewers, allow_head=False),
        web.post(_E + "/status", status),
        web.post(_E + "/updates", update),
        web.get("/ws/events", events_handler(service), allow_head=False),
    ]


# -- the OpenAPI operations ------------------------------------------------------------------

_EID = (
    "eventId",
    "path",
    {
        "description": "The sporting event's id.",
        "schema": {"type": "string", "pattern": EVENT_ID_PATTERN, "minLength": 1, "maxLength": 64},
        "example": "ipl-final",
    },
)
_EVENT = {
    "id": "ipl-final",
    "sport": "cricket",
    "title": "IPL Final: MI v CSK",
    "competitors": ["Mumbai Indians", "Chennai Super Kings"],
    "status": "live",
    "startsAt": "2026-05-28T14:00:00Z",
    "channel": "match:ipl-final",
    "seq": 12,
}
_BALL = {
    "ball 12": "13/1",
    "comment": "Bumrah has drawn the first blood",
    "batsman": {"name": "rohit", "runs": "100", "balls": "96"},
    "bowler": {"name": "yuvi", "overs": "3.6", "runs": "10", "maiden": "1", "wickets": "1"},
}
_BOARD = {
    "ball": 12,
    "score": "13/1",
    "runs": 13,
    "wickets": 1,
    "comment": "Bumrah has drawn the first blood",
    "batsman": {"name": "rohit", "runs": 100, "balls": 96},
    "bowler": {"name": "yuvi", "overs": "3.6", "runs": 10, "maiden": 1, "wickets": 1},
}
_WRITE = (400, 401, 403, 404, 409, 413, 503)
_READ = (400, 401, 403, 404, 503)


class _UpdateBody(msgspec.Struct):
    """The sport's update object: cricket per ball, chess per move, football per incident,
    generic for any other sport (see the sports documentation), at most 8 KiB. One that does
    not fit the event's sport is answered 409 ``bad_update``; one that disagrees with the
    scoreboard (a ball from the past, a score that disagrees with the goals) is taken, with
    ``warnings`` in the answer."""


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        _BASE,
        "create_sport_event",
        "Schedule a sporting event (channel match:{id})",
        "sports",
        scope="publish",
        body=NewEvent,
        body_example={k: v for k, v in _EVENT.items() if k not in ("status", "channel", "seq")},
        reply=SportEventReply,
        reply_example={**_EVENT, "status": "scheduled", "seq": 0},
        errors=(400, 401, 403, 409, 413, 503),
    ),
    Operation(
        "get",
        _BASE,
        "list_sport_events",
        "Sporting events, newest first",
        "sports",
        scope="read",
        reply=SportEventsReply,
        reply_example={"events": [_EVENT]},
        errors=(400, 401, 403, 503),
        params=(
            (
                "status",
                "query",
                {
                    "description": "Only events with this status.",
                    "schema": {"type": "string", "enum": [x.value for x in Status]},
                },
            ),
            (
                "limit",
                "query",
                {
                    "description": "At most this many events.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ),
        ),
    ),
    Operation(
        "get",
        _E,
        "get_sport_event",
        "One sporting event",
        "sports",
        scope="read",
        reply=SportEventReply,
        reply_example=_EVENT,
        errors=_READ,
        params=(_EID,),
    ),
    Operation(
        "get",
        _E + "/snapshot",
        "get_sport_event_snapshot",
        "The latest scoreboard and the channel position it stands at",
        "sports",
        scope="read",
        reply=SnapshotReply,
        reply_example={
            "eventId": "ipl-final",
            "sport": "cricket",
            "seq": 12,
            "snapshot": _BOARD,
            "position": {"offset": 14, "epoch": "k3v9"},
        },
        errors=_READ,
        params=(_EID,),
    ),
    Operation(
        "get",
        _E + "/viewers",
        "get_sport_event_viewers",
        "Current viewers (across nodes with Redis presence) and the peak",
        "sports",
        scope="read",
        reply=ViewersReply,
        reply_example={"eventId": "ipl-final", "viewers": 10412, "peak": 12007},
        errors=_READ,
        params=(_EID,),
    ),
    Operation(
        "post",
        _E + "/status",
        "set_sport_event_status",
        "Move the event to live or finished (publishes sport.event.updated)",
        "sports",
        scope="publish",
        body=StatusBody,
        body_example={"status": "live"},
        reply=SportEventReply,
        reply_example=_EVENT,
        errors=_WRITE,
        params=(_EID,),
    ),
    Operation(
        "post",
        _E + "/updates",
        "post_score_update",
        "Validate, store and publish one score update (score.updated)",
        "sports",
        scope="publish",
        body=_UpdateBody,
        body_example=_BALL,
        reply=UpdateReply,
        reply_example={
            "eventId": "ipl-final",
            "seq": 12,
            "offset": 14,
            "epoch": "k3v9",
            "snapshot": _BOARD,
            "warnings": [],
        },
        errors=_WRITE,
        params=(_EID,),
    ),
    Operation(
        "get",
        "/ws/events",
        "sport_events_socket",
        "Viewer WebSocket: send {id, eventId} first; a plain GET describes it",
        "sports",
        reply=EventsInfo,
        reply_example={
            "join": {"id": "viewer-17", "eventId": "ipl-final"},
            "reaction": {"type": "reaction", "emoji": "🔥", "comment": "what a shot"},
            "upgrade": "websocket",
        },
        errors=(),
    ),
)

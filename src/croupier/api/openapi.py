"""The OpenAPI 3.1 document of the HTTP API, built from the msgspec Structs in ``schemas``.

:data:`OPERATIONS` is the one table of what each route takes and answers; a unit test checks it
against the aiohttp router in both directions, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from ..config import Settings
from . import schemas as s

__all__ = ["OPERATIONS", "Operation", "api_version", "build_openapi"]

_REF = "#/components/schemas/{name}"
_ERROR_TEXT = {
    400: "Invalid request: body, query, channel name (`bad_channel`), unknown namespace "
    "(`unknown_namespace`), event type (`bad_type`).",
    401: "No API key, or an unknown one (`invalid_key`).",
    403: "The API key lacks the scope this operation needs.",
    404: "No such route (e.g. a channel name with `/` in it).",
    409: "The request contradicts the current state (e.g. a balance too small for it).",
    413: "The body, or an event's data, is over the limit.",
    503: "The log cannot take or answer the request right now; retry.",
}
_ERROR_EXAMPLE = {
    400: ("unknown_namespace", "namespace 'casino' is not configured"),
    401: ("unauthorized", "an API key is required: send 'Authorization: Bearer <key>'"),
    403: ("forbidden", "the API key 'backend' lacks the 'publish' scope"),
    404: ("not_found", "Not Found"),
    409: ("conflict", "the balance is 40; redeeming 100 would make it negative"),
    413: ("too_large", "event data is 70000 bytes; the limit is 65536"),
    503: ("unavailable", "the log could not store the events"),
}
_WRITE = (400, 401, 403, 413, 503)
_READ = (400, 401, 403, 404, 503)

_TS = "2025-01-01T12:00:00.000Z"
_EPOCH = "k3v9"
_PUBLISHED = {
    "channel": "tournament:42",
    "offset": 17,
    "epoch": _EPOCH,
    "ts": _TS,
    "duplicate": False,
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of the HTTP API as the document shows it.

    ``scope`` is the API key scope it needs (``None``: no key). ``reply`` is the 200 body's
    Struct (``None``: not JSON, see ``media``). ``errors`` are the statuses answered with
    :class:`~croupier.api.schemas.ErrorReply`.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    scope: str | None = None
    body: type[msgspec.Struct] | None = None
    body_example: Any = None
    reply: type[msgspec.Struct] | None = None
    reply_example: Any = None
    media: str = "application/json"
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    # Parameters beyond the shared ones: (name, "path" or "query", OpenAPI parameter fields
    # such as description, schema, example, required).
    params: tuple[tuple[str, str, dict[str, Any]], ...] = ()


_QUERY: dict[str, dict[str, Any]] = {
    "since": {
        "description": "Return events with offsets above this one (0: from the start).",
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
        "example": 10,
    },
    "limit": {
        "description": "At most this many items.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "example": 50,
    },
    "prefix": {
        "description": "Only channels whose name starts with this.",
        "schema": {"type": "string", "maxLength": 255, "default": ""},
        "example": "tournament:",
    },
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/api/v1/publish",
        "publish",
        "Store (unless ephemeral) and deliver one event",
        "publish",
        scope="publish",
        body=s.PublishBody,
        body_example={
            "channel": "tournament:42",
            "type": "leaderboard.updated",
            "data": {"top": [{"player": "p1", "score": 1200}]},
            "idempotency_key": "lb-42-0017",
        },
        reply=s.PublishReply,
        reply_example=_PUBLISHED,
        errors=_WRITE,
    ),
    Operation(
        "post",
        "/api/v1/broadcast",
        "broadcast",
        "Publish the same event on many channels at once",
        "publish",
        scope="publish",
        body=s.BroadcastBody,
        body_example={
            "channels": ["table:7", "table:8"],
            "type": "table.closing",
            "data": {"in_seconds": 60},
        },
        reply=s.PublishReplies,
        reply_example={
            "results": [
                {**_PUBLISHED, "channel": "table:7", "offset": 3},
                {**_PUBLISHED, "channel": "table:8", "offset": 5},
            ]
        },
        errors=_WRITE,
    ),
    Operation(
        "post",
        "/api/v1/batch",
        "batch",
        "Publish many events in one append: all are stored or none",
        "publish",
        scope="publish",
        body=s.BatchBody,
        body_example={
            "events": [
                {"channel": "match:9", "type": "score", "data": {"home": 1, "away": 0}},
                {"channel": "lobby", "type": "match.scored", "data": {"match": 9}},
            ]
        },
        reply=s.PublishReplies,
        reply_example={
            "results": [
                {**_PUBLISHED, "channel": "match:9", "offset": 4},
                {**_PUBLISHED, "channel": "lobby", "offset": 88},
            ]
        },
        errors=_WRITE,
    ),
    Operation(
        "post",
        "/api/v1/tokens",
        "mint_token",
        "Mint a player token (HS256 servers only)",
        "auth",
        scope="admin",
        body=s.TokenBody,
        body_example={"sub": "p1", "brand": "1001", "name": "Ann", "ttl": 600},
        reply=s.TokenReply,
        reply_example={"token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "expires_in": 600},
        errors=(400, 401, 403, 413),
    ),
    Operation(
        "get",
        "/api/v1/channels",
        "list_channels",
        "Channels with stored events, by name",
        "channels",
        scope="read",
        reply=s.ChannelsReply,
        reply_example={
            "channels": [
                {"channel": "tournament:42", "offset": 17, "epoch": _EPOCH, "subscribers": 3}
            ]
        },
        query=("prefix", "limit"),
        errors=(400, 401, 403, 503),
    ),
    Operation(
        "get",
        "/api/v1/channels/{channel}/history",
        "channel_history",
        "Stored events of a channel after an offset",
        "channels",
        scope="read",
        reply=s.HistoryReply,
        reply_example={
            "channel": "tournament:42",
            "events": [
                {
                    "type": "leaderboard.updated",
                    "channel": "tournament:42",
                    "offset": 17,
                    "epoch": _EPOCH,
                    "ts": _TS,
                    "data": {"top": []},
                }
            ],
            "position": {"offset": 17, "epoch": _EPOCH},
            "first": 1,
            "complete": True,
        },
        query=("since", "limit"),
        errors=_READ,
    ),
    Operation(
        "get",
        "/api/v1/channels/{channel}/presence",
        "channel_presence",
        "Who is subscribed to a channel",
        "channels",
        scope="read",
        reply=s.PresenceReply,
        reply_example={
            "channel": "room:5",
            "count": 1,
            "members": [{"client": "c-81f2", "id": "p1", "name": "Ann"}],
        },
        query=("limit",),
        errors=_READ,
    ),
    Operation(
        "get",
        "/api/v1/openapi.json",
        "openapi",
        "This document",
        "meta",
        media="application/json",
    ),
    Operation(
        "get",
        "/healthz",
        "healthz",
        "The process is up",
        "meta",
        reply=s.HealthReply,
        reply_example={"status": "ok"},
    ),
    Operation(
        "get",
        "/readyz",
        "readyz",
        "The gateway is started and its log answers",
        "meta",
        reply=s.ReadyReply,
        reply_example={"status": "ready", "log_ms": 0.4},
        errors=(503,),
    ),
    Operation(
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        "meta",
        media="text/plain",
    ),
)

_SECURITY_TEXT = (
    "A backend API key, sent as `Authorization: Bearer <key>`. Keys carry scopes: `publish` "
    "(publish, broadcast, batch), `read` (channels, history, presence) and `admin` (tokens). "
    "Keys from `CROUPIER_API_KEYS` have every scope; the config file can narrow them."
)


def api_version() -> str:
    """The installed package's version (``0.0.0`` from a source tree)."""
    try:
        return metadata.version("croupier")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def _channel_pattern(settings: Settings) -> str:
    """The channel pattern, narrowed to the configured namespaces unless ``*`` is set."""
    if "*" in settings.namespaces:
        return s.CHANNEL_PATTERN
    names = "|".join(re.escape(n) for n in sorted(settings.namespaces))
    return s.CHANNEL_PATTERN.replace("^[A-Za-z0-9_.@=-]+", f"^(?:{names})", 1)


def _narrow(node: Any, pattern: str) -> Any:
    """``node`` with every channel-name pattern replaced by ``pattern``."""
    if isinstance(node, Mapping):
        return {
            k: pattern if k == "pattern" and v == s.CHANNEL_PATTERN else _narrow(v, pattern)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_narrow(v, pattern) for v in node]
    return node


_JSON_VALUE_REF = _REF.format(name="JsonValue")
_JSON_VALUE = {
    "description": "Any JSON value within the server's limits (see core.jsonsafe): arrays and "
    "objects nested at most `limits.max_json_depth` deep (64 by default, the body's own levels "
    "included); integers from -2^63 to 2^64-1; other numbers finite. Anything else is refused "
    "with 400 `too_deep` or `bad_number`.",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "string"},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1},
        # JSON Schema cannot tell 1e20 from 100000000000000000000 (the server takes the
        # first, a finite double, and refuses the second): every number passes here.
        {"type": "number"},
        {"type": "array", "items": {"$ref": _JSON_VALUE_REF}},
        {"type": "object", "additionalProperties": {"$ref": _JSON_VALUE_REF}},
    ],
}
# Keywords that say what a schema holds; a schema with none of them takes any value.
_SAYS_WHAT = frozenset({"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "not"})


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every value it leaves open (``Any``, raw event data, the fields of an
    object beyond those it names) documented as a ``JsonValue``: the limits the server
    applies to the whole body."""
    out = dict(schema)
    if not _SAYS_WHAT & out.keys():
        out["$ref"] = _JSON_VALUE_REF
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = {"$ref": _JSON_VALUE_REF}  # the fields it ignores too
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bounded(v) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _bounded(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [_bounded(v) for v in out[key]]
    return out


def _error_response(status: int) -> dict[str, Any]:
    code, message = _ERROR_EXAMPLE[status]
    return {
        "description": _ERROR_TEXT[status],
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(name="ErrorReply")},
                "example": {"error": {"code": code, "message": message}},
            }
        },
    }


def _operation(op: Operation, channel_pattern: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        # OpenAPI 3.1 lets a non-OAuth requirement list the roles it needs: here, the scope.
        "security": [{"apiKey": [op.scope]}] if op.scope else [],
    }
    parameters: list[dict[str, Any]] = []
    if "{channel}" in op.path:
        parameters.append(
            {
                "name": "channel",
                "in": "path",
                "required": True,
                "description": "A channel name such as `tournament:42`.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": channel_pattern,
                },
                "example": "tournament:42",
            }
        )
    parameters += [{"name": q, "in": "query", "required": False, **_QUERY[q]} for q in op.query]
    for name, where, fields in op.params:
        parameters.append({"name": name, "in": where, "required": where == "path", **fields})
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": _REF.format(name=op.body.__name__)},
                    "example": op.body_example,
                }
            },
        }
    if op.reply is not None:
        ok: dict[str, Any] = {
            "schema": {"$ref": _REF.format(name=op.reply.__name__)},
            "example": op.reply_example,
        }
    elif op.media == "application/json":
        ok = {"schema": {"type": "object"}}
    else:
        ok = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {"200": {"description": op.summary, "content": {op.media: ok}}}
    for status in op.errors:
        responses[str(status)] = _error_response(status)
    doc["responses"] = responses
    return doc


def build_openapi(settings: Settings, extra: Sequence[Operation] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server running with ``settings``.

    ``extra`` are the services' operations, documented beside the gateway's own.

    Channel-name patterns list the configured namespaces, and the batch size its limit, so
    that a client generating requests from the document gets the same answers as the server.
    """
    types = sorted(
        {t for op in (*OPERATIONS, *extra) for t in (op.body, op.reply) if t is not None}
        | {s.ErrorReply},
        key=lambda t: t.__name__,
    )
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    pattern = _channel_pattern(settings)
    components = _narrow(components, pattern)
    components = {name: _bounded(schema) for name, schema in components.items()}
    components["JsonValue"] = _JSON_VALUE
    components["BatchBody"]["properties"]["events"]["maxItems"] = settings.limits.max_batch
    paths: dict[str, dict[str, Any]] = {}
    for op in (*OPERATIONS, *extra):
        paths.setdefault(op.path, {})[op.method] = _operation(op, pattern)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Croupier HTTP API",
            "version": api_version(),
            "description": "Publish events to channels and read their history and presence. "
            'Errors are `{"error": {"code", "message"}}` with a stable `code`.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": _SECURITY_TEXT}
            },
        },
    }

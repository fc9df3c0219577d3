"""HTTP routes for backends: publish, broadcast, batch, history, presence, channels, health."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from ..auth import mint_token
from ..core.channels import resolve
from ..errors import BadRequest, CroupierError, PayloadTooLarge, Unavailable
from ..gateway import Gateway, PublishRequest, PublishResult
from ..transports.common import GATEWAY, SERVICES
from .openapi import build_openapi
from .schemas import BatchBody, BroadcastBody, PublishBody, TokenBody

__all__ = ["error_middleware", "routes"]

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 16 * 1024 * 1024


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}`` with the right status."""
    try:
        return await handler(request)
    except CroupierError as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "bad_request"
        )
        response = _error(exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 must say which methods the route takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _gateway(request: web.Request) -> Gateway:
    gateway: Gateway = request.app[GATEWAY]
    return gateway


def _api_key(request: web.Request, scope: str) -> None:
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else None
    _gateway(request).auth.verify_key(key, scope)


async def _body(request: web.Request, kind: type[T]) -> T:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"request body over {MAX_BODY} bytes")
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}", code="bad_request") from None
    except msgspec.DecodeError:
        raise BadRequest("the request body is not valid JSON", code="bad_json") from None


def _result(result: PublishResult) -> dict[str, Any]:
    event = result.event
    return {
        "channel": event.channel,
        "offset": event.offset,
        "epoch": event.epoch,
        "ts": event.ts,
        "duplicate": result.duplicate,
    }


def _request(body: PublishBody | BroadcastBody, channel: str) -> PublishRequest:
    return PublishRequest(
        channel, body.type, bytes(body.data), body.idempotency_key, body.ephemeral
    )


async def publish(request: web.Request) -> web.Response:
    _api_key(request, "publish")
    body = await _body(request, PublishBody)
    result = await _gateway(request).publish(_request(body, body.channel))
    return _json(_result(result))


async def broadcast(request: web.Request) -> web.Response:
    _api_key(request, "publish")
    body = await _body(request, BroadcastBody)
    if len(set(body.channels)) != len(body.channels):
        raise BadRequest("each channel may appear only once in a broadcast")
    results = await _gateway(request).publish_many([_request(body, c) for c in body.channels])
    return _json({"results": [_result(r) for r in results]})


async def batch(request: web.Request) -> web.Response:
    _api_key(request, "publish")
    gateway = _gateway(request)
    body = await _body(request, BatchBody)
    if len(body.events) > gateway.settings.limits.max_batch:
        raise BadRequest(f"at most {gateway.settings.limits.max_batch} events per batch")
    results = await gateway.publish_many([_request(e, e.channel) for e in body.events])
    return _json({"results": [_result(r) for r in results]})


_INTEGER = re.compile(r"-?[0-9]+")


def _query(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name} may be given only once")
    return values[0] if values else None


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = _query(request, name)
    if raw is None:
        return default
    # int() alone would also take " 7", "+7", "1_000" and non-ASCII digits, and raise on
    # thousands of digits; nothing in range needs more than 20 characters.
    if not _INTEGER.fullmatch(raw) or len(raw) > 20:
        raise BadRequest(f"{name} must be an integer, not {raw[:32]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


async def history(request: web.Request) -> web.Response:
    _api_key(request, "read")
    gateway = _gateway(request)
    channel, _ = resolve(gateway.settings, request.match_info["channel"])
    since = _int_query(request, "since", 0, 0, 2**62)
    limit = _int_query(request, "limit", 100, 1, 1000)
    result = await gateway.log.read(channel, since, limit)
    complete = since + 1 >= result.first or since >= result.position.offset
    events = [e.as_dict() for e in result.events]
    return _json(
        {
            "channel": channel,
            "events": events,
            "position": result.position.as_dict(),
            "first": result.first,
            "complete": complete,
        }
    )


async def presence(request: web.Request) -> web.Response:
    _api_key(request, "read")
    gateway = _gateway(request)
    channel, _ = resolve(gateway.settings, request.match_info["channel"])
    limit = _int_query(request, "limit", 100, 1, 1000)
    count = await gateway.presence.count(channel)
    members = await gateway.presence.members(channel, limit)
    return _json({"channel": channel, "count": count, "members": members})


async def channels(request: web.Request) -> web.Response:
    _api_key(request, "read")
    gateway = _gateway(request)
    prefix = _query(request, "prefix") or ""
    if len(prefix) > 255:
        raise BadRequest("prefix must be at most 255 characters")
    limit = _int_query(request, "limit", 100, 1, 1000)
    found = await gateway.log.channels(prefix, limit)
    return _json(
        {
            "channels": [
                {
                    "channel": name,
                    "offset": position.offset,
                    "epoch": position.epoch,
                    "subscribers": gateway.hub.subscribers(name),
                }
                for name, position in found
            ]
        }
    )


async def tokens(request: web.Request) -> web.Response:
    """Mint a player token (admin scope): for consoles, demos and backends without JWT code."""
    _api_key(request, "admin")
    gateway = _gateway(request)
    secret = gateway.settings.jwt_secret
    if not secret or "HS256" not in gateway.settings.jwt_algorithms:
        raise BadRequest(
            "this server verifies tokens with a public key; mint them where the private key is",
            code="not_supported",
        )
    body = await _body(request, TokenBody)
    ttl = int(body.ttl)
    token = mint_token(
        secret, body.sub, brand=body.brand, name=body.name, channels=body.channels, ttl=ttl
    )
    return _json({"token": token, "expires_in": ttl})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gateway = _gateway(request)
    if not gateway.ready:
        return _error(503, "not_ready", "the gateway is starting or stopping")
    started = time.perf_counter()
    try:
        await gateway.log.position("lobby")
    except Exception as exc:  # any failure to read means not ready
        raise Unavailable(f"the log does not answer: {exc}") from exc
    return _json({"status": "ready", "log_ms": round((time.perf_counter() - started) * 1000, 3)})


async def openapi(request: web.Request) -> web.Response:
    services = request.app.get(SERVICES, [])
    extra = [op for service in services for op in service.operations]
    return _json(build_openapi(_gateway(request).settings, extra))


async def metrics(request: web.Request) -> web.Response:
    body = _gateway(request).metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/publish", publish),
        web.post("/api/v1/broadcast", broadcast),
        web.post("/api/v1/batch", batch),
        web.post("/api/v1/tokens", tokens),
        web.get("/api/v1/channels", channels),
        web.get("/api/v1/channels/{channel}/history", history),
        web.get("/api/v1/channels/{channel}/presence", presence),
        web.get("/api/v1/openapi.json", openapi),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
    ]

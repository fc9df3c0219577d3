"""HTTP routes for backends: publish, broadcast, batch, history, presence, channels, health."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..auth import mint_token
from ..config import ApiKey
from ..core.channels import resolve
from ..errors import BadRequest, Unavailable
from ..gateway import PublishRequest, PublishResult
from .openapi import Operation, build_openapi
from .schemas import BatchBody, BroadcastBody, PublishBody, TokenBody
from .toolkit import (
    error_response,
    gateway_of,
    int_query,
    json_response,
    query,
    read_body,
    require_key,
)

__all__ = ["SERVICE_OPERATIONS", "history_page", "routes"]

SERVICE_OPERATIONS = web.AppKey("service_operations", list[Operation])
"""The services' OpenAPI operations, served with the core API's in ``/api/v1/openapi.json``."""


def _result(result: PublishResult) -> dict[str, Any]:
    event = result.event
    return {
        "channel": event.channel,
        "offset": event.offset,
        "epoch": event.epoch,
        "ts": event.ts,
        "duplicate": result.duplicate,
    }


def _request(body: PublishBody | BroadcastBody, channel: str, key: ApiKey) -> PublishRequest:
    return PublishRequest(
        channel,
        body.type,
        bytes(body.data),
        body.idempotency_key,
        body.ephemeral,
        source=f"key:{key.name}",
    )


async def publish(request: web.Request) -> web.Response:
    key = require_key(request, "publish")
    body = await read_body(request, PublishBody)
    result = await gateway_of(request).publish(_request(body, body.channel, key))
    return json_response(_result(result))


async def broadcast(request: web.Request) -> web.Response:
    key = require_key(request, "publish")
    body = await read_body(request, BroadcastBody)
    if len(set(body.channels)) != len(body.channels):
        raise BadRequest("each channel may appear only once in a broadcast")
    results = await gateway_of(request).publish_many(
        [_request(body, c, key) for c in body.channels]
    )
    return json_response({"results": [_result(r) for r in results]})


async def batch(request: web.Request) -> web.Response:
    key = require_key(request, "publish")
    gateway = gateway_of(request)
    body = await read_body(request, BatchBody)
    if len(body.events) > gateway.settings.limits.max_batch:
        raise BadRequest(f"at most {gateway.settings.limits.max_batch} events per batch")
    results = await gateway.publish_many([_request(e, e.channel, key) for e in body.events])
    return json_response({"results": [_result(r) for r in results]})


async def history(request: web.Request) -> web.Response:
    require_key(request, "read")
    return json_response(await history_page(request, 100))


async def history_page(request: web.Request, default_limit: int) -> dict[str, Any]:
    """The stored events of the route's ``{channel}`` after its ``since`` query (at most
    ``limit``, ``default_limit`` when absent): what every history route answers."""
    gateway = gateway_of(request)
    channel, _ = resolve(gateway.settings, request.match_info["channel"])
    since = int_query(request, "since", 0, 0, 2**62)
    limit = int_query(request, "limit", default_limit, 1, 1000)
    result = await gateway.log.read(channel, since, limit)
    return {
        "channel": channel,
        "events": [e.as_dict() for e in result.events],
        "position": result.position.as_dict(),
        "first": result.first,
        "complete": since + 1 >= result.first or since >= result.position.offset,
    }


async def presence(request: web.Request) -> web.Response:
    require_key(request, "read")
    gateway = gateway_of(request)
    channel, _ = resolve(gateway.settings, request.match_info["channel"])
    limit = int_query(request, "limit", 100, 1, 1000)
    count = await gateway.presence.count(channel)
    members = await gateway.presence.members(channel, limit)
    return json_response({"channel": channel, "count": count, "members": members})


async def channels(request: web.Request) -> web.Response:
    require_key(request, "read")
    gateway = gateway_of(request)
    prefix = query(request, "prefix") or ""
    if len(prefix) > 255:
        raise BadRequest("prefix must be at most 255 characters")
    limit = int_query(request, "limit", 100, 1, 1000)
    found = await gateway.log.channels(prefix, limit)
    return json_response(
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
    require_key(request, "admin")
    gateway = gateway_of(request)
    secret = gateway.settings.jwt_secret
    if not secret or "HS256" not in gateway.settings.jwt_algorithms:
        raise BadRequest(
            "this server verifies tokens with a public key; mint them where the private key is",
            code="not_supported",
        )
    body = await read_body(request, TokenBody)
    ttl = int(body.ttl)
    token = mint_token(
        secret, body.sub, brand=body.brand, name=body.name, channels=body.channels, ttl=ttl
    )
    return json_response({"token": token, "expires_in": ttl})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    if not gateway.ready:
        return error_response(Unavailable("the gateway is starting or stopping", code="not_ready"))
    started = time.perf_counter()
    try:
        await gateway.log.position("lobby")
    except Exception as exc:  # any failure to read means not ready
        raise Unavailable(f"the log does not answer: {exc}") from exc
    return json_response(
        {"status": "ready", "log_ms": round((time.perf_counter() - started) * 1000, 3)}
    )


async def openapi(request: web.Request) -> web.Response:
    extra = request.app.get(SERVICE_OPERATIONS, [])
    return json_response(build_openapi(gateway_of(request).settings, extra))


async def metrics(request: web.Request) -> web.Response:
    body = gateway_of(request).metrics.render()
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

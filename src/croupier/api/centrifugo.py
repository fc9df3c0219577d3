"""Centrifugo's server HTTP API: ``POST /api/{method}`` with ``X-API-Key``.

Backends written for Centrifugo (the ``cent`` client, or plain HTTP) publish into Croupier
and read its history and presence unchanged. Each method takes Centrifugo's request body
and answers ``{"result": {…}}`` or ``{"error": {"code", "message"}}`` with the protocol's
numeric codes, as Centrifugo does.

Rules:

* The key comes from ``X-API-Key`` or ``Authorization: apikey <key>`` and is one of
  Croupier's API keys: ``publish`` and ``broadcast`` need its ``publish`` scope,
  ``disconnect`` its ``admin`` scope, the rest its ``read`` scope. A missing or unknown key
  is ``401``; a key without the scope is answered with error 103 (permission denied).
* A body that is not JSON, or does not fit the method, is ``400``; an unknown method ``404``.
* A publication's Croupier event type is its ``tags["type"]`` (default ``publication``);
  ``skip_history`` publishes an ephemeral event. Binary payloads (``b64data``) are refused:
  Croupier's events are JSON.
* ``channels``, ``disconnect`` and ``info`` answer for this node.
"""

from __future__ import annotations

import fnmatch
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from .. import __version__
from ..core.centrifugo import error_for, history_result, presence_result, presence_stats_result
from ..core.channels import resolve
from ..errors import BadRequest, CroupierError, Forbidden
from ..gateway import Gateway, PublishRequest, PublishResult
from .openapi import Operation
from .toolkit import gateway_of, json_response, read_body

__all__ = [
    "OPERATIONS",
    "CentrifugoApiError",
    "CentrifugoApiReply",
    "CentrifugoBroadcast",
    "CentrifugoChannel",
    "CentrifugoChannels",
    "CentrifugoDisconnect",
    "CentrifugoDisconnectAdvice",
    "CentrifugoHistory",
    "CentrifugoInfo",
    "CentrifugoPosition",
    "CentrifugoPublish",
    "centrifugo_api_routes",
]

DEFAULT_TYPE = "publication"
_MEMBERS_MAX = 10_000
_CHANNELS_MAX = 10_000


# JSON Schema counts 3.0 as an integer, so the server does too: whole-number floats.
_Offset = Annotated[float, msgspec.Meta(ge=0, le=2**53 - 1, multiple_of=1)]
_Limit = Annotated[float, msgspec.Meta(ge=-1, le=2**31 - 1, multiple_of=1)]


class CentrifugoPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    offset: _Offset = 0
    epoch: str = ""


class CentrifugoPublish(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channel: str
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str | None = None
    idempotency_key: str | None = None


class CentrifugoBroadcast(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channels: list[str]
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str | None = None
    idempotency_key: str | None = None


class CentrifugoHistory(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channel: str
    limit: _Limit | None = None
    since: CentrifugoPosition | None = None
    reverse: bool = False


class CentrifugoChannel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channel: str


class CentrifugoChannels(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pattern: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class CentrifugoDisconnectAdvice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[float, msgspec.Meta(ge=0, le=4999, multiple_of=1)] = 0
    reason: str = ""


class CentrifugoDisconnect(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user: str
    client: str | None = None
    session: str | None = None
    whitelist: list[str] | None = None
    disconnect: CentrifugoDisconnectAdvice | None = None


class CentrifugoInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


def _not_available(message: str) -> BadRequest:
    return BadRequest(message, code="not_available")


def _payload(data: msgspec.Raw | msgspec.UnsetType, b64data: str | None) -> bytes:
    if isinstance(data, msgspec.Raw):
        return bytes(data)
    if b64data is not None:
        raise BadRequest("b64data is not supported: Croupier's events are JSON; send data")
    raise BadRequest("data is required")


def _event_type(tags: dict[str, str] | None) -> str:
    return (tags or {}).get("type") or DEFAULT_TYPE


def _publish_request(
    channel: str, body: CentrifugoPublish | CentrifugoBroadcast, payload: bytes
) -> PublishRequest:
    return PublishRequest(
        channel,
        _event_type(body.tags),
        payload,
        body.idempotency_key,
        ephemeral=body.skip_history,
    )


def _publish_result(result: PublishResult) -> dict[str, Any]:
    event = result.event
    if event.offset is None:
        return {}
    return {"offset": event.offset, "epoch": event.epoch}


async def _publish(gateway: Gateway, body: CentrifugoPublish) -> dict[str, Any]:
    payload = _payload(body.data, body.b64data)
    result = await gateway.publish(_publish_request(body.channel, body, payload))
    return _publish_result(result)


async def _broadcast(gateway: Gateway, body: CentrifugoBroadcast) -> dict[str, Any]:
    payload = _payload(body.data, body.b64data)
    if len(body.channels) > gateway.settings.limits.max_batch:
        raise BadRequest(f"at most {gateway.settings.limits.max_batch} channels per broadcast")
    # Each channel gets its own answer: one that cannot take the publication does not stop
    # the others, as in Centrifugo. The valid ones are stored in one append.
    responses: list[dict[str, Any]] = [{} for _ in body.channels]
    valid: list[tuple[int, PublishRequest]] = []
    seen: set[str] = set()
    for i, channel in enumerate(body.channels):
        request = _publish_request(channel, body, payload)
        try:
            if channel in seen:
                raise BadRequest(f"{channel} appears more than once in the broadcast")
            seen.add(channel)
            gateway.check(request)
        except CroupierError as exc:
            responses[i] = _error(exc)
        else:
            valid.append((i, request))
    if valid:
        results = await gateway.publish_many([request for _, request in valid])
        for (i, _), result in zip(valid, results, strict=True):
            responses[i] = {"result": _publish_result(result)}
    return {"responses": responses}


def _history_rules(gateway: Gateway, channel: str) -> str:
    name, rules = resolve(gateway.settings, channel)
    if not rules.stored:
        raise _not_available(f"{name} keeps no history (its namespace is ephemeral)")
    return name


async def _history(gateway: Gateway, body: CentrifugoHistory) -> dict[str, Any]:
    channel = _history_rules(gateway, body.channel)
    most = gateway.settings.limits.recover_max
    limit = int(body.limit or 0)
    if limit < 0 or limit > most:
        limit = most  # -1: as many as allowed
    since = body.since
    history = await gateway.history(
        channel,
        limit=limit,
        since=None if since is None else (int(since.offset), since.epoch or None),
        reverse=body.reverse,
    )
    return history_result(history.events, history.position)


async def _presence_members(gateway: Gateway, channel: str) -> list[Any]:
    name, rules = resolve(gateway.settings, channel)
    if not rules.presence:
        raise _not_available(f"{name} keeps no presence (its namespace has presence off)")
    return await gateway.presence.members(name, _MEMBERS_MAX)


async def _presence(gateway: Gateway, body: CentrifugoChannel) -> dict[str, Any]:
    return presence_result(await _presence_members(gateway, body.channel))


async def _presence_stats(gateway: Gateway, body: CentrifugoChannel) -> dict[str, Any]:
    return presence_stats_result(await _presence_members(gateway, body.channel))


async def _channels(gateway: Gateway, body: CentrifugoChannels) -> dict[str, Any]:
    pattern = body.pattern or "*"
    # The literal start of the glob narrows the log's listing of stored channels.
    prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    stored = [name for name, _ in await gateway.log.channels(prefix, _CHANNELS_MAX)]
    candidates = {*stored, *gateway.hub.channels(prefix)}
    wanted = sorted(c for c in candidates if fnmatch.fnmatchcase(c, pattern))
    counts: dict[str, int] = {}
    if wanted:
        for _, answer in await gateway.cluster.ask("subscribers", {"channels": wanted}):
            if isinstance(answer, dict):
                for name, n in answer.items():
                    counts[name] = counts.get(name, 0) + int(n)
    return {"channels": {name: {"num_clients": n} for name, n in sorted(counts.items()) if n}}


async def _disconnect(gateway: Gateway, body: CentrifugoDisconnect) -> dict[str, Any]:
    advice = body.disconnect
    code = int(advice.code) if advice is not None and advice.code else 3503
    question: dict[str, Any] = {
        "player": body.user,
        "reason": advice.reason if advice is not None and advice.reason else "force",
        "reconnect": _reconnects(code),
        "by": "centrifugo-api",
    }
    if body.client:
        question["client"] = body.client
    keep = set(body.whitelist or ())
    if not keep:
        await gateway.cluster.ask("disconnect", question)
        return {}
    for _, answer in await gateway.cluster.ask("connections", {"player": body.user}):
        for conn in answer if isinstance(answer, list) else ():
            client = conn.get("id")
            if client not in keep and (not body.client or client == body.client):
                await gateway.cluster.ask("disconnect", {**question, "client": client})
    return {}


def _reconnects(code: int) -> bool:
    return not (3500 <= code < 4000 or 4500 <= code < 5000)


def _info_method(started: float, uid: str) -> Callable[[Gateway, CentrifugoInfo], Awaitable[Any]]:
    async def info(gateway: Gateway, body: CentrifugoInfo) -> dict[str, Any]:
        connections = list(gateway.connections)
        users = {claims.sub for conn in connections if (claims := conn.claims) is not None}
        return {
            "nodes": [
                {
                    "uid": uid,
                    "name": f"{socket.gethostname()}_{os.getpid()}",
                    "version": f"croupier {__version__}",
                    "num_clients": len(connections),
                    "num_users": len(users),
                    "num_subs": sum(len(c.channels) for c in connections),
                    "num_channels": gateway.hub.channel_count,
                    "uptime": int(time.monotonic() - started),
                }
            ]
        }

    return info


def _error(exc: CroupierError) -> dict[str, Any]:
    code, message, _ = error_for(exc.code, exc.message)
    return {"error": {"code": code, "message": message}}


def _api_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    header = request.headers.get("Authorization", "")
    if header[:7].lower() in ("apikey ", "bearer "):
        return header[7:].strip() or None
    return None


class CentrifugoApiError(msgspec.Struct, frozen=True):
    code: int
    message: str


class CentrifugoApiReply(msgspec.Struct, frozen=True):
    """``result`` (the method's answer) or ``error`` (Centrifugo's numeric code)."""

    result: dict[str, Any] | None = None
    error: CentrifugoApiError | None = None


# method -> (scope, request body, what it does, an example body, an example result)
_DOC: dict[str, tuple[str, type[msgspec.Struct], str, dict[str, Any], dict[str, Any]]] = {
    "publish": (
        "publish",
        CentrifugoPublish,
        "Publish into a channel; `tags.type` is the event type, `skip_history` makes it ephemeral",
        {"channel": "tournament:42", "data": {"score": 1250}, "tags": {"type": "score"}},
        {"offset": 18, "epoch": "k3v9"},
    ),
    "broadcast": (
        "publish",
        CentrifugoBroadcast,
        "Publish into several channels, each answered on its own",
        {"channels": ["tournament:42", "tournament:43"], "data": {"round": 2}},
        {"responses": [{"result": {"offset": 18, "epoch": "k3v9"}}]},
    ),
    "history": (
        "read",
        CentrifugoHistory,
        "A channel's stored publications (limit 0: only the position)",
        {"channel": "tournament:42", "limit": 10},
        {"publications": [{"data": {"score": 1250}, "offset": 18}], "offset": 18, "epoch": "k3v9"},
    ),
    "presence": (
        "read",
        CentrifugoChannel,
        "Who is subscribed to a channel",
        {"channel": "room:r-1"},
        {"presence": {"c-1f2e": {"client": "c-1f2e", "user": "p1"}}},
    ),
    "presence_stats": (
        "read",
        CentrifugoChannel,
        "How many connections and players are subscribed to a channel",
        {"channel": "room:r-1"},
        {"num_clients": 3, "num_users": 2},
    ),
    "channels": (
        "read",
        CentrifugoChannels,
        "Channels with subscribers, matching a glob",
        {"pattern": "tournament:*"},
        {"channels": {"tournament:42": {"num_clients": 87}}},
    ),
    "info": ("read", CentrifugoInfo, "This node", {}, {"nodes": []}),
    "disconnect": (
        "admin",
        CentrifugoDisconnect,
        "Disconnect a player's connections on every node",
        {"user": "p1"},
        {},
    ),
}

OPERATIONS: tuple[Operation, ...] = tuple(
    Operation(
        "post",
        f"/api/{method}",
        f"centrifugo_{method}",
        f"Centrifugo API: {summary} (the key may also come as `X-API-Key`)",
        "centrifugo",
        scope=scope,
        body=body,
        body_example=body_example,
        reply=CentrifugoApiReply,
        reply_example={"result": result_example},
        errors=(400, 401, 413),
    )
    for method, (scope, body, summary, body_example, result_example) in _DOC.items()
)


def centrifugo_api_routes() -> list[web.RouteDef]:
    """The routes of Centrifugo's server HTTP API, ``POST /api/{method}``."""
    started = time.monotonic()
    runs: dict[str, Callable[[Gateway, Any], Awaitable[Any]]] = {
        "publish": _publish,
        "broadcast": _broadcast,
        "history": _history,
        "presence": _presence,
        "presence_stats": _presence_stats,
        "channels": _channels,
        "info": _info_method(started, str(uuid.uuid4())),
        "disconnect": _disconnect,
    }

    def route(method: str) -> web.RouteDef:
        scope, kind, *_ = _DOC[method]
        run = runs[method]

        async def handle(request: web.Request) -> web.Response:
            gateway = gateway_of(request)
            try:
                gateway.auth.verify_key(_api_key(request), scope)
            except Forbidden as exc:
                return json_response(_error(exc))
            body = await read_body(request, kind)
            try:
                result = await run(gateway, body)
            except CroupierError as exc:
                if exc.status >= 500 and exc.code != "unavailable":
                    raise
                return json_response(_error(exc))
            return json_response({"result": result})

        return web.post(f"/api/{method}", handle)

    return [route(method) for method in _DOC]

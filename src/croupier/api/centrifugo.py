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
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from .. import __version__
from ..core.centrifugo import error_for, history_result
from ..core.channels import resolve
from ..errors import BadRequest, CroupierError, Forbidden, NotFound, shown
from ..events import Event
from ..gateway import Gateway, PublishRequest, PublishResult
from .toolkit import gateway_of, json_response, read_body

__all__ = ["centrifugo_api_routes"]

DEFAULT_TYPE = "publication"
_MEMBERS_MAX = 10_000


_ABSENT = msgspec.Raw(b"")  # msgspec.Raw takes no None: an empty one means "not sent"


class _Position(msgspec.Struct, frozen=True):
    offset: int = 0
    epoch: str = ""


class _Publish(msgspec.Struct, frozen=True):
    channel: str
    data: msgspec.Raw = _ABSENT
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str | None = None
    idempotency_key: str | None = None


class _Broadcast(msgspec.Struct, frozen=True):
    channels: list[str]
    data: msgspec.Raw = _ABSENT
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str | None = None
    idempotency_key: str | None = None


class _History(msgspec.Struct, frozen=True):
    channel: str
    limit: int | None = None
    since: _Position | None = None
    reverse: bool = False


class _Channel(msgspec.Struct, frozen=True):
    channel: str


class _Channels(msgspec.Struct, frozen=True):
    pattern: str | None = None


class _DisconnectAdvice(msgspec.Struct, frozen=True):
    code: int = 0
    reason: str = ""


class _Disconnect(msgspec.Struct, frozen=True):
    user: str
    client: str | None = None
    session: str | None = None
    whitelist: list[str] | None = None
    disconnect: _DisconnectAdvice | None = None


class _Info(msgspec.Struct, frozen=True):
    pass


def _unrecoverable(message: str) -> BadRequest:
    return BadRequest(message, code="unrecoverable_position")


def _not_available(message: str) -> BadRequest:
    return BadRequest(message, code="not_available")


def _payload(data: msgspec.Raw, b64data: str | None) -> bytes:
    if not data and b64data is not None:
        raise BadRequest("b64data is not supported: Croupier's events are JSON; send data")
    if not data:
        raise BadRequest("data is required")
    return bytes(data)


def _event_type(tags: dict[str, str] | None) -> str:
    return (tags or {}).get("type") or DEFAULT_TYPE


def _publish_request(channel: str, body: _Publish | _Broadcast, payload: bytes) -> PublishRequest:
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


async def _publish(gateway: Gateway, body: _Publish) -> dict[str, Any]:
    payload = _payload(body.data, body.b64data)
    result = await gateway.publish(_publish_request(body.channel, body, payload))
    return _publish_result(result)


async def _broadcast(gateway: Gateway, body: _Broadcast) -> dict[str, Any]:
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


async def _history(gateway: Gateway, body: _History) -> dict[str, Any]:
    channel = _history_rules(gateway, body.channel)
    log = gateway.log
    most = gateway.settings.limits.recover_max
    limit = body.limit or 0
    if limit < 0 or limit > most:
        limit = most  # -1: as many as allowed
    since = body.since
    top = await log.position(channel)
    if since is not None and since.epoch and since.epoch != top.epoch:
        raise _unrecoverable(
            f"the epoch of {channel} is {top.epoch}, not {since.epoch}: its history was lost"
        )
    if limit == 0:
        return history_result((), top)
    events: list[Event]
    if not body.reverse:
        after = since.offset if since is not None else 0
        history = await log.read(channel, after, limit)
        if since is not None and since.offset < top.offset and history.first > since.offset + 1:
            raise _unrecoverable(
                f"{channel} no longer holds the events after offset {since.offset}"
            )
        events = list(history.events)
        top = history.position
    else:
        before = since.offset if since is not None else top.offset + 1
        after = max(before - 1 - limit, 0)
        history = await log.read(channel, after, before - 1 - after)
        events = [e for e in history.events if e.offset is not None and e.offset < before]
        events = events[-limit:][::-1]
        top = history.position
    return history_result(events, top)


async def _presence_members(gateway: Gateway, channel: str) -> list[Any]:
    name, rules = resolve(gateway.settings, channel)
    if not rules.presence:
        raise _not_available(f"{name} keeps no presence (its namespace has presence off)")
    return await gateway.presence.members(name, _MEMBERS_MAX)


async def _presence(gateway: Gateway, body: _Channel) -> dict[str, Any]:
    members = await _presence_members(gateway, body.channel)
    presence: dict[str, Any] = {}
    for member in members:
        client = str(member.get("client", ""))
        info: dict[str, Any] = {"client": client, "user": str(member.get("id") or "")}
        extra = {k: v for k, v in member.items() if k not in ("client", "id")}
        if extra:
            info["conn_info"] = extra
        presence[client] = info
    return {"presence": presence}


async def _presence_stats(gateway: Gateway, body: _Channel) -> dict[str, Any]:
    members = await _presence_members(gateway, body.channel)
    users = {str(m.get("id")) for m in members if m.get("id") is not None}
    return {"num_clients": len(members), "num_users": len(users)}


async def _channels(gateway: Gateway, body: _Channels) -> dict[str, Any]:
    pattern = body.pattern or "*"
    hub = gateway.hub
    found = {}
    for name in hub.channels():
        if fnmatch.fnmatchcase(name, pattern):
            count = hub.subscribers(name)
            if count:
                found[name] = {"num_clients": count}
    return {"channels": found}


def _claims_sub(conn: Any) -> str | None:
    claims = getattr(conn, "claims", None)
    if claims is None:
        session = getattr(conn, "session", None)
        claims = getattr(session, "claims", None)
    sub = getattr(claims, "sub", None)
    return sub if isinstance(sub, str) else None


async def _disconnect(gateway: Gateway, body: _Disconnect) -> dict[str, Any]:
    keep = set(body.whitelist or ())
    advice = body.disconnect
    reconnect = advice is not None and advice.code != 0 and _reconnects(advice.code)
    reason = advice.reason if advice is not None and advice.reason else "force"
    for conn in list(gateway.connections):
        if _claims_sub(conn) != body.user:
            continue
        client = getattr(conn, "client", None)
        if body.client is not None and client != body.client:
            continue
        if client in keep:
            continue
        conn.disconnect(reason, reconnect=reconnect)
    return {}


def _reconnects(code: int) -> bool:
    return not (3500 <= code < 4000 or 4500 <= code < 5000)


def _info_method(started: float, uid: str) -> Callable[[Gateway, _Info], Awaitable[Any]]:
    async def info(gateway: Gateway, body: _Info) -> dict[str, Any]:
        connections = list(gateway.connections)
        users = {sub for conn in connections if (sub := _claims_sub(conn)) is not None}
        return {
            "nodes": [
                {
                    "uid": uid,
                    "name": f"{socket.gethostname()}_{os.getpid()}",
                    "version": f"croupier {__version__}",
                    "num_clients": len(connections),
                    "num_users": len(users),
                    "num_subs": sum(len(getattr(c, "channels", ())) for c in connections),
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
    if header[:7].lower() == "apikey ":
        return header[7:].strip() or None
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def centrifugo_api_routes() -> list[web.RouteDef]:
    """The route of Centrifugo's server HTTP API, ``POST /api/{method}``."""
    started = time.monotonic()
    methods: dict[str, tuple[str, type[Any], Callable[[Gateway, Any], Awaitable[Any]]]] = {
        "publish": ("publish", _Publish, _publish),
        "broadcast": ("publish", _Broadcast, _broadcast),
        "history": ("read", _History, _history),
        "presence": ("read", _Channel, _presence),
        "presence_stats": ("read", _Channel, _presence_stats),
        "channels": ("read", _Channels, _channels),
        "info": ("read", _Info, _info_method(started, str(uuid.uuid4()))),
        "disconnect": ("admin", _Disconnect, _disconnect),
    }

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        method = methods.get(name)
        if method is None:
            raise NotFound(
                f"unknown Centrifugo API method {shown(name, 64)}; this server answers "
                + ", ".join(sorted(methods))
            )
        scope, kind, run = method
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

    return [web.post("/api/{method}", handle)]

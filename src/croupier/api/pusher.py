"""Pusher's HTTP API at ``/apps/{app_id}/…``, for backends that use a Pusher server SDK.

Every request is signed as Pusher's API wants (:func:`~croupier.core.pusher.check_request`);
a missing, stale or wrong signature is ``401``. What a backend triggers is published through
the gateway like any other event: stored in the mapped Croupier channel (with an offset),
fanned out to every transport, replayable.

Channel occupancy and presence users come from Croupier's presence for namespaces that keep
it (across nodes), and from this node's subscriptions otherwise; the channel list is the
channels with subscribers on the node that answers (see docs/pusher.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from ..config import PusherApp
from ..core import jsonsafe
from ..core.channels import namespace_of
from ..core.pusher import (
    ChannelKind,
    check_request,
    is_socket_id,
    kind_of,
    payload_from_pusher,
    to_croupier,
    to_pusher,
    type_from_pusher,
    validate_pusher_channel,
)
from ..errors import BadRequest, NotFound, Unauthorized, shown
from ..gateway import Gateway, PublishRequest
from .toolkit import decode_body, gateway_of, json_response, query, read_raw

__all__ = ["pusher_routes"]

MAX_BODY = 1024 * 1024
MAX_CHANNELS = 100  # channels one trigger may name, as Pusher allows
MAX_BATCH = 10  # events one batch may hold, as Pusher allows
MEMBERS_MAX = 10_000  # presence members read to count users


class TriggerBody(msgspec.Struct, forbid_unknown_fields=False):
    name: str
    data: str
    channels: list[str] | None = None
    channel: str | None = None
    socket_id: str | None = None
    info: str | None = None


class BatchItem(msgspec.Struct, forbid_unknown_fields=False):
    channel: str
    name: str
    data: str
    socket_id: str | None = None
    info: str | None = None


class BatchBody(msgspec.Struct):
    batch: list[BatchItem]


def _query(request: web.Request) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in request.query.items():
        if key in query:
            raise BadRequest(f"query parameter {shown(key, 64)} is given twice")
        query[key] = value
    return query


async def _signed(request: web.Request, app: PusherApp | None = None) -> tuple[PusherApp, bytes]:
    """The app a request is for and its body, once its signature is checked.

    Raises:
        NotFound: no app with the path's id.
        Unauthorized: the signature, timestamp or body digest is wrong.
    """
    gateway = gateway_of(request)
    query = _query(request)
    if app is None:
        app_id = request.match_info.get("app_id")
        if app_id is not None:
            app = gateway.settings.pusher_app(id=app_id)
            if app is None:
                raise NotFound(f"no Pusher app {shown(app_id, 64)}")
        else:
            app = gateway.settings.pusher_app(key=query.get("auth_key", ""))
            if app is None:
                raise Unauthorized("auth_key is not the key of a Pusher app")
    body = await read_raw(request, MAX_BODY)
    check_request(app, request.method, request.path, query, body, time.time())
    # The body is read here, not by the toolkit (its bytes are signed): the same JSON limits.
    jsonsafe.check(body, gateway.settings.limits.max_json_depth)
    return app, body


def _info(raw: str | None) -> set[str]:
    if not raw:
        return set()
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = wanted - {"subscription_count", "user_count"}
    if unknown:
        raise BadRequest(f"unknown info attribute(s): {', '.join(sorted(unknown))}")
    return wanted


async def _counts(gateway: Gateway, app: PusherApp, name: str, info: set[str]) -> dict[str, Any]:
    """``subscription_count`` and ``user_count`` of a Pusher channel, as ``info`` asks."""
    channel = to_croupier(app, name)
    out: dict[str, Any] = {}
    if "user_count" in info:
        if kind_of(name) is not ChannelKind.PRESENCE:
            raise BadRequest("user_count is only for presence channels")
        out["user_count"] = len(await _user_ids(gateway, channel))
    if "subscription_count" in info:
        out["subscription_count"] = await _subscriptions(gateway, channel)
    return out


async def _subscriptions(gateway: Gateway, channel: str) -> int:
    rules = gateway.settings.rules_for(namespace_of(channel))
    if rules is not None and rules.presence:
        return await gateway.presence.count(channel)
    return gateway.hub.subscribers(channel)


async def _user_ids(gateway: Gateway, channel: str) -> list[str]:
    members = await gateway.presence.members(channel, MEMBERS_MAX)
    return list(dict.fromkeys(str(m["id"]) for m in members if m.get("id") is not None))


def _requests(
    app: PusherApp, name: str, data: str, channels: Iterable[str], socket_id: str | None
) -> list[PublishRequest]:
    if socket_id is not None and not is_socket_id(socket_id):
        raise BadRequest(f"socket_id {shown(socket_id, 40)} is not of the form 123.456")
    event_type = type_from_pusher(name)
    payload = payload_from_pusher(data)
    out = []
    for pusher_name in channels:
        kind_of(validate_pusher_channel(pusher_name))
        out.append(
            PublishRequest(to_croupier(app, pusher_name), event_type, payload, exclude=socket_id)
        )
    return out


async def trigger(request: web.Request) -> web.Response:
    app, raw = await _signed(request)
    body: TriggerBody = decode_body(raw, TriggerBody)
    channels = body.channels if body.channels is not None else []
    if body.channel is not None:
        channels = [*channels, body.channel]
    if not channels:
        raise BadRequest("name at least one channel (channels or channel)")
    if len(channels) > MAX_CHANNELS:
        raise BadRequest(f"at most {MAX_CHANNELS} channels per event")
    if len(set(channels)) != len(channels):
        raise BadRequest("each channel may appear only once")
    info = _info(body.info)
    gateway = gateway_of(request)
    await gateway.publish_many(_requests(app, body.name, body.data, channels, body.socket_id))
    if not info:
        return json_response({})
    return json_response({"channels": {c: await _counts(gateway, app, c, info) for c in channels}})


async def batch(request: web.Request) -> web.Response:
    app, raw = await _signed(request)
    body: BatchBody = decode_body(raw, BatchBody)
    if not body.batch:
        raise BadRequest("batch holds no events")
    if len(body.batch) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} events per batch")
    gateway = gateway_of(request)
    requests = []
    for item in body.batch:
        requests += _requests(app, item.name, item.data, [item.channel], item.socket_id)
    infos = [_info(item.info) for item in body.batch]
    await gateway.publish_many(requests)
    if not any(infos):
        return json_response({})
    return json_response(
        {
            "batch": [
                await _counts(gateway, app, item.channel, info)
                for item, info in zip(body.batch, infos, strict=True)
            ]
        }
    )


async def channels(request: web.Request) -> web.Response:
    app, _ = await _signed(request)
    gateway = gateway_of(request)
    prefix = query(request, "filter_by_prefix") or ""
    info = _info(query(request, "info"))
    if "user_count" in info and not prefix.startswith("presence-"):
        raise BadRequest("info=user_count needs filter_by_prefix=presence-")
    if "subscription_count" in info:
        raise BadRequest("subscription_count is given per channel: GET /channels/{name}")
    found: dict[str, Mapping[str, Any]] = {}
    for namespace in app.namespaces():
        for channel in gateway.hub.channels(namespace + ":"):
            name = to_pusher(app, channel)
            if name is None or not name.startswith(prefix) or name in found:
                continue
            found[name] = await _counts(gateway, app, name, info)
    return json_response({"channels": found})


async def channel(request: web.Request) -> web.Response:
    app, _ = await _signed(request)
    gateway = gateway_of(request)
    name = validate_pusher_channel(request.match_info["channel_name"])
    info = _info(query(request, "info"))
    counts = await _counts(gateway, app, name, info | {"subscription_count"})
    occupied = counts["subscription_count"] > 0
    if "subscription_count" not in info:
        del counts["subscription_count"]
    return json_response({"occupied": occupied, **counts})


async def users(request: web.Request) -> web.Response:
    app, _ = await _signed(request)
    name = validate_pusher_channel(request.match_info["channel_name"])
    if kind_of(name) is not ChannelKind.PRESENCE:
        raise BadRequest("users are listed only for presence channels")
    ids = await _user_ids(gateway_of(request), to_croupier(app, name))
    return json_response({"users": [{"id": user_id} for user_id in ids]})


async def terminate(request: web.Request) -> web.Response:
    app, _ = await _signed(request)
    user_id = request.match_info["user_id"]
    for conn in list(gateway_of(request).connections):
        if conn.belongs_to(app, user_id):
            conn.disconnect("terminated", reconnect=False)  # Pusher's close code 4009
    return json_response({})


def pusher_routes() -> list[web.RouteDef]:
    """The routes of every configured app (the app is the path's ``app_id``)."""
    base = "/apps/{app_id}"
    return [
        web.post(base + "/events", trigger),
        web.post(base + "/batch_events", batch),
        web.get(base + "/channels", channels),
        web.get(base + "/channels/{channel_name}", channel),
        web.get(base + "/channels/{channel_name}/users", users),
        web.post(base + "/users/{user_id}/terminate_connections", terminate),
        # The PyPI SDK signs this one without the /apps/{app_id} prefix: the app is then
        # the one whose key signed it.
        web.post("/users/{user_id}/terminate_connections", terminate),
    ]

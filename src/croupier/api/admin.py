"""The admin routes the operator console stands on, usable from any script.

* ``GET /api/v1/admin/log``: the live log as an event stream (every node's records).
* ``GET /api/v1/admin/channels``: search and page every channel with its subscribers.
* ``GET /api/v1/admin/channels/{channel}``: position, epoch, rules, presence, subscribers per
  node; ``…/history`` browses its stored events by offset; ``…/publish`` sends a test event.
* ``GET /api/v1/admin/connections``: connections across nodes (a player's, or one by id).
* ``POST /api/v1/admin/players/{player}/disconnect`` and
  ``POST /api/v1/admin/connections/{client}/disconnect``: end connections on any node.

Every route needs an API key with the ``admin`` scope, sent in the ``Authorization`` header
(never a cookie, so there is no cross-site request to forge). No reply shows a token, an API
key or a webhook secret. Questions about connections and subscribers go to every node over
the broker (see :mod:`croupier.cluster`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ..connections import OpenConnection
from ..core.channels import resolve
from ..core.sse import comment, data_frame
from ..debuglog import BACKLOG, BURST, KINDS, RATE, Record
from ..errors import BadRequest, shown
from ..gateway import Gateway, PublishRequest
from . import admin_schemas as a
from . import schemas as s
from .http import history_page
from .openapi import OPERATIONS as PUBLIC
from .openapi import Operation
from .toolkit import int_query, json_response, query, read_body, require_key

__all__ = ["OPERATIONS", "AdminApi", "describe_connection"]

_PER_NODE = 50  # connections one node lists in one answer (a NOTIFY must hold them)
_KEEPALIVE = 5.0  # seconds between comments on a quiet log stream (finds gone readers)


def _json(doc: Any) -> web.Response:
    response = json_response(doc)
    response.headers["Cache-Control"] = "no-store"
    return response


def _text(request: web.Request, name: str, max_length: int = 255) -> str | None:
    value = query(request, name)
    if value is not None and len(value) > max_length:
        raise BadRequest(f"{name} must be at most {max_length} characters")
    return value


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not 1 <= len(value) <= 128:
        raise BadRequest(f"{name} must be 1 to 128 characters")
    return value


# -- connections ---------------------------------------------------------------------------


def describe_connection(conn: OpenConnection, node: str) -> dict[str, Any]:
    """What the connection inspector shows of one connection (never its token): its own
    ``info()``, with the node that holds it and the origin it connected from."""
    doc = dict(conn.info())
    doc["node"] = node
    doc.setdefault("origin", conn.origin)
    return doc


def _matches(doc: dict[str, Any], body: dict[str, Any]) -> bool:
    if body.get("client") and doc.get("id") != body["client"]:
        return False
    if body.get("player") and doc.get("player") != body["player"]:
        return False
    return not (body.get("brand") and doc.get("brand") != body["brand"])


class AdminApi:
    """The admin routes, mounted like a service; answers the other nodes' questions."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        cluster = gateway.cluster
        cluster.answer("connections", self._connections_here)
        cluster.answer("disconnect", self._disconnect_here)
        cluster.answer("subscribers", self._subscribers_here)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- this node's answers ---------------------------------------------------------------

    def _found(self, body: dict[str, Any]) -> list[tuple[OpenConnection, dict[str, Any]]]:
        node = self.gateway.node
        found = []
        for conn in list(self.gateway.connections):
            doc = describe_connection(conn, node)
            # A closed connection is only waiting for its cleanup: it is gone for the client.
            if not doc.get("closed") and _matches(doc, body):
                found.append((conn, doc))
        return found

    def _connections_here(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        found = [doc for _, doc in self._found(body)]
        found.sort(key=lambda d: d.get("created") or 0, reverse=True)
        return found[:_PER_NODE]

    def _disconnect_here(self, body: dict[str, Any]) -> int:
        reason = str(body.get("reason") or "operator")
        reconnect = bool(body.get("reconnect", True))
        found = self._found(body)
        debug = self.gateway.debug
        for conn, doc in found:
            if debug.watching:
                debug.emit(
                    "disconnect.requested",
                    client=conn.client,
                    player=doc.get("player"),
                    brand=doc.get("brand"),
                    reason=reason,
                    by=body.get("by"),
                )
            conn.disconnect(reason, reconnect=reconnect)
        return len(found)

    def _subscribers_here(self, body: dict[str, Any]) -> dict[str, int]:
        hub = self.gateway.hub
        counts = {str(c): hub.subscribers(str(c)) for c in body.get("channels") or ()}
        return {c: n for c, n in counts.items() if n}

    async def _subscribers(self, channels: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
        if not channels:
            return []
        answers = await self.gateway.cluster.ask("subscribers", {"channels": list(channels)})
        return [(node, answer if isinstance(answer, dict) else {}) for node, answer in answers]

    # -- the live log ----------------------------------------------------------------------

    async def _log(self, request: web.Request) -> web.StreamResponse:
        require_key(request, "admin")
        kinds = set(request.query.getall("kind", []))
        unknown = kinds - set(KINDS)
        if unknown:
            raise BadRequest(f"unknown kind {shown(sorted(unknown)[0])}; one of {', '.join(KINDS)}")
        channel = _text(request, "channel_prefix")
        player = _text(request, "player", 128)
        node = _text(request, "node", 64)

        def wanted(record: Record) -> bool:
            if kinds and record.get("kind") not in kinds:
                return False
            if node and record.get("node") != node:
                return False
            if player and record.get("player") != player:
                return False
            return not (channel and not str(record.get("channel") or "").startswith(channel))

        gateway = self.gateway
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        watcher = gateway.debug.watch()
        hello = {"node": gateway.node, "rate": RATE, "burst": BURST, "backlog": BACKLOG}
        try:
            await response.write(b"event: hello\n" + data_frame(orjson.dumps(hello)))
            quiet = 0.0
            behind = 0
            while gateway.ready:
                records = await watcher.take(1.0)
                out = []
                if watcher.skipped != behind:
                    lost = {"t": int(time.time() * 1000), "node": gateway.node}
                    lost.update(kind="log.behind", skipped=watcher.skipped - behind)
                    behind = watcher.skipped
                    out.append(data_frame(orjson.dumps(lost)))
                out += [data_frame(orjson.dumps(r)) for r in records if wanted(r)]
                if out:
                    await response.write(b"".join(out))
                    quiet = 0.0
                else:
                    quiet += 1.0
                    if quiet >= _KEEPALIVE:
                        await response.write(comment("keepalive"))
                        quiet = 0.0
        except (ConnectionError, asyncio.CancelledError):
            pass  # the console went away, or the server is stopping
        finally:
            gateway.debug.unwatch(watcher)
        return response

    # -- channels --------------------------------------------------------------------------

    async def _channels(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        prefix = _text(request, "prefix") or ""
        contains = _text(request, "contains") or ""
        after = _text(request, "after") or ""
        limit = int_query(request, "limit", 100, 1, 1000)
        found = await self.gateway.log.channels(prefix, limit + 1, after=after, contains=contains)
        page = found[:limit]
        counts: dict[str, int] = {}
        for _, answer in await self._subscribers([name for name, _ in page]):
            for name, n in answer.items():
                counts[name] = counts.get(name, 0) + int(n)
        return _json(
            {
                "channels": [
                    {
                        "channel": name,
                        "offset": position.offset,
                        "epoch": position.epoch,
                        "subscribers": counts.get(name, 0),
                    }
                    for name, position in page
                ],
                "next": page[-1][0] if len(found) > limit else None,
            }
        )

    async def _channel(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        gateway = self.gateway
        channel, rules = resolve(gateway.settings, request.match_info["channel"])
        history = await gateway.log.read(channel, 0, 1)
        presence: dict[str, Any] = {"enabled": rules.presence, "count": 0, "members": []}
        if rules.presence:
            presence["count"] = await gateway.presence.count(channel)
            presence["members"] = [dict(m) for m in await gateway.presence.members(channel, 100)]
        nodes = [
            {"node": node, "subscribers": int(answer.get(channel, 0))}
            for node, answer in await self._subscribers([channel])
        ]
        return _json(
            {
                "channel": channel,
                "position": history.position.as_dict(),
                "first": history.first,
                "rules": {
                    "namespace": channel.split(":", 1)[0],
                    "history_size": rules.history_size,
                    "history_ttl": rules.history_ttl,
                    "subscribe": str(rules.subscribe),
                    "presence": rules.presence,
                },
                "presence": presence,
                "nodes": nodes,
            }
        )

    async def _history(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        return _json(await history_page(request, 50))

    async def _publish(self, request: web.Request) -> web.Response:
        key = require_key(request, "admin")
        gateway = self.gateway
        channel, _ = resolve(gateway.settings, request.match_info["channel"])
        body = await read_body(request, a.AdminPublishBody)
        result = await gateway.publish(
            PublishRequest(
                channel,
                body.type,
                bytes(body.data),
                ephemeral=body.ephemeral,
                source=f"console:{key.name}",
            )
        )
        event = result.event
        return _json(
            {
                "channel": event.channel,
                "offset": event.offset,
                "epoch": event.epoch,
                "ts": event.ts,
                "duplicate": result.duplicate,
            }
        )

    # -- connections -----------------------------------------------------------------------

    async def _connections(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        body = {
            "player": _text(request, "player", 128),
            "brand": _text(request, "brand", 128),
            "client": _text(request, "client", 128),
        }
        answers = await self.gateway.cluster.ask("connections", body)
        connections: list[dict[str, Any]] = []
        for _, answer in answers:
            if isinstance(answer, list):
                connections += answer
        return _json({"connections": connections, "nodes": [node for node, _ in answers]})

    async def _disconnect(self, request: web.Request, target: dict[str, Any]) -> web.Response:
        key = require_key(request, "admin")
        body = await read_body(request, a.DisconnectBody)
        question = {**target, "reason": body.reason, "reconnect": body.reconnect}
        if "player" in target and body.brand:
            question["brand"] = body.brand
        question["by"] = f"console:{key.name}"
        answers = await self.gateway.cluster.ask("disconnect", question)
        return _json(
            {
                "disconnected": sum(int(n) for _, n in answers if isinstance(n, int)),
                "nodes": [node for node, _ in answers],
            }
        )

    async def _disconnect_client(self, request: web.Request) -> web.Response:
        return await self._disconnect(request, {"client": _path_id(request, "client")})

    async def _disconnect_player(self, request: web.Request) -> web.Response:
        return await self._disconnect(request, {"player": _path_id(request, "player")})

    # -- mounting --------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/admin/log", self._log, allow_head=False),
            web.get("/api/v1/admin/channels", self._channels, allow_head=False),
            web.get("/api/v1/admin/channels/{channel}", self._channel, allow_head=False),
            web.get("/api/v1/admin/channels/{channel}/history", self._history, allow_head=False),
            web.post("/api/v1/admin/channels/{channel}/publish", self._publish),
            web.get("/api/v1/admin/connections", self._connections, allow_head=False),
            web.post("/api/v1/admin/connections/{client}/disconnect", self._disconnect_client),
            web.post("/api/v1/admin/players/{player}/disconnect", self._disconnect_player),
        ]

    @property
    def operations(self) -> Sequence[Operation]:
        return OPERATIONS


def _query(
    name: str, description: str, example: Any, **schema: Any
) -> tuple[str, str, dict[str, Any]]:
    return (
        name,
        "query",
        {
            "description": description,
            "schema": {"type": "string", **schema},
            "example": example,
        },
    )


def _path(name: str, description: str, example: str) -> tuple[str, str, dict[str, Any]]:
    schema = {"type": "string", "minLength": 1, "maxLength": 128}
    return (name, "path", {"description": description, "schema": schema, "example": example})


_ERRORS = (400, 401, 403, 404, 503)


def _example(operation_id: str) -> Any:
    """The reply example of the public operation the admin one mirrors."""
    return next(op.reply_example for op in PUBLIC if op.operation_id == operation_id)


_PLAYER = _query("player", "Only this player's (the token's `sub`).", "p1", maxLength=128)
_BRAND = _query("brand", "Only this brand's players.", "1001", maxLength=128)
_CLIENT = _query("client", "Only this connection (its id).", "c-9f3a1b2c4d5e", maxLength=128)
_CLIENT_ID = _path(
    "client", "A connection's id (its `connected` message's `client`).", "c-9f3a1b2c4d5e"
)
_PLAYER_ID = _path("player", "A player id (the token's `sub`).", "p1")
_CONNECTION = {
    "id": "c-9f3a1b2c4d5e",
    "node": "n-3fa9c21b",
    "transport": "websocket",
    "protocol": "native",
    "player": "p1",
    "brand": "1001",
    "created": 1735732800000,
    "last_activity": 1735732859000,
    "name": "Ann",
    "subscriptions": [{"channel": "tournament:42", "position": {"offset": 17, "epoch": "k3v9"}}],
    "outbox": 0,
    "outbox_messages": 0,
    "outbox_limits": {"bytes": 1048576, "messages": 256},
    "origin": "https://casino.example.com",
    "closed": False,
}


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/api/v1/admin/log",
        "admin_log",
        "The live log of every node as an event stream (sampled: at most "
        f"{int(RATE)} publish records and {int(RATE)} others a second per node)",
        "admin",
        scope="admin",
        media="text/event-stream",
        params=(
            (
                "kind",
                "query",
                {
                    "description": "Only records of these kinds (repeat the parameter).",
                    "schema": {"type": "string", "enum": list(KINDS)},
                    "example": "connection.closed",
                },
            ),
            _query("channel_prefix", "Only records about channels starting with this.", "room:"),
            _query("player", "Only records about this player.", "p1", maxLength=128),
            _query("node", "Only records of this node.", "n-3fa9c21b", maxLength=64),
        ),
        errors=(400, 401, 403),
    ),
    Operation(
        "get",
        "/api/v1/admin/channels",
        "admin_channels",
        "Search and page every channel, with subscribers on every node",
        "admin",
        scope="admin",
        reply=a.AdminChannelsReply,
        reply_example={
            "channels": [
                {"channel": "tournament:42", "offset": 17, "epoch": "k3v9", "subscribers": 3}
            ],
            "next": "tournament:42",
        },
        query=("prefix", "limit"),
        params=(
            _query("contains", "Only channels whose name contains this.", "12345"),
            _query("after", "The page after this channel name (the last page's `next`).", ""),
        ),
        errors=(400, 401, 403, 503),
    ),
    Operation(
        "get",
        "/api/v1/admin/channels/{channel}",
        "admin_channel",
        "One channel: position, epoch, rules, presence and subscribers per node",
        "admin",
        scope="admin",
        reply=a.ChannelDetailReply,
        reply_example={
            "channel": "tournament:42",
            "position": {"offset": 17, "epoch": "k3v9"},
            "first": 1,
            "rules": {
                "namespace": "tournament",
                "history_size": 2000,
                "history_ttl": 86400.0,
                "subscribe": "token",
                "presence": True,
            },
            "presence": {"enabled": True, "count": 1, "members": [{"client": "c-1", "id": "p1"}]},
            "nodes": [{"node": "n-3fa9c21b", "subscribers": 1}],
        },
        errors=_ERRORS,
    ),
    Operation(
        "get",
        "/api/v1/admin/channels/{channel}/history",
        "admin_channel_history",
        "A channel's stored events after an offset (browse by offset)",
        "admin",
        scope="admin",
        reply=s.HistoryReply,
        reply_example=_example("channel_history"),
        query=("since", "limit"),
        errors=_ERRORS,
    ),
    Operation(
        "post",
        "/api/v1/admin/channels/{channel}/publish",
        "admin_publish",
        "Publish a test event on a channel (the live log shows who)",
        "admin",
        scope="admin",
        body=a.AdminPublishBody,
        body_example={"type": "console.test", "data": {"hello": "world"}},
        reply=s.PublishReply,
        reply_example={
            "channel": "tournament:42",
            "offset": 18,
            "epoch": "k3v9",
            "ts": "2025-01-01T12:00:00.000Z",
            "duplicate": False,
        },
        errors=(400, 401, 403, 404, 413, 503),
    ),
    Operation(
        "get",
        "/api/v1/admin/connections",
        "admin_connections",
        f"Connections on every node (at most {_PER_NODE} per node), newest first",
        "admin",
        scope="admin",
        reply=a.ConnectionsReply,
        reply_example={"connections": [_CONNECTION], "nodes": ["n-3fa9c21b"]},
        params=(_PLAYER, _BRAND, _CLIENT),
        errors=(400, 401, 403),
    ),
    Operation(
        "post",
        "/api/v1/admin/connections/{client}/disconnect",
        "admin_disconnect_connection",
        "Disconnect one connection, on whichever node holds it; the client is told why",
        "admin",
        scope="admin",
        body=a.DisconnectBody,
        body_example={"reason": "operator", "reconnect": False},
        reply=a.DisconnectReply,
        reply_example={"disconnected": 1, "nodes": ["n-3fa9c21b"]},
        params=(_CLIENT_ID,),
        errors=(400, 401, 403, 413),
    ),
    Operation(
        "post",
        "/api/v1/admin/players/{player}/disconnect",
        "admin_disconnect_player",
        "Disconnect every connection of a player on every node; each client is told why",
        "admin",
        scope="admin",
        body=a.DisconnectBody,
        body_example={"reason": "operator", "reconnect": True, "brand": "1001"},
        reply=a.DisconnectReply,
        reply_example={"disconnected": 2, "nodes": ["n-3fa9c21b"]},
        params=(_PLAYER_ID,),
        errors=(400, 401, 403, 413),
    ),
)

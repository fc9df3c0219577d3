"""Pusher-format webhooks for the Pusher apps that list ``webhooks`` URLs.

Each URL is an endpoint of the webhook outbox in the Pusher format (created or updated from
the configuration at start, visible under ``/api/v1/webhooks``): deliveries are durable,
retried and dead-lettered like every other, and signed with the app's secret
(``X-Pusher-Key``, ``X-Pusher-Signature``).

Rules:

* ``channel_occupied`` when a channel of the app gets its first subscriber, of any protocol;
  ``channel_vacated`` when its last one leaves.
* ``member_added`` when a user id first appears in a presence channel, ``member_removed``
  when its last connection there leaves.
* ``client_event`` for each ``client-*`` event a Pusher client sends.

Occupancy and membership are counted from the joins and leaves of the node that sends the
webhook: on several nodes each node reports its own subscribers (see docs/pusher.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from ...api.openapi import Operation
from ...config import PusherApp
from ...core.pusher import data_for_pusher, to_pusher
from ...errors import Unavailable
from ...events import Event
from ...gateway import Gateway
from ...logs import now_ts
from ...storage import Database
from ...tasks import stop_task
from .outbox import Endpoint, Outbox, WebhookFormat
from .service import write_forever

__all__ = ["PusherWebhooks"]


def endpoint_id(app: PusherApp, url: str) -> str:
    """The outbox endpoint of ``url`` for ``app``: the same id on every node and restart."""
    return "wh_" + hashlib.sha256(f"pusher\0{app.id}\0{url}".encode()).hexdigest()[:24]


class PusherWebhooks:
    """Feeds the outbox with the Pusher webhooks of every app that has URLs."""

    def __init__(self, gateway: Gateway, database: Database) -> None:
        self.gateway = gateway
        self.outbox = Outbox(database)
        self.apps = [app for app in gateway.settings.pusher_apps if app.webhooks]
        self._endpoints = {
            app.id: [endpoint_id(app, url) for url in app.webhooks] for app in self.apps
        }
        self._subscriptions: dict[str, int] = {}
        self._members: dict[str, dict[str, int]] = {}
        self._queue: list[tuple[str, Event]] = []
        self._queued = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listening = False

    @property
    def operations(self) -> Sequence[Operation]:
        return ()

    def routes(self) -> list[web.RouteDef]:
        return []

    async def __aenter__(self) -> Self:
        if not self.apps:
            return self
        await self.outbox.migrate()
        now = time.time()
        for app in self.apps:
            for url in app.webhooks:
                await self._ensure(app, url, now)
        if not self._listening:
            self.gateway.hooks.on_presence(self._presence)
            self.gateway.hooks.on_publish(self._published)
            self._listening = True
        self._task = asyncio.create_task(self._write_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(Unavailable):
            await self._flush()

    async def _ensure(self, app: PusherApp, url: str, now: float) -> None:
        wanted = Endpoint(
            endpoint_id(app, url),
            url,
            (),  # no Croupier event types: only this service enqueues for it
            app.secret,
            True,
            f"Pusher app {app.id}",
            now,
            now,
            WebhookFormat.PUSHER,
            app.key,
        )
        found = await self.outbox.endpoint(wanted.id)
        if found is None:
            await self.outbox.add_endpoint(wanted)
        elif (found.secret, found.app_key, found.active) != (app.secret, app.key, True):
            # The app's credentials changed: the same endpoint (and its history), new keys.
            await self.outbox.delete_endpoint(found.id)
            await self.outbox.add_endpoint(wanted)

    # -- what happens, as Pusher webhook events ----------------------------------------------

    def _app_of(self, channel: str) -> tuple[PusherApp, str] | None:
        for app in self.apps:
            name = to_pusher(app, channel)
            if name is not None:
                return app, name
        return None

    def _send(self, app: PusherApp, channel: str, doc: dict[str, Any]) -> None:
        event = Event(channel, doc["name"], orjson.dumps(doc), now_ts())
        self._queue.extend((endpoint, event) for endpoint in self._endpoints[app.id])
        self._queued.set()

    def _presence(self, channel: str, client: str, info: dict[str, Any], joined: bool) -> None:
        found = self._app_of(channel)
        if found is None:
            return
        app, name = found
        count = self._subscriptions.get(channel, 0) + (1 if joined else -1)
        if count > 0:
            self._subscriptions[channel] = count
        else:
            self._subscriptions.pop(channel, None)
        if joined and count == 1:
            self._send(app, channel, {"name": "channel_occupied", "channel": name})
        user = info.get("id")
        if user is not None and name.startswith("presence-"):
            users = self._members.setdefault(channel, {})
            held = users.get(str(user), 0) + (1 if joined else -1)
            if held > 0:
                users[str(user)] = held
            else:
                users.pop(str(user), None)
                if not users:
                    del self._members[channel]
            if joined and held == 1:
                self._send(
                    app, channel, {"name": "member_added", "channel": name, "user_id": str(user)}
                )
            elif not joined and held == 0:
                self._send(
                    app, channel, {"name": "member_removed", "channel": name, "user_id": str(user)}
                )
        if not joined and count <= 0:
            self._send(app, channel, {"name": "channel_vacated", "channel": name})

    def _published(self, events: list[Event]) -> None:
        for event in events:
            if event.stored or not event.type.startswith("client-"):
                continue
            found = self._app_of(event.channel)
            if found is None:
                continue
            app, name = found
            doc: dict[str, Any] = {
                "name": "client_event",
                "channel": name,
                "event": event.type,
                "data": data_for_pusher(event.payload),
            }
            if event.exclude is not None:
                doc["socket_id"] = event.exclude
            self._send(app, event.channel, doc)

    # -- into the outbox ------------------------------------------------------------------------

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[:500]
            await self.outbox.enqueue(batch, time.time())
            del self._queue[: len(batch)]

    async def _write_forever(self) -> None:
        await write_forever(self._queued, self._flush)

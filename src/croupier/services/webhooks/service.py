"""The webhook service: endpoints over the API, an outbox fed by the gateway's publishes, and
the delivery worker.

Events reach the outbox through :meth:`Gateway.on_publish`: the listener matches each event
against the active endpoints' types (kept in memory, reloaded every ``refresh_interval`` so
that endpoints registered on other nodes count too) and queues the pairs; one task writes the
queue to the outbox in batches, as fast as the database takes them. Each node enqueues the
events published through it, so every event is enqueued once in a cluster.

The window: a publish is answered once the log holds the event, and its outbox rows are
written a moment later (the next batch write, usually within milliseconds). A graceful stop
writes everything queued first; only a crash (SIGKILL, power loss) inside that window loses
those deliveries. From the outbox on, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from msgspec import UNSET

from ...api.openapi import Operation
from ...api.toolkit import int_query, json_response, query, read_body, require_key
from ...errors import BadRequest, NotFound, Unavailable, shown
from ...events import Event
from ...gateway import Gateway
from ...storage import Database
from .api import OPERATIONS
from .delivery import Deliverer, WebhookSettings
from .outbox import Delivery, DeliveryStatus, Endpoint, Outbox
from .schemas import (
    DELIVERY_ID_PATTERN,
    ENDPOINT_ID_PATTERN,
    WebhookCreateBody,
    WebhookUpdateBody,
)
from .signing import TypeMatcher, new_secret

__all__ = ["WebhookService", "write_forever"]

log = logging.getLogger(__name__)

_BATCH = 500  # outbox rows per write
_QUEUE_MAX = 100_000  # queued (endpoint, event) pairs before the oldest are dropped
_ENDPOINT_ID = re.compile(ENDPOINT_ID_PATTERN)
_DELIVERY_ID = re.compile(DELIVERY_ID_PATTERN)
_STATUSES = {s.value: s for s in DeliveryStatus}


def _endpoint_doc(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "active": endpoint.active,
        "description": endpoint.description,
        "format": endpoint.format.value,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def _delivery_doc(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "type": delivery.event_type,
        "channel": delivery.channel,
        "offset": delivery.offset,
        "ts": delivery.ts,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_at": delivery.next_at,
        "created_at": delivery.created_at,
        "finished_at": delivery.finished_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
    }


async def write_forever(queued: asyncio.Event, flush: Callable[[], Awaitable[None]]) -> None:
    """Run ``flush`` each time ``queued`` is set; while the database refuses, retry with
    backoff (what is queued stays queued)."""
    delay = 0.1
    while True:
        await queued.wait()
        queued.clear()
        try:
            await flush()
            delay = 0.1
        except Unavailable as exc:
            log.warning("webhook outbox not written yet: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            queued.set()


def _unique(types: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(types))


class WebhookService:
    """Signed webhooks from a durable outbox (see the module docstring and docs/webhooks.md).

    Args:
        gateway: whose publishes feed the outbox.
        database: where endpoints and the outbox live.
        settings: delivery and retry settings; when ``None``, the ``[webhooks]`` table of the
            gateway's configuration with ``CROUPIER_WEBHOOK_*`` on top.
        clock: Unix time, for tests.
    """

    def __init__(
        self,
        gateway: Gateway,
        database: Database,
        settings: WebhookSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.outbox = Outbox(database)
        if settings is None:
            table = gateway.settings.services.get("webhooks", {})
            settings = WebhookSettings.load(table, os.environ)
        self.settings = settings
        self._clock = clock
        self._matchers: list[tuple[str, TypeMatcher]] = []
        self._queue: list[tuple[str, Event]] = []
        self._queued = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._deliverer: Deliverer | None = None
        self._open = False
        self._listening = False
        self.enqueued = 0
        self.dropped = 0

    @property
    def operations(self) -> Sequence[Operation]:
        return OPERATIONS

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.outbox.migrate()
        await self.refresh()
        if not self._listening:  # the gateway has no way to remove a listener
            self.gateway.hooks.on_publish(self._on_publish)
            self.gateway.metrics.add_source(self._counts)
            self._listening = True
        self._open = True
        self._tasks = [
            asyncio.create_task(self._write_forever()),
            asyncio.create_task(self._refresh_forever()),
        ]
        if self.settings.concurrency > 0:
            self._deliverer = await Deliverer(
                self.outbox, self.settings, clock=self._clock, debug=self.gateway.debug
            ).__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        with contextlib.suppress(Unavailable):
            await self.flush()
        if self._queue:
            log.error("%d webhook deliveries were not written to the outbox", len(self._queue))
        if self._deliverer is not None:
            await self._deliverer.__aexit__(None, None, None)
            self._deliverer = None

    def _counts(self) -> dict[str, tuple[str, float, str]]:
        d = self._deliverer
        return {
            "croupier_webhook_enqueued": ("counter", self.enqueued, "Deliveries enqueued."),
            "croupier_webhook_dropped": (
                "counter",
                self.dropped,
                "Deliveries dropped because the outbox could not be written for too long.",
            ),
            "croupier_webhook_delivered": (
                "counter",
                d.delivered if d else 0,
                "Deliveries answered with 2xx.",
            ),
            "croupier_webhook_failed_attempts": (
                "counter",
                d.failed if d else 0,
                "Attempts that failed and will be retried.",
            ),
            "croupier_webhook_dead": ("counter", d.dead if d else 0, "Deliveries dead-lettered."),
        }

    # -- endpoints cache and the publish listener ----------------------------------------------

    async def refresh(self) -> None:
        """Reload the active endpoints' event types."""
        endpoints = await self.outbox.endpoints()
        self._matchers = [(e.id, TypeMatcher(e.event_types)) for e in endpoints if e.active]

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            try:
                await self.refresh()
            except Unavailable as exc:
                log.warning("could not reload webhook endpoints: %s", exc)

    def _on_publish(self, events: list[Event]) -> None:
        matchers = self._matchers
        if not matchers or not self._open:
            return
        queue = self._queue
        for event in events:
            for endpoint_id, matches in matchers:
                if matches(event.type):
                    queue.append((endpoint_id, event))
        if queue:
            if len(queue) > _QUEUE_MAX:
                extra = len(queue) - _QUEUE_MAX
                del queue[:extra]
                self.dropped += extra
                log.error("webhook queue full: dropped the %d oldest deliveries", extra)
            self._queued.set()

    async def flush(self) -> None:
        """Write every queued delivery to the outbox.

        Raises:
            Unavailable: the database did not take them (they stay queued).
        """
        while self._queue:
            batch = self._queue[:_BATCH]
            await self.outbox.enqueue(batch, self._clock())
            del self._queue[: len(batch)]
            self.enqueued += len(batch)
        if self._deliverer is not None:
            self._deliverer.wake()

    async def _write_forever(self) -> None:
        await write_forever(self._queued, self.flush)

    # -- the HTTP API ---------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        base = "/api/v1/webhooks"
        one = base + "/{endpoint_id}"
        return [
            web.post(base, self._create),
            web.get(base, self._list),
            web.get(one, self._get),
            web.patch(one, self._update),
            web.delete(one, self._delete),
            web.get(one + "/deliveries", self._deliveries),
            web.get(one + "/deliveries/{delivery_id}", self._delivery),
            web.post(one + "/deliveries/{delivery_id}/redeliver", self._redeliver_one),
            web.post(one + "/redeliver", self._redeliver_dead),
        ]

    async def _endpoint(self, request: web.Request) -> Endpoint:
        endpoint_id = request.match_info["endpoint_id"]
        endpoint = None
        if _ENDPOINT_ID.fullmatch(endpoint_id):
            endpoint = await self.outbox.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {shown(endpoint_id, 64)}")
        return endpoint

    async def _create(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        body = await read_body(request, WebhookCreateBody)
        now = self._clock()
        endpoint = Endpoint(
            "wh_" + secrets.token_hex(12),
            body.url,
            _unique(body.event_types),
            body.secret if body.secret is not None else new_secret(),
            body.active,
            body.description,
            now,
            now,
        )
        await self.outbox.add_endpoint(endpoint)
        await self.refresh()
        return json_response({**_endpoint_doc(endpoint), "secret": endpoint.secret})

    async def _list(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        limit = int_query(request, "limit", 100, 1, 1000)
        endpoints = await self.outbox.endpoints()
        return json_response({"webhooks": [_endpoint_doc(e) for e in endpoints[:limit]]})

    async def _get(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        return json_response(_endpoint_doc(await self._endpoint(request)))

    async def _update(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        endpoint = await self._endpoint(request)
        body = await read_body(request, WebhookUpdateBody)
        changes: dict[str, Any] = {
            name: getattr(body, name)
            for name in ("url", "secret", "active", "description")
            if getattr(body, name) is not UNSET
        }
        if body.event_types is not UNSET:
            changes["event_types"] = _unique(body.event_types)
        updated = Endpoint(
            endpoint.id,
            changes.get("url", endpoint.url),
            changes.get("event_types", endpoint.event_types),
            changes.get("secret", endpoint.secret),
            changes.get("active", endpoint.active),
            changes.get("description", endpoint.description),
            endpoint.created_at,
            self._clock(),
            endpoint.format,
            endpoint.app_key,
        )
        if not await self.outbox.update_endpoint(updated):
            raise NotFound(f"no webhook endpoint {shown(endpoint.id)}")
        await self.refresh()
        if updated.active and self._deliverer is not None:
            self._deliverer.wake()  # deliveries held while it was inactive are due
        return json_response(_endpoint_doc(updated))

    async def _delete(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        endpoint = await self._endpoint(request)
        if not await self.outbox.delete_endpoint(endpoint.id):
            raise NotFound(f"no webhook endpoint {shown(endpoint.id)}")
        await self.refresh()
        return json_response({"id": endpoint.id, "deleted": True})

    async def _deliveries(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        raw = query(request, "status")
        status = None
        if raw is not None:
            status = _STATUSES.get(raw)
            if status is None:
                raise BadRequest("status must be one of pending, delivered, dead")
        limit = int_query(request, "limit", 100, 1, 1000)
        endpoint = await self._endpoint(request)
        deliveries = await self.outbox.deliveries(endpoint.id, status, limit)
        return json_response({"deliveries": [_delivery_doc(d) for d in deliveries]})

    async def _find_delivery(self, request: web.Request) -> Delivery:
        endpoint = await self._endpoint(request)
        delivery_id = request.match_info["delivery_id"]
        delivery = None
        if _DELIVERY_ID.fullmatch(delivery_id):
            delivery = await self.outbox.delivery(endpoint.id, delivery_id)
        if delivery is None:
            raise NotFound(
                f"no delivery {shown(delivery_id, 64)} for endpoint {shown(endpoint.id)}"
            )
        return delivery

    async def _delivery(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        delivery = await self._find_delivery(request)
        attempts = await self.outbox.attempts(delivery.id)
        return json_response(
            {
                "delivery": _delivery_doc(delivery),
                "body": delivery.body().decode(),
                "attempts": [
                    {
                        "attempt": a.attempt,
                        "at": a.at,
                        "status_code": a.status_code,
                        "error": a.error,
                        "duration_ms": a.duration_ms,
                    }
                    for a in attempts
                ],
            }
        )

    async def _redeliver_one(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        delivery = await self._find_delivery(request)
        count = await self.outbox.redeliver(delivery.endpoint_id, delivery.id, self._clock())
        if count and self._deliverer is not None:
            self._deliverer.wake()
        return json_response({"redelivered": count})

    async def _redeliver_dead(self, request: web.Request) -> web.Response:
        require_key(request, "admin")
        endpoint = await self._endpoint(request)
        count = await self.outbox.redeliver(endpoint.id, None, self._clock())
        if count and self._deliverer is not None:
            self._deliverer.wake()
        return json_response({"redelivered": count})

"""The delivery worker: claims due outbox rows, POSTs them, records what happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

from ...debuglog import DebugLog
from ...errors import BadRequest, Unavailable
from ...tasks import stop_task
from .outbox import Attempt, Delivery, DeliveryStatus, Outbox, WebhookFormat
from .signing import (
    EVENT_HEADER,
    ID_HEADER,
    PUSHER_KEY_HEADER,
    PUSHER_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_delay,
    sign,
    sign_pusher,
)

__all__ = ["Deliverer", "WebhookSettings"]

log = logging.getLogger(__name__)

_READ_LIMIT = 4096  # bytes of a receiver's answer read (and dropped) before the next request
_STOP_GRACE = 5.0  # seconds deliveries in flight may take to finish when the node stops


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How deliveries are made and retried (see :meth:`load`).

    ``concurrency`` 0 makes a node that enqueues (and serves the API) but delivers nothing:
    other nodes sharing the database deliver.
    """

    max_attempts: int = 12
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    timeout: float = 10.0
    concurrency: int = 16
    poll_interval: float = 1.0
    refresh_interval: float = 5.0

    @property
    def lease(self) -> float:
        """How long a claimed delivery is this node's: well past the request timeout."""
        return self.timeout * 1.5 + 2.0

    @classmethod
    def load(cls, table: Mapping[str, Any], env: Mapping[str, str]) -> WebhookSettings:
        """Settings from the ``[webhooks]`` TOML table, then ``CROUPIER_WEBHOOK_*`` on top.

        Keys (and, upper-cased, the variables' suffixes): ``max_attempts``,
        ``backoff_base``, ``backoff_max``, ``timeout``, ``concurrency``, ``poll_interval``,
        ``refresh_interval``; defaults for the ones not set.

        Raises:
            BadRequest: an unknown key, a value that is not a number, or out of range.
        """
        fields = cls.__dataclass_fields__
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise BadRequest(f"unknown [webhooks] settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, field in fields.items():
            kind = int if field.type == "int" else float
            variable = f"CROUPIER_WEBHOOK_{name.upper()}"
            raw: Any = env.get(variable)
            where = variable
            if raw is None or not str(raw).strip():
                raw, where = table.get(name), f"[webhooks] {name}"
            if raw is None or isinstance(raw, bool):
                if isinstance(raw, bool):
                    raise BadRequest(f"{where} must be a number")
                continue
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError):
                raise BadRequest(f"{where} must be a number") from None
        settings = cls(**values)
        if settings.max_attempts < 1 or settings.concurrency < 0:
            raise BadRequest("webhook max_attempts must be >= 1 and concurrency >= 0")
        if min(settings.backoff_base, settings.backoff_max, settings.timeout) <= 0:
            raise BadRequest("webhook backoff and timeout must be positive")
        if min(settings.poll_interval, settings.refresh_interval) <= 0:
            raise BadRequest("webhook poll and refresh intervals must be positive")
        return settings


class Deliverer:
    """Delivers the outbox while open (``async with``): at most ``concurrency`` requests at a
    time, each with the settings' timeout. :meth:`wake` makes it look for due work at once
    rather than at its next poll.
    """

    def __init__(
        self,
        outbox: Outbox,
        settings: WebhookSettings,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[float, float], float] = random.uniform,
        debug: DebugLog | None = None,
    ) -> None:
        self._outbox = outbox
        self._debug = debug
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0
        self.dead = 0

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
            connector=aiohttp.TCPConnector(limit=self._settings.concurrency),
            trust_env=False,
        )
        self._runner = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_task(self._runner)
        if self._inflight:
            # Let requests under way finish and be recorded; the rest are retried by whoever
            # claims them after their lease.
            _, late = await asyncio.wait(self._inflight, timeout=_STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        settings = self._settings
        while True:
            self._wake.clear()
            free = settings.concurrency - len(self._inflight)
            claimed = 0
            if free > 0:
                try:
                    token, batch = await self._outbox.claim(self._clock(), settings.lease, free)
                except Unavailable as exc:
                    log.warning("webhook outbox unavailable: %s", exc)
                    batch = []
                for delivery in batch:
                    task = asyncio.create_task(self._deliver(delivery, token))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                claimed = len(batch)
            if claimed and len(self._inflight) < settings.concurrency:
                continue  # there may be more due right now
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the event is set, and the node would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.poll_interval):
                    await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free

    async def _deliver(self, delivery: Delivery, token: str) -> None:
        try:
            await self._attempt(delivery, token)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease runs out and another attempt follows
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)

    async def _attempt(self, delivery: Delivery, token: str) -> None:
        assert self._session is not None
        endpoint = await self._outbox.endpoint(delivery.endpoint_id)
        if endpoint is None:
            return  # deleted meanwhile, with its deliveries
        body = delivery.body(endpoint.format)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Croupier-Webhooks/1",
            ID_HEADER: delivery.id,
            EVENT_HEADER: delivery.event_type,
        }
        if endpoint.format is WebhookFormat.PUSHER:
            headers[PUSHER_KEY_HEADER] = endpoint.app_key
            headers[PUSHER_SIGNATURE_HEADER] = sign_pusher(endpoint.secret, body)
        else:
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(endpoint.secret, timestamp, body)
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.content.read(_READ_LIMIT)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        now = self._clock()
        ok = status is not None and 200 <= status < 300
        if status is not None and not ok:
            error = f"HTTP {status}"
        used = delivery.budget_used + 1
        if ok:
            outcome, next_at = DeliveryStatus.DELIVERED, now
            self.delivered += 1
        elif used >= self._settings.max_attempts:
            outcome, next_at = DeliveryStatus.DEAD, now
            self.dead += 1
            log.warning("webhook delivery %s dead after %d attempts: %s", delivery.id, used, error)
        else:
            delay = backoff_delay(
                used,
                base=self._settings.backoff_base,
                cap=self._settings.backoff_max,
                rand=self._rand,
            )
            outcome, next_at = DeliveryStatus.PENDING, now + delay
            self.failed += 1
        attempt = Attempt(delivery.attempts + 1, now, status, error, duration_ms)
        if self._debug is not None and self._debug.watching:
            # The endpoint by id only: its URL may carry credentials, its secret never shows.
            self._debug.emit(
                "webhook.delivered" if ok else "webhook.failed",
                endpoint=delivery.endpoint_id,
                delivery=delivery.id,
                type=delivery.event_type,
                channel=delivery.channel,
                offset=delivery.offset,
                status=status,
                error=error,
                attempt=attempt.attempt,
                outcome=str(outcome),
                ms=duration_ms,
            )
        try:
            kept = await self._outbox.record(
                delivery, token, attempt, status=outcome, next_at=next_at
            )
        except Unavailable as exc:
            log.warning("could not record webhook delivery %s: %s", delivery.id, exc)
            return
        if not kept:
            log.warning("webhook delivery %s: lease lost before the outcome was kept", delivery.id)

"""The webhook tables: endpoints, the durable outbox of deliveries, and their attempts.

One outbox row per (endpoint, event). A row is ``pending`` until a 2xx answer makes it
``delivered``, or the attempt limit makes it ``dead`` (a dead letter, kept for inspection and
redelivery). Workers on any number of nodes claim due rows with a lease: the claim is one
conditional ``UPDATE`` that only takes rows whose lease is free or expired, so two workers
never hold the same row (on PostgreSQL the row lock makes the second ``UPDATE`` re-check the
condition and skip the row; on SQLite transactions are serialised).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from ...events import Event
from ...storage import Database, Row

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Outbox",
    "WebhookFormat",
    "delivery_id",
]

MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE croupier_webhook_endpoints ("
        " id TEXT PRIMARY KEY,"
        " url TEXT NOT NULL,"
        " event_types TEXT NOT NULL,"
        " secret TEXT NOT NULL,"
        " active BOOLEAN NOT NULL,"
        " description TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL,"
        " updated_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE croupier_webhook_deliveries ("
        " id TEXT PRIMARY KEY,"
        " endpoint_id TEXT NOT NULL,"
        " event_type TEXT NOT NULL,"
        " channel TEXT NOT NULL,"
        " event_offset BIGINT,"
        " event_ts TEXT NOT NULL,"
        " data TEXT NOT NULL,"
        " status TEXT NOT NULL,"
        " attempts BIGINT NOT NULL,"
        " budget_used BIGINT NOT NULL,"
        " next_at DOUBLE PRECISION NOT NULL,"
        " lease_until DOUBLE PRECISION,"
        " lease_token TEXT,"
        " created_at DOUBLE PRECISION NOT NULL,"
        " finished_at DOUBLE PRECISION,"
        " last_status BIGINT,"
        " last_error TEXT)",
        "CREATE INDEX croupier_webhook_deliveries_due"
        " ON croupier_webhook_deliveries (status, next_at)",
        "CREATE INDEX croupier_webhook_deliveries_endpoint"
        " ON croupier_webhook_deliveries (endpoint_id, status, created_at)",
        "CREATE TABLE croupier_webhook_attempts ("
        " delivery_id TEXT NOT NULL,"
        " attempt BIGINT NOT NULL,"
        " at DOUBLE PRECISION NOT NULL,"
        " status_code BIGINT,"
        " error TEXT,"
        " duration_ms DOUBLE PRECISION NOT NULL,"
        " PRIMARY KEY (delivery_id, attempt))",
    ],
    [
        # Which body and headers a delivery has: Croupier's own, or Pusher's (signed with a
        # Pusher app's secret, which the endpoint's secret then is, and named by its key).
        "ALTER TABLE croupier_webhook_endpoints ADD COLUMN format TEXT NOT NULL DEFAULT 'croupier'",
        "ALTER TABLE croupier_webhook_endpoints ADD COLUMN app_key TEXT NOT NULL DEFAULT ''",
    ],
]


class WebhookFormat(StrEnum):
    CROUPIER = "croupier"  # {id, type, channel, offset, ts, data}, Croupier-Webhook-* headers
    PUSHER = "pusher"  # {time_ms, events: [data]}, X-Pusher-Key and X-Pusher-Signature


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    active: bool
    description: str
    created_at: float
    updated_at: float
    format: WebhookFormat = WebhookFormat.CROUPIER
    app_key: str = ""  # the Pusher app's key, for the Pusher format

    @classmethod
    def from_row(cls, row: Row) -> Endpoint:
        return cls(
            row["id"],
            row["url"],
            tuple(orjson.loads(row["event_types"])),
            row["secret"],
            bool(row["active"]),
            row["description"],
            row["created_at"],
            row["updated_at"],
            WebhookFormat(row["format"]),
            row["app_key"],
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    event_type: str
    channel: str
    offset: int | None
    ts: str
    data: str  # the event's data, as JSON
    status: DeliveryStatus
    attempts: int
    budget_used: int  # attempts since it was enqueued or last redelivered
    next_at: float
    created_at: float
    finished_at: float | None
    last_status: int | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(
            row["id"],
            row["endpoint_id"],
            row["event_type"],
            row["channel"],
            row["event_offset"],
            row["event_ts"],
            row["data"],
            DeliveryStatus(row["status"]),
            row["attempts"],
            row["budget_used"],
            row["next_at"],
            row["created_at"],
            row["finished_at"],
            row["last_status"],
            row["last_error"],
        )

    def body(self, format: WebhookFormat = WebhookFormat.CROUPIER) -> bytes:
        """The JSON document POSTed to the endpoint: the same bytes on every attempt.

        In the Pusher format the event's data is one Pusher webhook event, sent in an
        ``events`` list with the time it was enqueued.
        """
        if format is WebhookFormat.PUSHER:
            return orjson.dumps(
                {
                    "time_ms": round(self.created_at * 1000),
                    "events": [orjson.Fragment(self.data.encode())],
                }
            )
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.event_type,
                "channel": self.channel,
                "offset": self.offset,
                "ts": self.ts,
                "data": orjson.Fragment(self.data.encode()),
            }
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


def delivery_id(endpoint_id: str, event: Event) -> str:
    """The delivery's id: derived from the endpoint and the stored event's position, so that
    enqueueing the same event twice makes one row; random for ephemeral events."""
    if event.offset is None:
        return "dl_" + secrets.token_hex(16)
    key = f"{endpoint_id}\0{event.channel}\0{event.epoch}\0{event.offset}".encode()
    return "dl_" + hashlib.sha256(key).hexdigest()[:32]


_DELIVERY_COLUMNS = (
    "id, endpoint_id, event_type, channel, event_offset, event_ts, data, status, attempts, "
    "budget_used, next_at, created_at, finished_at, last_status, last_error"
)


class Outbox:
    """The webhook tables over a :class:`~croupier.storage.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.migrate("webhooks", MIGRATIONS)

    # -- endpoints ---------------------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        await self.db.execute(
            "INSERT INTO croupier_webhook_endpoints (id, url, event_types, secret, active, "
            "description, created_at, updated_at, format, app_key) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            endpoint.id,
            endpoint.url,
            orjson.dumps(list(endpoint.event_types)).decode(),
            endpoint.secret,
            endpoint.active,
            endpoint.description,
            endpoint.created_at,
            endpoint.updated_at,
            endpoint.format.value,
            endpoint.app_key,
        )

    async def endpoints(self) -> list[Endpoint]:
        rows = await self.db.fetch("SELECT * FROM croupier_webhook_endpoints ORDER BY created_at")
        return [Endpoint.from_row(r) for r in rows]

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        row = await self.db.fetchrow(
            "SELECT * FROM croupier_webhook_endpoints WHERE id = $1", endpoint_id
        )
        return None if row is None else Endpoint.from_row(row)

    async def update_endpoint(self, endpoint: Endpoint) -> bool:
        changed = await self.db.execute(
            "UPDATE croupier_webhook_endpoints SET url = $2, event_types = $3, secret = $4, "
            "active = $5, description = $6, updated_at = $7 WHERE id = $1",
            endpoint.id,
            endpoint.url,
            orjson.dumps(list(endpoint.event_types)).decode(),
            endpoint.secret,
            endpoint.active,
            endpoint.description,
            endpoint.updated_at,
        )
        return changed > 0

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint with its deliveries and their attempts."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM croupier_webhook_attempts WHERE delivery_id IN "
                "(SELECT id FROM croupier_webhook_deliveries WHERE endpoint_id = $1)",
                endpoint_id,
            )
            await tx.execute(
                "DELETE FROM croupier_webhook_deliveries WHERE endpoint_id = $1", endpoint_id
            )
            changed = await tx.execute(
                "DELETE FROM croupier_webhook_endpoints WHERE id = $1", endpoint_id
            )
        return changed > 0

    # -- the outbox --------------------------------------------------------------------------

    async def enqueue(self, pairs: Sequence[tuple[str, Event]], now: float) -> None:
        """One pending delivery per (endpoint id, event), due at once; repeats are no-ops."""
        if not pairs:
            return
        rows: list[list[Any]] = []
        for endpoint_id, event in pairs:
            rows.append(
                [
                    delivery_id(endpoint_id, event),
                    endpoint_id,
                    event.type,
                    event.channel,
                    event.offset,
                    event.ts,
                    event.payload.decode(),
                    now,
                ]
            )
        await self.db.executemany(
            "INSERT INTO croupier_webhook_deliveries (id, endpoint_id, event_type, channel, "
            "event_offset, event_ts, data, status, attempts, budget_used, next_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, 0, $8, $8) "
            "ON CONFLICT (id) DO NOTHING",
            rows,
        )

    async def claim(self, now: float, lease: float, limit: int) -> tuple[str, list[Delivery]]:
        """Take up to ``limit`` due deliveries of active endpoints until ``now + lease``.

        Returns the lease token (for :meth:`record`) and the deliveries. A claimed row is this
        caller's until it records the outcome or the lease runs out (then another worker may
        take it: a node that died mid-delivery loses nothing).
        """
        token = secrets.token_hex(16)
        # On PostgreSQL, concurrent claimers skip each other's candidate rows rather than
        # queue behind them; the conditions of the outer UPDATE are what make a claim
        # exclusive, on both engines.
        skip = " FOR UPDATE OF d SKIP LOCKED" if self.db.dialect == "postgres" else ""
        claimed = await self.db.execute(
            "UPDATE croupier_webhook_deliveries SET lease_until = $1, lease_token = $2 "
            "WHERE id IN (SELECT d.id FROM croupier_webhook_deliveries d "
            "JOIN croupier_webhook_endpoints e ON e.id = d.endpoint_id "
            "WHERE d.status = 'pending' AND d.next_at <= $3 AND e.active "
            "AND (d.lease_until IS NULL OR d.lease_until < $3) "
            f"ORDER BY d.next_at LIMIT $4{skip}) "
            "AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
            now + lease,
            token,
            now,
            limit,
        )
        if not claimed:
            return token, []
        rows = await self.db.fetch(
            f"SELECT {_DELIVERY_COLUMNS} FROM croupier_webhook_deliveries "
            "WHERE lease_token = $1 AND status = 'pending' ORDER BY next_at",
            token,
        )
        return token, [Delivery.from_row(r) for r in rows]

    async def record(
        self,
        delivery: Delivery,
        token: str,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_at: float,
    ) -> bool:
        """Record one attempt and its outcome, if this worker still holds the lease.

        Returns whether it did (``False``: the lease ran out and another worker took over).
        """
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE croupier_webhook_deliveries SET status = $3, attempts = attempts + 1, "
                "budget_used = budget_used + 1, next_at = $4, lease_until = NULL, "
                "lease_token = NULL, finished_at = $5, last_status = $6, last_error = $7 "
                "WHERE id = $1 AND lease_token = $2",
                delivery.id,
                token,
                status.value,
                next_at,
                None if status is DeliveryStatus.PENDING else attempt.at,
                attempt.status_code,
                attempt.error,
            )
            if changed:
                await tx.execute(
                    "INSERT INTO croupier_webhook_attempts "
                    "(delivery_id, attempt, at, status_code, error, duration_ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    delivery.id,
                    attempt.attempt,
                    attempt.at,
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms,
                )
        return changed > 0

    # -- inspection and redelivery -------------------------------------------------------------

    async def deliveries(
        self,
        endpoint_id: str,
        status: DeliveryStatus | None,
        limit: int,
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first."""
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM croupier_webhook_deliveries WHERE endpoint_id = $1"
        args: list[Any] = [endpoint_id]
        if status is not None:
            args.append(status.value)
            sql += f" AND status = ${len(args)}"
        args.append(limit)
        sql += f" ORDER BY created_at DESC, id LIMIT ${len(args)}"
        return [Delivery.from_row(r) for r in await self.db.fetch(sql, *args)]

    async def delivery(self, endpoint_id: str, delivery: str) -> Delivery | None:
        row = await self.db.fetchrow(
            f"SELECT {_DELIVERY_COLUMNS} FROM croupier_webhook_deliveries "
            "WHERE id = $1 AND endpoint_id = $2",
            delivery,
            endpoint_id,
        )
        return None if row is None else Delivery.from_row(row)

    async def attempts(self, delivery: str) -> list[Attempt]:
        rows = await self.db.fetch(
            "SELECT attempt, at, status_code, error, duration_ms FROM croupier_webhook_attempts "
            "WHERE delivery_id = $1 ORDER BY attempt",
            delivery,
        )
        return [
            Attempt(r["attempt"], r["at"], r["status_code"], r["error"], r["duration_ms"])
            for r in rows
        ]

    async def redeliver(self, endpoint_id: str, delivery: str | None, now: float) -> int:
        """Make dead deliveries (one, or all of the endpoint's) pending and due now, with a
        fresh attempt budget. Returns how many."""
        sql = (
            "UPDATE croupier_webhook_deliveries SET status = 'pending', budget_used = 0, "
            "next_at = $2, finished_at = NULL, lease_until = NULL, lease_token = NULL "
            "WHERE endpoint_id = $1 AND status = 'dead'"
        )
        if delivery is None:
            return await self.db.execute(sql, endpoint_id, now)
        return await self.db.execute(sql + " AND id = $3", endpoint_id, now, delivery)

    async def counts(self) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT status, COUNT(*) AS n FROM croupier_webhook_deliveries GROUP BY status"
        )
        return {r["status"]: int(r["n"]) for r in rows}

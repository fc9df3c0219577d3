"""The webhook outbox over SQLite and PostgreSQL: idempotent enqueue, exclusive claims,
leases that expire, outcomes recorded only by the lease holder, dead letters redelivered."""

from __future__ import annotations

import asyncio

import pytest

from croupier.events import Event
from croupier.services.webhooks.outbox import Attempt, DeliveryStatus, Endpoint, Outbox
from croupier.storage import Database


@pytest.fixture
async def outbox(services_database: Database) -> Outbox:
    box = Outbox(services_database)
    await box.migrate()
    await box.migrate()  # again: nothing to do
    await box.add_endpoint(
        Endpoint("wh_a", "http://127.0.0.1:9/", ("*",), "s" * 16, True, "", 1.0, 1.0)
    )
    return box


def _event(offset: int | None, channel: str = "tournament:1") -> Event:
    return Event(channel, "tournament.completed", b'{"n":%d}' % (offset or 0), "ts", offset, "e1")


def _attempt(n: int, status: int | None = 200) -> Attempt:
    return Attempt(n, 10.0, status, None, 1.5)


async def test_enqueue_is_idempotent_per_endpoint_and_stored_event(outbox: Outbox) -> None:
    await outbox.enqueue([("wh_a", _event(1)), ("wh_a", _event(2))], now=5.0)
    await outbox.enqueue([("wh_a", _event(1)), ("wh_a", _event(None))], now=6.0)
    deliveries = await outbox.deliveries("wh_a", None, 100)
    assert len(deliveries) == 3
    body = next(d for d in deliveries if d.offset == 1).body()
    assert b'"data":{"n":1}' in body
    assert b'"type":"tournament.completed"' in body


async def test_concurrent_claims_never_share_a_delivery(outbox: Outbox) -> None:
    await outbox.enqueue([("wh_a", _event(i)) for i in range(1, 41)], now=5.0)
    results = await asyncio.gather(*(outbox.claim(10.0, 30.0, 7) for _ in range(8)))
    ids = [d.id for _, batch in results for d in batch]
    assert len(ids) == len(set(ids))
    while len(ids) < 40:  # a claimer may come away with less than its share, never a twin
        _, batch = await outbox.claim(10.0, 30.0, 7)
        assert batch
        ids += [d.id for d in batch]
    assert len(set(ids)) == len(ids) == 40
    _, again = await outbox.claim(11.0, 30.0, 100)
    assert again == []  # all leased
    _, expired = await outbox.claim(41.0, 30.0, 100)
    assert len(expired) == 40  # leases ran out: another worker takes them


async def test_only_the_lease_holder_records(outbox: Outbox) -> None:
    await outbox.enqueue([("wh_a", _event(1))], now=5.0)
    old_token, [delivery] = await outbox.claim(10.0, 1.0, 10)
    new_token, [_] = await outbox.claim(20.0, 30.0, 10)  # the first lease expired
    kept = await outbox.record(
        delivery, old_token, _attempt(1), status=DeliveryStatus.DELIVERED, next_at=20.0
    )
    assert not kept
    assert await outbox.record(
        delivery, new_token, _attempt(1, 500), status=DeliveryStatus.PENDING, next_at=30.0
    )
    [stored] = await outbox.deliveries("wh_a", DeliveryStatus.PENDING, 10)
    assert (stored.attempts, stored.last_status, stored.next_at) == (1, 500, 30.0)
    assert (await outbox.claim(29.0, 30.0, 10))[1] == []  # not due yet
    assert len((await outbox.claim(30.0, 30.0, 10))[1]) == 1


async def test_dead_letters_redeliver_with_a_fresh_budget(outbox: Outbox) -> None:
    await outbox.enqueue([("wh_a", _event(1)), ("wh_a", _event(2))], now=5.0)
    token, batch = await outbox.claim(10.0, 30.0, 10)
    for d in batch:
        await outbox.record(d, token, _attempt(1, 503), status=DeliveryStatus.DEAD, next_at=10)
    dead = await outbox.deliveries("wh_a", DeliveryStatus.DEAD, 10)
    assert len(dead) == 2
    assert await outbox.redeliver("wh_a", dead[0].id, now=50.0) == 1
    assert await outbox.redeliver("wh_a", dead[0].id, now=50.0) == 0  # pending now
    assert await outbox.redeliver("wh_a", None, now=50.0) == 1
    token, batch = await outbox.claim(50.0, 30.0, 10)
    assert [(d.attempts, d.budget_used) for d in batch] == [(1, 0), (1, 0)]
    assert [a.status_code for a in await outbox.attempts(batch[0].id)] == [503]


async def test_inactive_endpoints_hold_their_deliveries(outbox: Outbox) -> None:
    await outbox.enqueue([("wh_a", _event(1))], now=5.0)
    endpoint = await outbox.endpoint("wh_a")
    assert endpoint is not None
    await outbox.update_endpoint(
        Endpoint(endpoint.id, endpoint.url, endpoint.event_types, endpoint.secret, False, "", 1, 2)
    )
    assert (await outbox.claim(10.0, 30.0, 10))[1] == []
    await outbox.update_endpoint(endpoint)
    assert len((await outbox.claim(10.0, 30.0, 10))[1]) == 1
    assert await outbox.delete_endpoint("wh_a")
    assert await outbox.deliveries("wh_a", None, 10) == []
    assert await outbox.endpoint("wh_a") is None

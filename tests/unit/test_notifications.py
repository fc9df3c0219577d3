"""Notifications: validation, dedup by message_id, pages, read marks, retention, publishing."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from croupier.config import Settings
from croupier.errors import BadRequest, Conflict, PayloadTooLarge
from croupier.gateway import Gateway
from croupier.services.notifications import (
    MAX_DETAILS_BYTES,
    NewNotification,
    NotificationsService,
    encode_details,
    validate_event,
    validate_message_id,
)
from croupier.services.players import Player, casino_time, parse_cursor
from croupier.storage import SQLiteDatabase

P1 = Player("1001", "12345")
P2 = Player("1001", "777")


@pytest.fixture
async def service() -> AsyncIterator[NotificationsService]:
    async with (
        Gateway(Settings(database_url="memory://")) as gateway,
        SQLiteDatabase(":memory:") as db,
        NotificationsService(gateway, db, interval=3600) as svc,
    ):
        yield svc


async def _events(svc: NotificationsService, who: Player) -> list[tuple[str, Any]]:
    history = await svc.gateway.log.read(who.channel, 0, 1000)
    return [(e.type, orjson.loads(e.payload)) for e in history.events]


def test_event_names() -> None:
    assert validate_event("bonus_granted") == "bonus_granted"
    assert validate_event("vip.level-up_2") == "vip.level-up_2"
    for bad in ("", "Bonus", "a b", "x" * 65, "bonus\n", "émoji"):
        with pytest.raises(BadRequest):
            validate_event(bad)


def test_message_ids() -> None:
    made = validate_message_id(None)
    assert str(uuid.UUID(made)) == made
    given = "A7F8C934-1B2D-4E5F-9C8A-7D6E5F4A3B2C"
    assert validate_message_id(given) == given.lower()
    for bad in ("", "nope", given + "\n", given[:-1], "{" + given[1:-1] + "}"):
        with pytest.raises(BadRequest):
            validate_message_id(bad)


def test_details_are_size_limited() -> None:
    assert encode_details({"bonus_amount": 100}) == b'{"bonus_amount":100}'
    assert encode_details({"big": 2**70}) == b'{"big":1180591620717411303424}'
    with pytest.raises(PayloadTooLarge):
        encode_details({"x": "y" * MAX_DETAILS_BYTES})


def test_time_format_and_cursors() -> None:
    assert casino_time(1761143445000) == "2025-10-22 14:30:45"
    pattern = re.compile("[0-9]{1,3}")
    assert parse_cursor(None, pattern) is None
    found = parse_cursor("17", pattern)
    assert found is not None
    assert found[0] == "17"
    for bad in ("", "1234", "17\n", "x"):
        with pytest.raises(BadRequest):
            parse_cursor(bad, pattern)


async def test_create_stores_and_pushes_the_casino_payload(
    service: NotificationsService,
) -> None:
    mid = str(uuid.uuid4())
    ((who, note, duplicate),) = await service.create(
        [(P1, NewNotification(event="bonus_granted", event_details={"a": 1}, message_id=mid))]
    )
    assert (who, duplicate) == (P1, False)
    events = await _events(service, P1)
    assert len(events) == 1
    kind, data = events[0]
    assert kind == "notification"
    assert list(data) == ["message_id", "event", "event_details", "is_read", "time"]
    assert data["message_id"] == mid
    assert data["event"] == "bonus_granted"
    assert data["event_details"] == {"a": 1}
    assert data["is_read"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", data["time"])
    assert orjson.loads(orjson.dumps(note)) == data


async def test_a_repeated_message_id_is_a_no_op(service: NotificationsService) -> None:
    mid = str(uuid.uuid4())
    first = NewNotification(event="bonus_granted", event_details={"a": 1}, message_id=mid)
    again = NewNotification(event="kyc_approved", message_id=mid.upper())
    await service.create([(P1, first)])
    ((_, note, duplicate),) = await service.create([(P1, again)])
    assert duplicate is True
    assert orjson.loads(orjson.dumps(note))["event"] == "bonus_granted"
    assert len(await _events(service, P1)) == 1
    page = await service.page(P1, unread_only=False, limit=10, cursor=None)
    assert len(page["notifications"]) == 1
    with pytest.raises(Conflict):
        await service.create([(P2, first)])


async def test_single_creates_arriving_together(service: NotificationsService) -> None:
    """Creates that go in as one statement keep each one's own answer."""
    mid = str(uuid.uuid4())
    note = NewNotification(event="bonus_granted", message_id=mid)
    others = [NewNotification(event="deposit_success") for _ in range(20)]
    outcomes = await asyncio.gather(
        service.create([(P1, note)]),
        service.create([(P1, note)]),  # the same message again: a no-op
        service.create([(P2, note)]),  # the same message_id for another player
        *(service.create([(P1, other)]) for other in others),
        return_exceptions=True,
    )
    first, again, taken, *rest = outcomes
    assert isinstance(first, list)
    assert first[0][2] is False
    assert isinstance(again, list)
    assert again[0][2] is True
    assert again[0][1]["message_id"] == first[0][1]["message_id"]
    assert isinstance(taken, Conflict)
    assert all(isinstance(r, list) and r[0][2] is False for r in rest)
    assert len(await _events(service, P1)) == 21
    assert await _events(service, P2) == []


async def test_a_batch_is_all_or_nothing(service: NotificationsService) -> None:
    taken = str(uuid.uuid4())
    await service.create([(P2, NewNotification(event="x", message_id=taken))])
    batch = [
        (P1, NewNotification(event="deposit_success")),
        (P1, NewNotification(event="bonus_granted", message_id=taken)),
    ]
    with pytest.raises(Conflict):
        await service.create(batch)
    assert await service.unread(P1) == 0
    results = await service.create([(P1, NewNotification(event=f"e{i}")) for i in range(3)])
    assert [d for _, _, d in results] == [False] * 3
    assert await service.unread(P1) == 3
    assert len(await _events(service, P1)) == 3


async def test_pages_unread_filter_and_read_marks(service: NotificationsService) -> None:
    made = await service.create([(P1, NewNotification(event=f"e{i}")) for i in range(5)])
    ids = [orjson.loads(orjson.dumps(n))["message_id"] for _, n, _ in made]
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.page(P1, unread_only=False, limit=2, cursor=cursor)
        seen += [n["message_id"] for n in page["notifications"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert sorted(seen) == sorted(ids)
    assert await service.mark_read(P1, ids[:2], everything=False) == 2
    assert await service.mark_read(P1, ids[:2], everything=False) == 0  # already read
    assert await service.mark_read(P2, ids[2:], everything=False) == 0  # not theirs
    assert await service.unread(P1) == 3
    unread = await service.page(P1, unread_only=True, limit=50, cursor=None)
    assert sorted(n["message_id"] for n in unread["notifications"]) == sorted(ids[2:])
    assert unread["unread"] == 3
    assert await service.mark_read(P1, [], everything=True) == 3
    assert await service.unread(P1) == 0
    everything = await service.page(P1, unread_only=False, limit=50, cursor=None)
    assert all(n["is_read"] for n in everything["notifications"])


async def test_purge_drops_what_is_past_retention(service: NotificationsService) -> None:
    await service.create([(P1, NewNotification(event="old"))])
    assert await service.purge() == 0
    later = service.retention_ms + 10_000_000_000_000
    assert await service.purge(now=later) == 1
    assert await service.unread(P1) == 0


async def test_a_notification_the_log_refused_is_pushed_later(
    service: NotificationsService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from croupier.errors import Unavailable

    async def down(*args: Any, **kw: Any) -> Any:
        raise Unavailable("log down")

    real = service.gateway.publish_many
    monkeypatch.setattr(service.gateway, "publish_many", down)
    ((_, _, duplicate),) = await service.create([(P1, NewNotification(event="bonus_granted"))])
    assert duplicate is False
    assert await _events(service, P1) == []
    monkeypatch.setattr(service.gateway, "publish_many", real)
    assert await service.push_pending(older_than=0) == 1
    assert len(await _events(service, P1)) == 1
    assert await service.push_pending(older_than=0) == 0

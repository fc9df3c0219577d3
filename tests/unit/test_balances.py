"""Coin ledger rules (no I/O), and the service over SQLite: idempotency, races, events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import orjson
import pytest

from croupier.config import Settings
from croupier.errors import BadRequest, Conflict
from croupier.gateway import Gateway
from croupier.services.balances import MAX_COINS, BalancesService, Kind, Totals, WalletUpdate, apply
from croupier.services.players import Player
from croupier.storage import SQLiteDatabase

P1 = Player("1001", "12345")


def test_earn_and_redeem_count_in_the_lifetime_totals() -> None:
    after, change = apply(Totals(), Kind.EARN, 100)
    assert (after, change) == (Totals(100, 100, 0), 100)
    after, change = apply(after, Kind.REDEEM, 30)
    assert (after, change) == (Totals(70, 100, 30), -30)


def test_redeeming_beyond_the_balance_is_a_conflict() -> None:
    with pytest.raises(Conflict) as caught:
        apply(Totals(70, 100, 30), Kind.REDEEM, 71)
    assert caught.value.code == "insufficient_balance"
    assert apply(Totals(70, 100, 30), Kind.REDEEM, 70)[0] == Totals(0, 100, 100)


def test_adjust_moves_the_balance_only_and_never_below_zero() -> None:
    assert apply(Totals(10, 10, 0), Kind.ADJUST, -10) == (Totals(0, 10, 0), -10)
    assert apply(Totals(10, 10, 0), Kind.ADJUST, 5) == (Totals(15, 10, 0), 5)
    with pytest.raises(Conflict):
        apply(Totals(10, 10, 0), Kind.ADJUST, -11)
    with pytest.raises(BadRequest):
        apply(Totals(10, 10, 0), Kind.ADJUST, 0)


def test_expire_takes_at_most_the_balance() -> None:
    assert apply(Totals(10, 50, 40), Kind.EXPIRE, 4) == (Totals(6, 50, 40), -4)
    assert apply(Totals(10, 50, 40), Kind.EXPIRE, 99) == (Totals(0, 50, 40), -10)
    assert apply(Totals(), Kind.EXPIRE, 5) == (Totals(), 0)


@pytest.mark.parametrize("kind", [Kind.EARN, Kind.REDEEM, Kind.EXPIRE])
@pytest.mark.parametrize("amount", [0, -1])
def test_amounts_must_be_positive(kind: Kind, amount: int) -> None:
    with pytest.raises(BadRequest):
        apply(Totals(10, 10, 0), kind, amount)


def test_figures_are_capped() -> None:
    with pytest.raises(Conflict) as caught:
        apply(Totals(MAX_COINS, MAX_COINS, 0), Kind.EARN, 1)
    assert caught.value.code == "limit_exceeded"


def test_wallet_update_shape() -> None:
    ok = msgspec.json.decode(
        b'{"balance":"250.00","currency":"USD","change":-20.5,"transaction_id":"t1"}',
        type=WalletUpdate,
    )
    assert msgspec.json.encode(ok) == (
        b'{"balance":"250.00","currency":"USD","change":-20.5,"transaction_id":"t1"}'
    )
    for bad in (
        b'{"currency":"USD"}',
        b'{"balance":"1,5","currency":"USD"}',
        b'{"balance":1,"currency":"usd"}',
        b'{"balance":1,"currency":"USD","extra":1}',
        b'{"balance":true,"currency":"USD"}',
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=WalletUpdate)


@pytest.fixture
async def service() -> AsyncIterator[BalancesService]:
    async with (
        Gateway(Settings(database_url="memory://")) as gateway,
        SQLiteDatabase(":memory:") as db,
        BalancesService(gateway, db) as svc,
    ):
        yield svc


async def _pushed(svc: BalancesService) -> list[Any]:
    history = await svc.gateway.log.read(P1.channel, 0, 1000)
    return [(e.type, orjson.loads(e.payload)) for e in history.events]


async def test_changes_are_ledgered_and_pushed(service: BalancesService) -> None:
    entry, duplicate = await service.change(P1, Kind.EARN, 100, "k1", "welcome")
    assert duplicate is False
    assert (entry["seq"], entry["balance"], entry["reason"]) == (1, 100, "welcome")
    await service.change(P1, Kind.REDEEM, 40, "k2")
    assert await service.balance(P1) == Totals(60, 100, 40)
    update = "gamification_balance_update"
    assert await _pushed(service) == [
        (update, {"balance": 100, "total_received": 100, "total_redeemed": 0}),
        (update, {"balance": 60, "total_received": 100, "total_redeemed": 40}),
    ]
    page = await service.ledger(P1, limit=1, cursor=None)
    assert [e["seq"] for e in page["entries"]] == [2]
    page = await service.ledger(P1, limit=1, cursor=page["next_cursor"])
    assert [e["seq"] for e in page["entries"]] == [1]
    assert page["next_cursor"] is None


async def test_a_repeated_key_returns_the_first_result(service: BalancesService) -> None:
    first, _ = await service.change(P1, Kind.EARN, 100, "k1")
    await service.change(P1, Kind.EARN, 5, "k2")
    again, duplicate = await service.change(P1, Kind.EARN, 100, "k1")
    assert duplicate is True
    assert again == first
    assert await service.balance(P1) == Totals(105, 105, 0)
    assert len(await _pushed(service)) == 2
    with pytest.raises(Conflict) as caught:
        await service.change(P1, Kind.REDEEM, 100, "k1")
    assert caught.value.code == "idempotency_conflict"


async def test_a_refused_redeem_changes_nothing(service: BalancesService) -> None:
    await service.change(P1, Kind.EARN, 50, "k1")
    with pytest.raises(Conflict):
        await service.change(P1, Kind.REDEEM, 51, "k2")
    assert await service.balance(P1) == Totals(50, 50, 0)
    assert len((await service.ledger(P1, limit=50, cursor=None))["entries"]) == 1
    # The refused key was not used up: with enough coins it goes through.
    await service.change(P1, Kind.EARN, 1, "k3")
    entry, duplicate = await service.change(P1, Kind.REDEEM, 51, "k2")
    assert (entry["balance"], duplicate) == (0, False)


async def test_concurrent_redeems_only_the_ones_that_fit(service: BalancesService) -> None:
    await service.change(P1, Kind.EARN, 100, "seed")

    async def redeem(i: int) -> bool:
        try:
            await service.change(P1, Kind.REDEEM, 30, f"r{i}")
        except Conflict:
            return False
        return True

    results = await asyncio.gather(*(redeem(i) for i in range(10)))
    assert results.count(True) == 3
    assert await service.balance(P1) == Totals(10, 100, 90)
    pushed = await _pushed(service)
    assert [p[1]["balance"] for p in pushed] == [100, 70, 40, 10]

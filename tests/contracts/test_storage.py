"""The services' Database contract, over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from croupier.storage import Database

STEPS = [
    [
        "CREATE TABLE wallet (player TEXT PRIMARY KEY, coins BIGINT NOT NULL, note TEXT)",
    ],
    ["CREATE INDEX wallet_coins ON wallet (coins)"],
]


@pytest.fixture
async def db(services_database: Database) -> Database:
    await services_database.migrate("test", STEPS)
    return services_database


async def test_migrations_apply_once(db: Database) -> None:
    await db.migrate("test", STEPS)  # again: nothing to do, no error
    rows = await db.fetch(
        "SELECT version FROM croupier_service_migrations WHERE component = $1 ORDER BY version",
        "test",
    )
    assert [r["version"] for r in rows] == [1, 2]


async def test_upsert_and_returning(db: Database) -> None:
    sql = (
        "INSERT INTO wallet (player, coins) VALUES ($1, $2) ON CONFLICT (player) "
        "DO UPDATE SET coins = wallet.coins + EXCLUDED.coins RETURNING coins"
    )
    assert (await db.fetchrow(sql, "p1", 10)) == {"coins": 10}
    assert (await db.fetchrow(sql, "p1", 5)) == {"coins": 15}
    assert await db.execute("UPDATE wallet SET note = $2 WHERE player = $1", "p1", "hi") == 1
    assert await db.execute("UPDATE wallet SET note = $2 WHERE player = $1", "nobody", "x") == 0
    await db.executemany(
        "INSERT INTO wallet (player, coins) VALUES ($1, $2)", [("p2", 1), ("p3", 2)]
    )
    rows = await db.fetch("SELECT player, coins, note FROM wallet ORDER BY player")
    assert rows == [
        {"player": "p1", "coins": 15, "note": "hi"},
        {"player": "p2", "coins": 1, "note": None},
        {"player": "p3", "coins": 2, "note": None},
    ]


async def test_a_failed_transaction_changes_nothing(db: Database) -> None:
    await db.execute("INSERT INTO wallet (player, coins) VALUES ($1, $2)", "p1", 10)

    async def change_then_fail() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE wallet SET coins = 0 WHERE player = $1", "p1")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await change_then_fail()
    assert await db.fetchrow("SELECT coins FROM wallet WHERE player = $1", "p1") == {"coins": 10}


async def test_read_then_write_decisions_do_not_race(db: Database) -> None:
    """Twenty concurrent spends of 10 from a balance of 100: exactly ten succeed."""
    await db.execute("INSERT INTO wallet (player, coins) VALUES ($1, $2)", "p1", 100)

    async def spend() -> bool:
        async with db.transaction() as tx:
            row = await tx.fetchrow("SELECT coins FROM wallet WHERE player = $1 FOR UPDATE", "p1")
            assert row is not None
            if row["coins"] < 10:
                return False
            await tx.execute("UPDATE wallet SET coins = coins - 10 WHERE player = $1", "p1")
            return True

    results = await asyncio.gather(*(spend() for _ in range(20)))
    assert results.count(True) == 10
    assert await db.fetchrow("SELECT coins FROM wallet WHERE player = $1", "p1") == {"coins": 0}

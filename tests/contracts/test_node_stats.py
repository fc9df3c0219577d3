"""Node statistics over a real Database (SQLite and PostgreSQL): every node sees the others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from croupier.config import Settings
from croupier.gateway import Gateway
from croupier.services.stats import NodeStats
from croupier.storage import database_from_url
from tests.services import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'services.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


async def test_every_node_lists_the_others_and_forgets_a_stopped_one(database_url: str) -> None:
    settings = Settings(database_url="memory://", broker_url="redis://127.0.0.1:6379/0")
    async with database_from_url(database_url) as db:
        one = NodeStats(Gateway(settings), db, interval=3600)
        two = NodeStats(Gateway(settings), db, interval=3600)
        async with two:
            async with one:
                one.gateway.metrics.published += 30
                one.sample()
                await one._share()
                await one._share()  # a second write replaces the first
                report = await two.report()
            after = await two.report()
    assert [n.id for n in report.nodes] == [two.id, one.id]
    assert report.nodes[1].published == 30
    assert report.nodes[1].series[-1].published > 0
    assert report.connections == 0
    assert [n.id for n in after.nodes] == [two.id]  # a node that stopped is gone at once


async def test_a_single_node_keeps_its_figures_to_itself(tmp_path: Path) -> None:
    async with database_from_url(f"sqlite:///{tmp_path / 'services.db'}") as db:
        node = NodeStats(Gateway(Settings(database_url="memory://")), db, interval=3600)
        async with node:
            assert not node.shared
            report = await node.report()
            rows = await db.fetch("SELECT node_id FROM croupier_nodes")
    assert [n.id for n in report.nodes] == [node.id]
    assert rows == []

"""Where the services' SQLite database lives: a file of its own beside the log's."""

from __future__ import annotations

from pathlib import Path

import pytest

from croupier.storage import SQLiteDatabase, database_from_url
from croupier.storage.sqlite import services_path


def test_the_services_file_sits_beside_the_logs() -> None:
    assert services_path("croupier.db") == "croupier-services.db"
    assert services_path("/var/lib/croupier/log.sqlite") == "/var/lib/croupier/log-services.sqlite"
    assert services_path("data/croupier") == "data/croupier-services.db"
    assert services_path(":memory:") == ":memory:"


async def test_a_sqlite_url_gives_the_second_file_with_the_same_durability(tmp_path: Path) -> None:
    database = database_from_url(f"sqlite:///{tmp_path / 'croupier.db'}?synchronous=FULL")
    assert isinstance(database, SQLiteDatabase)
    async with database:
        await database.execute("CREATE TABLE t (x INTEGER)")
        assert await database.fetch("PRAGMA synchronous") == [{"synchronous": 2}]  # FULL
    assert (tmp_path / "croupier-services.db").exists()
    assert not (tmp_path / "croupier.db").exists()


def test_an_unknown_durability_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        database_from_url("sqlite:///x.db?synchronous=SOMETIMES")

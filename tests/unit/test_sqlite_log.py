"""What only the SQLite log has: a failed transaction, and its file across reopens.

The behaviour every Log shares is in ``tests/contracts/test_log.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from croupier.errors import Unavailable
from croupier.logs import Append, SQLiteLog, log_from_url, now_ts


def item(channel: str, payload: object = b"{}") -> Append:
    return Append(channel, "t.x", payload, now_ts())  # type: ignore[arg-type]


async def test_a_failed_batch_stores_nothing_and_skips_no_offset(tmp_path: Path) -> None:
    async with SQLiteLog(str(tmp_path / "log.db")) as log:
        await log.append([item("room:a")])
        unstorable = object()  # sqlite3 cannot bind it: the transaction rolls back
        with pytest.raises(Unavailable):
            await log.append([item("room:a"), item("room:b"), item("room:a", unstorable)])
        assert (await log.position("room:a")).offset == 1
        assert (await log.position("room:b")).offset == 0
        assert [c for c, _ in await log.channels("", 10)] == ["room:a"]
        (next_a, next_b) = await log.append([item("room:a"), item("room:b")])
        assert (next_a.event.offset, next_b.event.offset) == (2, 1)
        assert [e.offset for e in (await log.read("room:a", 0, 10)).events] == [1, 2]


async def test_closed_log_refuses_work(tmp_path: Path) -> None:
    log = SQLiteLog(str(tmp_path / "log.db"))
    async with log:
        pass
    with pytest.raises(Unavailable):
        await log.append([item("room:a")])
    with pytest.raises(Unavailable):
        await log.read("room:a", 0, 10)


async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot open"):
        async with SQLiteLog(str(tmp_path / "missing-dir" / "log.db")):
            pass


def test_database_urls(tmp_path: Path) -> None:
    relative = log_from_url("sqlite:///data/c.db?synchronous=full")
    assert isinstance(relative, SQLiteLog)
    assert relative.path == "data/c.db"
    absolute = log_from_url(f"sqlite:///{tmp_path}/c.db")
    assert isinstance(absolute, SQLiteLog)
    assert absolute.path == f"{tmp_path}/c.db"
    with pytest.raises(ValueError, match="synchronous"):
        log_from_url("sqlite:///c.db?synchronous=sometimes")
    with pytest.raises(ValueError, match="unsupported"):
        log_from_url("mongodb://localhost/c")

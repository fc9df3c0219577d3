"""Bridge configuration and message mapping, without servers (the e2e tests use real ones)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from croupier.config import (
    PostgresBridgeSettings,
    RedisBridgeSettings,
    Settings,
    load_settings,
)
from croupier.errors import BadRequest
from croupier.gateway import Gateway
from croupier.logs import MemoryLog
from croupier.services.bridges import RedisBridge, Rejected, json_default, row_data


def test_bridges_are_off_by_default() -> None:
    settings = load_settings(None, {})
    assert settings.bridges.redis is None
    assert settings.bridges.postgres is None


def test_bridges_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "croupier.toml"
    config.write_text(
        """
[bridges.redis]
url = "redis://localhost:6379/0"
lock_key = ""

[bridges.postgres]
url = "postgresql://poker@localhost/poker"
query = "SELECT payload FROM events WHERE id = $1"
"""
    )
    bridges = load_settings(config, {}).bridges
    assert bridges.redis == RedisBridgeSettings("redis://localhost:6379/0", lock_key="")
    assert bridges.postgres is not None
    assert bridges.postgres.channel == "new_event"
    assert bridges.postgres.query == "SELECT payload FROM events WHERE id = $1"
    assert bridges.postgres.target == "table:{tableId}"


def test_environment_urls_turn_bridges_on() -> None:
    env = {
        "CROUPIER_REDIS_BRIDGE_URL": "redis://r:6379/1",
        "CROUPIER_PG_BRIDGE_URL": "postgresql://p/poker",
    }
    bridges = load_settings(None, env).bridges
    assert bridges.redis is not None
    assert bridges.redis.url == "redis://r:6379/1"
    assert bridges.redis.pattern == "SSE::*::*"
    assert bridges.postgres == PostgresBridgeSettings("postgresql://p/poker")


def test_a_section_without_url_stays_off(tmp_path: Path) -> None:
    config = tmp_path / "croupier.toml"
    config.write_text('[bridges.redis]\npattern = "SSE::*::*"\n')
    assert load_settings(config, {}).bridges.redis is None


def test_unknown_bridge_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "croupier.toml"
    config.write_text('[bridges.postgres]\nurl = "postgresql://p/x"\nqeury = "SELECT 1"\n')
    with pytest.raises(BadRequest, match="qeury"):
        load_settings(config, {})


@pytest.fixture
def redis_bridge() -> RedisBridge:
    return RedisBridge(Gateway(Settings(), log=MemoryLog()), RedisBridgeSettings("redis://x"))


def test_redis_message_maps_to_the_player_channel(redis_bridge: RedisBridge) -> None:
    body = {
        "brand_id": 1001,
        "player_id": 12345,
        "event_type": "notification",
        "event_data": {"message_id": "m-1", "event": "bonus_granted", "amount": 100},
    }
    request = redis_bridge.request(b"SSE::1001::12345", orjson.dumps(body))
    assert request.channel == "player:1001:12345"
    assert request.type == "notification"
    assert orjson.loads(request.payload) == body["event_data"]
    assert request.idempotency_key == "notification:m-1"


def test_redis_message_without_message_id_has_no_key(redis_bridge: RedisBridge) -> None:
    body = {"event_type": "gamification_balance_update", "event_data": {"balance": 1500}}
    request = redis_bridge.request("SSE::7::8", orjson.dumps(body))
    assert (request.channel, request.idempotency_key) == ("player:7:8", None)


@pytest.mark.parametrize(
    ("channel", "data", "why"),
    [
        ("SSE::1001", b"{}", "is not PREFIX"),
        ("SSE::1001::", b"{}", "is not PREFIX"),
        ("SSE::1::2", b"{nope", "not JSON"),
        ("SSE::1::2", b"[1]", "not a JSON object"),
        ("SSE::1::2", b'{"event_type":"x"}', "required"),
        ("SSE::1::2", b'{"event_data":{}}', "required"),
        ("SSE::1::2", b'{"player_id":3,"event_type":"x","event_data":{}}', "does not match"),
    ],
)
def test_unusable_redis_messages_are_rejected(
    redis_bridge: RedisBridge, channel: str, data: bytes, why: str
) -> None:
    with pytest.raises(Rejected, match=why):
        redis_bridge.request(channel, data)


def test_row_data() -> None:
    assert row_data({"payload": {"kind": "hand_start"}}) == {"kind": "hand_start"}
    assert row_data({"payload": '{"kind":"hand_end"}'}) == {"kind": "hand_end"}
    assert row_data({"kind": "x", "hand": 3}) == {"kind": "x", "hand": 3}
    assert row_data({"id": 3}) == {"id": 3}
    with pytest.raises(Rejected, match="not JSON"):
        row_data({"payload": "plain text"})


def test_numeric_values_keep_their_digits() -> None:
    dumped = orjson.dumps({"a": Decimal("1000000000"), "b": Decimal("0.10")}, default=json_default)
    assert orjson.loads(dumped) == {"a": 1000000000, "b": "0.10"}


def test_redis_event_data_is_published_as_sent(redis_bridge: RedisBridge) -> None:
    data = b'{"message_id": "m-2",\n "amount": 18446744073709551615, "x": [1.50]}'
    body = b'{"event_type":"notification","event_data":' + data + b"}"
    request = redis_bridge.request("SSE::7::8", body)
    assert request.payload == data
    assert request.idempotency_key == "notification:m-2"


@pytest.mark.parametrize(
    ("event_data", "why"),
    [
        (b"[" * 100 + b"]" * 100, "nested more than 64 levels"),
        (b"[" * 5000 + b"]" * 5000, "nested more than 64 levels"),
        (b'{"amount":1e999}', "out of range"),
        (b'{"amount":' + b"9" * 400 + b"}", "does not fit in 64 bits"),
    ],
)
def test_redis_messages_past_the_json_limits_are_rejected(
    redis_bridge: RedisBridge, event_data: bytes, why: str
) -> None:
    body = b'{"event_type":"notification","event_data":' + event_data + b"}"
    with pytest.raises(Rejected, match=why):
        redis_bridge.request("SSE::7::8", body)


def test_row_data_past_the_json_limits_is_rejected() -> None:
    with pytest.raises(Rejected, match="nested more than 64 levels"):
        row_data({"payload": "[" * 300 + "]" * 300})
    with pytest.raises(Rejected, match="out of range"):
        row_data({"payload": '{"kind":"x","n":1e999}'})

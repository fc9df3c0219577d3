"""Settings from the environment and an optional TOML file (``croupier.config``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from croupier.config import (
    ALL_SCOPES,
    Limits,
    NamespaceRules,
    PublishRule,
    SubscribeMode,
    load_settings,
)
from croupier.core.channels import resolve
from croupier.errors import BadRequest

DEFAULT_NAMESPACES = {"tournament", "room", "match", "table", "player", "lobby"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "croupier.toml"
    path.write_text(text)
    return path


def sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_nothing_configured_works_locally() -> None:
    s = load_settings(env={})
    assert s.database_url == "sqlite:///croupier.db"
    assert s.broker_url == "local://"
    assert set(s.namespaces) == DEFAULT_NAMESPACES
    assert s.api_keys == ()
    assert s.generated_secret
    assert s.jwt_secret
    assert s.jwt_algorithms == ("HS256",)
    assert s.limits == Limits()
    assert load_settings(env={}).jwt_secret != s.jwt_secret, "a fresh secret each start"


def test_default_namespace_rules() -> None:
    s = load_settings(env={})
    assert s.namespaces["player"].subscribe is SubscribeMode.OWNER
    assert s.namespaces["match"].subscribe is SubscribeMode.PUBLIC
    assert s.namespaces["lobby"].subscribe is SubscribeMode.PUBLIC
    assert s.namespaces["tournament"].subscribe is SubscribeMode.TOKEN
    assert "reaction" in s.namespaces["match"].client_publish
    assert set(s.namespaces["tournament"].client_publish) == {"rebuy.request"}
    assert all(rules.stored for rules in s.namespaces.values())


def test_environment() -> None:
    s = load_settings(
        env={
            "CROUPIER_DATABASE_URL": "sqlite:////var/lib/c.db",
            "CROUPIER_BROKER_URL": "redis://localhost:6379/0",
            "CROUPIER_JWT_SECRET": "s3cret",
            "CROUPIER_API_KEYS": "key-one, key-two,,",
            "CROUPIER_ORIGINS": "https://a.example, https://b.example",
            "CROUPIER_PORT": "9000",
        }
    )
    assert s.database_url == "sqlite:////var/lib/c.db"
    assert s.broker_url == "redis://localhost:6379/0"
    assert (s.jwt_secret, s.generated_secret) == ("s3cret", False)
    assert [k.digest for k in s.api_keys] == [sha256("key-one"), sha256("key-two")]
    assert all(k.scopes == ALL_SCOPES for k in s.api_keys)
    assert s.origins == ("https://a.example", "https://b.example")
    assert s.port == 9000


def test_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
database_url = "sqlite:///from-file.db"
origins = ["https://casino.example"]

[auth]
jwt_secret = "file-secret"

[limits]
max_frame_bytes = 1000
outbox_messages = 64

[namespaces.room]
history_size = 10

[namespaces.chat]
subscribe = "grant"
client_publish = { "chat.message" = { max_bytes = 100, rate = 1.5, burst = 3 } }
""",
    )
    s = load_settings(path, env={})
    assert s.database_url == "sqlite:///from-file.db"
    assert s.origins == ("https://casino.example",)
    assert s.jwt_secret == "file-secret"
    assert (s.limits.max_frame_bytes, s.limits.outbox_messages) == (1000, 64)
    assert s.limits.max_subscriptions == Limits().max_subscriptions
    room = s.namespaces["room"]
    assert room.history_size == 10
    assert "player.action" in room.client_publish, "unset rules keep the default"
    assert room.join_leave
    assert s.namespaces["chat"] == NamespaceRules(
        subscribe=SubscribeMode.GRANT,
        client_publish={"chat.message": PublishRule(max_bytes=100, rate=1.5, burst=3)},
    )
    assert set(s.namespaces) == DEFAULT_NAMESPACES | {"chat"}


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[server]\ndatabase_url = "sqlite:///file.db"\norigins = ["https://f"]\n'
    )
    s = load_settings(
        path, env={"CROUPIER_DATABASE_URL": "sqlite:///env.db", "CROUPIER_ORIGINS": ""}
    )
    assert s.database_url == "sqlite:///env.db"
    assert s.origins == ()


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[namespaces.casino]\nhistory_size = 0\n")
    s = load_settings(env={"CROUPIER_CONFIG": str(path)})
    assert not s.namespaces["casino"].stored


def test_unknown_namespace_is_refused_unless_a_star_default(tmp_path: Path) -> None:
    plain = load_settings(env={})
    assert plain.rules_for("casino") is None
    with pytest.raises(BadRequest) as caught:
        resolve(plain, "casino:1")
    assert caught.value.code == "unknown_namespace"

    path = write(tmp_path, '[namespaces."*"]\nhistory_size = 5\nsubscribe = "public"\n')
    star = load_settings(path, env={})
    rules = star.rules_for("casino")
    assert rules is not None
    assert (rules.history_size, rules.subscribe) == (5, SubscribeMode.PUBLIC)
    assert star.rules_for("room") is star.namespaces["room"]
    assert resolve(star, "casino:1")[1] is rules


def test_hashed_api_keys_from_the_file(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"backend-key").hexdigest()
    path = write(
        tmp_path,
        f"""
[[api_keys]]
name = "wallet"
sha256 = "{digest}"
scopes = ["publish"]

[[api_keys]]
name = "ops"
key = "plain-key"
""",
    )
    s = load_settings(path, env={"CROUPIER_API_KEYS": "env-key"})
    wallet, ops, env_key = s.api_keys
    assert (wallet.name, wallet.digest, wallet.scopes) == (
        "wallet",
        sha256("backend-key"),
        frozenset({"publish"}),
    )
    assert (ops.name, ops.digest, ops.scopes) == ("ops", sha256("plain-key"), ALL_SCOPES)
    assert env_key.digest == sha256("env-key")
    assert all(b"plain-key" not in repr(k).encode() for k in s.api_keys), "only digests kept"


def test_public_key_file_switches_to_asymmetric_algorithms(tmp_path: Path) -> None:
    key = tmp_path / "jwt.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n")
    s = load_settings(env={"CROUPIER_JWT_PUBLIC_KEY_FILE": str(key)})
    assert s.jwt_public_key == key.read_text()
    assert s.jwt_algorithms == ("RS256", "ES256")
    assert s.jwt_secret is None
    assert not s.generated_secret


@pytest.mark.parametrize(
    "text",
    [
        '[[api_keys]]\nname = "x"\nkey = "k"\nscopes = ["publish", "root"]\n',
        '[[api_keys]]\nname = "x"\n',
        "[namespaces.room]\nhistory_sise = 5\n",
        '[namespaces.room]\nsubscribe = "everyone"\n',
        "[namespaces.room]\nclient_publish = { x = { size = 5 } }\n",
        "[limits]\nmax_frame_byte = 5\n",
        '[[api_keys]]\nname = "x"\nsha256 = "not hex"\n',
        "this is = not toml [",
    ],
)
def test_bad_config_is_a_bad_request(tmp_path: Path, text: str) -> None:
    with pytest.raises(BadRequest):
        load_settings(write(tmp_path, text), env={})


def test_bad_port_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        load_settings(env={"CROUPIER_PORT": "eighty"})


def test_max_json_depth_from_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(env={}).limits.max_json_depth == 64
    path = tmp_path / "croupier.toml"
    path.write_text("[limits]\nmax_json_depth = 32\n")
    assert load_settings(path, env={}).limits.max_json_depth == 32
    s = load_settings(path, env={"CROUPIER_MAX_JSON_DEPTH": "16"})
    assert s.limits.max_json_depth == 16
    for bad in ("0", "201", "deep"):
        with pytest.raises(BadRequest, match="invalid configuration"):
            load_settings(env={"CROUPIER_MAX_JSON_DEPTH": bad})

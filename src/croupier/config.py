"""Settings: environment variables ``CROUPIER_*`` plus an optional TOML file.

The environment names the parts (database, broker, secrets); the TOML file holds what is
too structured for an environment variable: namespace rules, scoped API keys, limits and
allowed origins. Environment values win over the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .core.jsonsafe import DEFAULT_MAX_DEPTH, HIGHEST_MAX_DEPTH
from .errors import BadRequest

__all__ = [
    "ApiKey",
    "BridgeSettings",
    "Limits",
    "NamespaceRules",
    "PostgresBridgeSettings",
    "PublishRule",
    "PusherApp",
    "PusherChannelRule",
    "RedisBridgeSettings",
    "Settings",
    "SubscribeMode",
    "load_settings",
]

ALL_SCOPES = frozenset({"publish", "read", "admin"})
# Top-level TOML tables that belong to a game service, handed to it as written.
SERVICE_TABLES = ("webhooks",)


class SubscribeMode(StrEnum):
    PUBLIC = "public"  # anyone, even without a token
    TOKEN = "token"  # any valid player token
    OWNER = "owner"  # player:{brand}:{player} must be the token's own
    GRANT = "grant"  # the token's ``channels`` claim must match (``*`` wildcards)


@dataclass(frozen=True, slots=True)
class PublishRule:
    """An event type players may publish in a namespace, with its size and rate limits.

    ``private``: the event reaches only its sender's own connections and backend listeners
    (a request to the backend, such as a rebuy), never the other players; it is never stored.
    """

    max_bytes: int = 1024
    rate: float = 5.0  # tokens per second, per connection
    burst: int = 10
    private: bool = False


@dataclass(frozen=True, slots=True)
class NamespaceRules:
    """What a namespace keeps and who may use it. ``history_size == 0`` means ephemeral only."""

    history_size: int = 1000
    history_ttl: float = 86400.0
    subscribe: SubscribeMode = SubscribeMode.TOKEN
    client_publish: Mapping[str, PublishRule] = field(default_factory=dict)
    presence: bool = True
    join_leave: bool = False

    @property
    def stored(self) -> bool:
        return self.history_size > 0


def _defaults() -> dict[str, NamespaceRules]:
    chat = PublishRule(max_bytes=2048, rate=2.0, burst=5)
    return {
        "tournament": NamespaceRules(
            history_size=2000,
            history_ttl=86400.0,
            # A player asks for a rebuy; the tournaments service answers (rebuy.requested).
            # The other players never see the request.
            client_publish={
                "rebuy.request": PublishRule(max_bytes=256, rate=1.0, burst=3, private=True)
            },
        ),
        "room": NamespaceRules(
            history_size=1000,
            history_ttl=6 * 3600.0,
            client_publish={
                "player.action": PublishRule(max_bytes=4096, rate=10.0, burst=20),
                "chat.message": chat,
            },
            join_leave=True,
        ),
        "match": NamespaceRules(
            history_size=2000,
            history_ttl=86400.0,
            subscribe=SubscribeMode.PUBLIC,
            client_publish={"reaction": PublishRule(max_bytes=512, rate=3.0, burst=6)},
        ),
        # A table's hand events are public, as a poker front end streams them without a
        # token (spectators watch); an operator tightens it with subscribe = "token".
        "table": NamespaceRules(
            history_size=1000,
            history_ttl=86400.0,
            subscribe=SubscribeMode.PUBLIC,
            client_publish={"chat.message": chat},
        ),
        "player": NamespaceRules(
            history_size=500,
            history_ttl=7 * 86400.0,
            subscribe=SubscribeMode.OWNER,
            presence=False,
            # A player queues on their own channel; the matchmaking service answers there.
            client_publish={
                "matchmaking.join": PublishRule(max_bytes=512, rate=1.0, burst=3),
                "matchmaking.cancel": PublishRule(max_bytes=256, rate=1.0, burst=3),
            },
        ),
        "lobby": NamespaceRules(
            history_size=100, history_ttl=3600.0, subscribe=SubscribeMode.PUBLIC
        ),
    }


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A backend key. Only the SHA-256 of the key is kept."""

    name: str
    digest: bytes
    scopes: frozenset[str]

    @classmethod
    def from_plain(cls, name: str, key: str, scopes: frozenset[str] = ALL_SCOPES) -> ApiKey:
        return cls(name, hashlib.sha256(key.encode()).digest(), scopes)


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 64 * 1024
    max_publish_bytes: int = 64 * 1024
    max_batch: int = 1000
    outbox_messages: int = 256
    outbox_bytes: int = 1024 * 1024
    ping_interval: float = 25.0
    max_subscriptions: int = 128
    recover_max: int = 10_000  # most events replayed on one resume; beyond it, reset
    client_rate: float = 50.0  # messages per second a connection may send (all kinds)
    client_burst: int = 100
    abuse_errors: int = 20  # protocol errors in a row before the connection is closed
    shutdown_grace: float = 5.0
    sse_keepalive: float = 15.0
    sse_retry_ms: int = 1000
    token_cache: int = 65_536  # verified player tokens remembered until they expire (0: off)
    admit_rate: float = 0.0  # new connections (streams, WebSockets) a second per node; 0: any
    admit_burst: int = 0  # how many of them at once (0: one second's worth)
    max_json_depth: int = DEFAULT_MAX_DEPTH  # nested arrays/objects in any JSON received


@dataclass(frozen=True, slots=True)
class RedisBridgeSettings:
    """Redis pub/sub messages ``SSE::{brand}::{player}`` → events on ``player:{brand}:{player}``."""

    url: str
    pattern: str = "SSE::*::*"
    idempotency_field: str = "message_id"  # event_data field that dedupes ("" = none)
    lock_key: str = "croupier:bridge:redis"  # one node subscribes at a time ("" = no lock)
    lock_ttl: float = 10.0
    backoff_min: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True, slots=True)
class PostgresBridgeSettings:
    """NOTIFY ``{"eventId","tableId","kind"}`` → the row fetched by ``query`` → ``target``."""

    url: str
    channel: str = "new_event"
    query: str = "SELECT payload FROM events WHERE event_id = $1"
    catchup_query: str = ""  # rows after $1 (an event id), with the notification's fields
    target: str = "table:{tableId}"  # filled from the notification's fields
    id_field: str = "eventId"
    kind_field: str = "kind"
    backoff_min: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Bridges from existing publishers; each is off unless it has a URL."""

    redis: RedisBridgeSettings | None = None
    postgres: PostgresBridgeSettings | None = None


@dataclass(frozen=True, slots=True)
class PusherChannelRule:
    """Pusher channels whose name starts with ``prefix`` live in the Croupier namespace
    ``namespace``: ``private-tournament-42`` with ``prefix = "private-tournament-"`` is
    ``tournament:42``. The prefix includes the Pusher kind (``private-``, ``presence-``), so
    a rule never makes a private channel readable under a public name."""

    prefix: str
    namespace: str


@dataclass(frozen=True, slots=True)
class PusherApp:
    """One Pusher Channels app: the credentials its clients and backends use, and where its
    channels live among Croupier's (see docs/pusher.md).

    A Pusher channel no rule of ``channels`` maps is ``{namespace}:{pusher name}``.
    """

    id: str
    key: str
    secret: str
    namespace: str = "pusher"
    channels: tuple[PusherChannelRule, ...] = ()
    webhooks: tuple[str, ...] = ()  # URLs that get Pusher-format webhooks
    client_events: bool = True  # ``client-*`` events on private and presence channels
    client_event_rate: float = 10.0  # per second per connection (burst: twice that)
    activity_timeout: int = 120  # seconds of silence before a client should ping
    max_presence_members: int = 100  # Pusher's limit of members listed on subscribe

    def namespaces(self) -> tuple[str, ...]:
        """Every Croupier namespace this app's channels live in, its own first."""
        return (self.namespace, *(rule.namespace for rule in self.channels))


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///croupier.db"
    broker_url: str = "local://"
    presence_url: str | None = None  # redis://… for presence across nodes (default: broker's)
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    api_keys: tuple[ApiKey, ...] = ()
    origins: tuple[str, ...] = ()  # empty: any origin
    namespaces: Mapping[str, NamespaceRules] = field(default_factory=_defaults)
    limits: Limits = field(default_factory=Limits)
    trim_interval: float = 60.0
    generated_secret: bool = False  # true when no secret was configured (local use)
    bridges: BridgeSettings = field(default_factory=BridgeSettings)
    # The TOML tables the game services read themselves (e.g. ``[webhooks]``), as written.
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Pusher Channels apps served at /app/{key} and /apps/{app_id}/… (none: the protocol is off).
    pusher_apps: tuple[PusherApp, ...] = ()
    # `croupier serve --demo` only: the well-known key the console is handed (never secret).
    demo_key: str | None = None

    def rules_for(self, namespace: str) -> NamespaceRules | None:
        rules = self.namespaces.get(namespace)
        if rules is None:
            rules = self.namespaces.get("*")
        return rules

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def pusher_app(self, *, id: str | None = None, key: str | None = None) -> PusherApp | None:
        """The Pusher app with this id (or key), if one is configured."""
        for app in self.pusher_apps:
            if (id is not None and app.id == id) or (key is not None and app.key == key):
                return app
        return None


def _publish_rules(raw: Mapping[str, Any]) -> dict[str, PublishRule]:
    return {name: PublishRule(**dict(values)) for name, values in raw.items()}


def _namespace(raw: Mapping[str, Any], base: NamespaceRules | None) -> NamespaceRules:
    values = dict(raw)
    known = set(NamespaceRules.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise BadRequest(f"unknown namespace setting(s): {', '.join(sorted(unknown))}")
    if "subscribe" in values:
        values["subscribe"] = SubscribeMode(values["subscribe"])
    if "client_publish" in values:
        values["client_publish"] = _publish_rules(values["client_publish"])
    return replace(base, **values) if base is not None else NamespaceRules(**values)


def _api_keys_from_file(raw: list[Mapping[str, Any]]) -> list[ApiKey]:
    keys = []
    for entry in raw:
        scopes = frozenset(entry.get("scopes", sorted(ALL_SCOPES)))
        if not scopes <= ALL_SCOPES:
            raise BadRequest(f"unknown scope(s) in api key {entry.get('name')!r}: {sorted(scopes)}")
        name = str(entry.get("name", "key"))
        if "sha256" in entry:
            keys.append(ApiKey(name, bytes.fromhex(entry["sha256"]), scopes))
        elif "key" in entry:
            keys.append(ApiKey.from_plain(name, str(entry["key"]), scopes))
        else:
            raise BadRequest(f"api key {name!r} needs 'sha256' (preferred) or 'key'")
    return keys


def _bridge(cls: Any, raw: Mapping[str, Any], url: str | None, name: str) -> Any:
    values = dict(raw)
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise BadRequest(f"unknown [bridges.{name}] setting(s): {', '.join(sorted(unknown))}")
    if url:
        values["url"] = url
    return cls(**values) if values.get("url") else None


def _bridges(raw: Mapping[str, Any], env: Mapping[str, str]) -> BridgeSettings:
    return BridgeSettings(
        redis=_bridge(
            RedisBridgeSettings, raw.get("redis", {}), env.get("CROUPIER_REDIS_BRIDGE_URL"), "redis"
        ),
        postgres=_bridge(
            PostgresBridgeSettings,
            raw.get("postgres", {}),
            env.get("CROUPIER_PG_BRIDGE_URL"),
            "postgres",
        ),
    )


_PUSHER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PUSHER_NAME = re.compile(r"[-A-Za-z0-9_=@.]{1,100}")
# The namespace a Pusher app's channels get when the file does not configure it: events are
# kept (the point of running Pusher clients on Croupier), native clients need a grant.
# join_leave: presence channels' member_added / member_removed are its join and leave.
PUSHER_NAMESPACE = NamespaceRules(
    history_size=1000,
    history_ttl=86400.0,
    subscribe=SubscribeMode.GRANT,
    presence=True,
    join_leave=True,
)


def _pusher_app(raw: Mapping[str, Any]) -> PusherApp:
    values = dict(raw)
    unknown = set(values) - set(PusherApp.__dataclass_fields__)
    if unknown:
        raise BadRequest(f"unknown [[pusher.apps]] setting(s): {', '.join(sorted(unknown))}")
    for name in ("id", "key", "secret"):
        if not values.get(name):
            raise BadRequest(f"a [[pusher.apps]] entry needs {name!r}")
        values[name] = str(values[name])
    rules = []
    for rule in values.get("channels", ()):
        extra = set(rule) - {"prefix", "namespace"}
        if extra or "prefix" not in rule or "namespace" not in rule:
            raise BadRequest("each [[pusher.apps.channels]] rule is {prefix, namespace}")
        rules.append(PusherChannelRule(str(rule["prefix"]), str(rule["namespace"])))
    values["channels"] = tuple(rules)
    values["webhooks"] = tuple(str(url) for url in values.get("webhooks", ()))
    return PusherApp(**values)


def _check_pusher_app(app: PusherApp) -> None:
    if not _PUSHER_ID.fullmatch(app.id) or not _PUSHER_ID.fullmatch(app.key):
        raise BadRequest(
            f"Pusher app id and key must be 1-64 characters from A-Z a-z 0-9 _ . - "
            f"(app {app.id[:64]!r})"
        )
    seen = set()
    for namespace in app.namespaces():
        if not re.fullmatch(r"[A-Za-z0-9_.@=-]{1,64}", namespace):
            raise BadRequest(f"Pusher app {app.id}: {namespace!r} is not a namespace name")
        if namespace in seen:
            # Two ways to one namespace would make a Croupier channel two Pusher channels,
            # one of them perhaps public.
            raise BadRequest(f"Pusher app {app.id}: namespace {namespace!r} is mapped twice")
        seen.add(namespace)
    for rule in app.channels:
        if not _PUSHER_NAME.fullmatch(rule.prefix):
            raise BadRequest(f"Pusher app {app.id}: {rule.prefix!r} is not a channel prefix")
    if app.client_event_rate <= 0 or app.activity_timeout <= 0:
        raise BadRequest(f"Pusher app {app.id}: rates and timeouts must be positive")


def _pusher_apps(raw: Mapping[str, Any], env: Mapping[str, str]) -> tuple[PusherApp, ...]:
    apps = [_pusher_app(entry) for entry in raw.get("apps", ())]
    unknown = set(raw) - {"apps"}
    if unknown:
        raise BadRequest(f"unknown [pusher] setting(s): {', '.join(sorted(unknown))}")
    names = ("CROUPIER_PUSHER_APP_ID", "CROUPIER_PUSHER_KEY", "CROUPIER_PUSHER_SECRET")
    given = [env.get(name, "").strip() for name in names]
    if any(given):
        if not all(given):
            raise BadRequest(f"set all of {', '.join(names)} (or none)")
        app_id, key, secret = given
        base = next((a for a in apps if a.id == app_id), None)
        app = (
            PusherApp(app_id, key, secret)
            if base is None
            else replace(base, key=key, secret=secret)
        )
        apps = [a for a in apps if a.id != app_id] + [app]
    for app in apps:
        _check_pusher_app(app)
    for attr in ("id", "key"):
        values = [getattr(a, attr) for a in apps]
        if len(set(values)) != len(values):
            raise BadRequest(f"two Pusher apps have the same {attr}")
    mapped = [namespace for app in apps for namespace in app.namespaces()]
    if len(set(mapped)) != len(mapped):
        # A Croupier channel belongs to one app: events published on it reach that app's
        # clients under one Pusher name.
        raise BadRequest("two Pusher apps map channels to the same namespace")
    return tuple(apps)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the TOML file (if any), then the environment on top.

    Raises:
        BadRequest: the file or a variable holds something that cannot be used.
    """
    try:
        return _load(config_file, os.environ if env is None else env)
    except (TypeError, ValueError) as exc:  # a TOMLDecodeError is a ValueError too
        raise BadRequest(f"invalid configuration: {exc}") from exc


def _load(config_file: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Settings:
    config_file = config_file or env.get("CROUPIER_CONFIG") or None
    doc: dict[str, Any] = {}
    if config_file:
        doc = tomllib.loads(Path(config_file).read_text())

    server = doc.get("server", {})
    auth = doc.get("auth", {})
    namespaces = _defaults()
    for name, raw in doc.get("namespaces", {}).items():
        namespaces[name] = _namespace(raw, namespaces.get(name))
    limit_values = dict(doc.get("limits", {}))
    for name, variable, kind in (
        ("admit_rate", "CROUPIER_ADMIT_RATE", float),
        ("admit_burst", "CROUPIER_ADMIT_BURST", int),
    ):
        if env.get(variable):
            limit_values[name] = kind(env[variable])
    limits = Limits(**limit_values)
    if env.get("CROUPIER_MAX_JSON_DEPTH"):
        limits = replace(limits, max_json_depth=int(env["CROUPIER_MAX_JSON_DEPTH"]))
    if not 1 <= limits.max_json_depth <= HIGHEST_MAX_DEPTH:
        raise ValueError(f"limits.max_json_depth must be between 1 and {HIGHEST_MAX_DEPTH}")

    api_keys = _api_keys_from_file(doc.get("api_keys", []))
    for i, key in enumerate(k for k in env.get("CROUPIER_API_KEYS", "").split(",") if k.strip()):
        api_keys.append(ApiKey.from_plain(f"env-{i}", key.strip()))

    public_key = None
    key_file = env.get("CROUPIER_JWT_PUBLIC_KEY_FILE") or auth.get("public_key_file")
    if key_file:
        public_key = Path(key_file).read_text()
    algorithms = tuple(auth.get("algorithms", ("RS256", "ES256") if public_key else ("HS256",)))
    secret = env.get("CROUPIER_JWT_SECRET") or auth.get("jwt_secret")
    generated = False
    if not secret and not public_key:
        secret = secrets.token_urlsafe(32)
        generated = True

    origins_env = env.get("CROUPIER_ORIGINS")
    origins = (
        tuple(o.strip() for o in origins_env.split(",") if o.strip())
        if origins_env is not None
        else tuple(server.get("origins", ()))
    )
    pusher_apps = _pusher_apps(doc.get("pusher", {}), env)
    for app in pusher_apps:
        namespaces.setdefault(app.namespace, PUSHER_NAMESPACE)
        for rule in app.channels:
            if rule.namespace not in namespaces and "*" not in namespaces:
                raise BadRequest(
                    f"Pusher app {app.id} maps {rule.prefix!r} to namespace "
                    f"{rule.namespace!r}, which is not configured"
                )
    return Settings(
        database_url=env.get("CROUPIER_DATABASE_URL")
        or server.get("database_url", "sqlite:///croupier.db"),
        broker_url=env.get("CROUPIER_BROKER_URL") or server.get("broker_url", "local://"),
        presence_url=env.get("CROUPIER_PRESENCE_URL") or server.get("presence_url"),
        host=env.get("CROUPIER_HOST") or server.get("host", "127.0.0.1"),
        port=int(env.get("CROUPIER_PORT") or server.get("port", 8000)),
        jwt_secret=secret,
        jwt_public_key=public_key,
        jwt_algorithms=algorithms,
        api_keys=tuple(api_keys),
        origins=origins,
        namespaces=namespaces,
        limits=limits,
        trim_interval=float(server.get("trim_interval", 60.0)),
        generated_secret=generated,
        bridges=_bridges(doc.get("bridges", {}), env),
        pusher_apps=pusher_apps,
        services={name: doc[name] for name in SERVICE_TABLES if isinstance(doc.get(name), dict)},
    )

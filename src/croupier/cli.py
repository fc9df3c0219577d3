"""The ``croupier`` command: serve, token, publish, tail, bench."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from typing import Any

import click
import orjson

from .config import ApiKey, load_settings

__all__ = ["main"]

DEMO_KEY = "demo-key"
DEMO_SECRET = "demo-secret-change-me-before-production-use"


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.run(coro)
    return uvloop.run(coro)


@click.group()
@click.version_option(package_name="croupier")
def main() -> None:
    """Croupier: a real-time gateway for game and casino platforms."""


@main.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (default 8000).")
@click.option("--demo", is_flag=True, help="Fixed development key and secret, and sample traffic.")
@click.option("--log-level", default="info", show_default=True)
def serve(
    config_file: str | None, host: str | None, port: int | None, demo: bool, log_level: str
) -> None:
    """Run the gateway (HTTP API, WebSocket and SSE on one port)."""
    from .app import serve as run_server
    from .auth import mint_token
    from .gateway import Gateway

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    env = dict(os.environ)
    if demo:
        env.setdefault("CROUPIER_JWT_SECRET", DEMO_SECRET)
        env.setdefault("CROUPIER_API_KEYS", DEMO_KEY)
    settings = load_settings(config_file, env)
    changes: dict[str, Any] = {}
    if host:
        changes["host"] = host
    if port:
        changes["port"] = port
    if demo and env["CROUPIER_API_KEYS"] == DEMO_KEY:
        changes["demo_key"] = DEMO_KEY  # the console of a demo server signs itself in
    dev_key = None
    if not settings.api_keys:
        dev_key = "dev-" + secrets.token_urlsafe(18)
        changes["api_keys"] = (ApiKey.from_plain("dev", dev_key),)
    settings = settings.with_overrides(**changes)
    base = f"http://{settings.host}:{settings.port}"

    def started() -> None:
        lines = [f"croupier listening on {base} (log {settings.database_url})"]
        if dev_key or demo:
            key = dev_key or DEMO_KEY
            lines.append(f"  API key (every scope): {key}")
            lines.append(
                f"  mint a player token: curl -s -H 'Authorization: Bearer {key}' "
                f'-d \'{{"sub":"p1","brand":"1001"}}\' {base}/api/v1/tokens'
            )
        if settings.generated_secret:
            lines.append("  (no CROUPIER_JWT_SECRET set: tokens last until this process stops)")
        if settings.jwt_secret and (settings.generated_secret or demo):
            sample = mint_token(settings.jwt_secret, "p1", brand="1001", name="Player One")
            lines.append(f"  sample token for player p1: {sample}")
            lines.append(f"  ws: {base.replace('http', 'ws')}/ws?token={sample}")
        click.echo("\n".join(lines), err=True)

    async def main_async() -> None:
        tasks: list[asyncio.Task[None]] = []

        def on_started(gateway: Gateway) -> None:
            started()
            if demo:
                from .demo import run_demo_traffic

                # The simulator calls the server like any client, on loopback if it listens
                # on every address.
                wildcard = settings.host in ("0.0.0.0", "::", "")
                local = f"http://127.0.0.1:{settings.port}" if wildcard else base
                api = (local, dev_key or DEMO_KEY)
                traffic = run_demo_traffic(
                    gateway, api=api, announce=lambda line: click.echo(line, err=True)
                )
                tasks.append(asyncio.get_running_loop().create_task(traffic))

        def on_stopping() -> None:
            for task in tasks:  # the demo stops before the clients are told to go
                task.cancel()

        try:
            await run_server(settings, on_started=on_started, on_stopping=on_stopping)
        finally:
            on_stopping()

    _run(main_async())


@main.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False))
def migrate(config_file: str | None) -> None:
    """Bring the PostgreSQL schema up to date (also done on start unless ?migrate=false)."""
    import asyncpg

    from .logs.postgres import PostgresLog
    from .logs.postgres_schema import migrate as run_migrations

    settings = load_settings(config_file)
    if not settings.database_url.startswith(("postgres://", "postgresql://")):
        raise click.UsageError("CROUPIER_DATABASE_URL is not a PostgreSQL URL: nothing to migrate")

    async def go() -> list[int]:
        conn = await asyncpg.connect(PostgresLog.from_url(settings.database_url).dsn)
        try:
            return await run_migrations(conn)
        finally:
            await conn.close()

    applied = _run(go())
    click.echo(f"applied migrations: {applied}" if applied else "the schema is up to date")


@main.command()
@click.argument("sub")
@click.option("--brand", default=None)
@click.option("--name", default=None)
@click.option("--channel", "channels", multiple=True, help="A channel grant (may repeat, '*' ok).")
@click.option("--ttl", default=3600, show_default=True, type=int)
@click.option(
    "--secret",
    envvar="CROUPIER_JWT_SECRET",
    default=None,
    help="HS256 secret to sign with here. Without one the server at --url mints the token.",
)
@click.option("--url", envvar="CROUPIER_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option(
    "--key",
    envvar="CROUPIER_API_KEY",
    default=DEMO_KEY,
    show_default=True,
    help="An admin API key of the server at --url (the default is a demo server's).",
)
def token(
    sub: str,
    brand: str | None,
    name: str | None,
    channels: tuple[str, ...],
    ttl: int,
    secret: str | None,
    url: str,
    key: str,
) -> None:
    """Mint a player JWT: signed here with --secret, or by the server at --url (a
    ``croupier serve --demo`` on this machine needs neither option)."""
    if secret:
        from .auth import mint_token

        click.echo(mint_token(secret, sub, brand=brand, name=name, channels=channels, ttl=ttl))
        return
    from .client import Client, ClientError

    async def go() -> str:
        async with Client(url, api_key=key) as client:
            return await client.mint_token(sub, brand=brand, name=name, channels=channels, ttl=ttl)

    try:
        click.echo(_run(go()))
    except ClientError as exc:
        raise click.ClickException(
            f"{url} did not mint a token ({exc.code}: {exc.message}); give an admin API key "
            "with --key (CROUPIER_API_KEY), or the server's secret with --secret "
            "(CROUPIER_JWT_SECRET)"
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot reach {url} ({exc}); start it (make demo) or give --url, or sign here "
            "with --secret"
        ) from None


@main.command()
@click.argument("channel")
@click.argument("type")
@click.argument("data", default="{}")
@click.option("--url", envvar="CROUPIER_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--key", envvar="CROUPIER_API_KEY", required=True, help="An API key with publish.")
@click.option(
    "--idempotency-key",
    default=None,
    help="Default: a random key, so the command's retries never store the event twice.",
)
@click.option("--ephemeral", is_flag=True)
def publish(
    channel: str,
    type: str,
    data: str,
    url: str,
    key: str,
    idempotency_key: str | None,
    ephemeral: bool,
) -> None:
    """Publish one event (DATA is JSON) and print its offset.

    A publish whose answer is lost (connection dropped, 503) is sent again with the same
    idempotency key, so it is stored once.
    """
    from .client import Client, ClientError

    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"DATA is not JSON: {exc}") from None

    async def go() -> dict[str, Any]:
        async with Client(url, api_key=key) as client:
            return await client.publish(
                channel, type, payload, idempotency_key=idempotency_key, ephemeral=ephemeral
            )

    try:
        result = _run(go())
    except ClientError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    click.echo(orjson.dumps(result).decode())


@main.command()
@click.argument("channels", nargs=-1, required=True)
@click.option("--url", envvar="CROUPIER_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--token", "token_", envvar="CROUPIER_TOKEN", default=None, help="A player token.")
def tail(channels: tuple[str, ...], url: str, token_: str | None) -> None:
    """Print live events of CHANNELS, one JSON per line; resumes across reconnects."""
    from .client import Client, ClientError

    async def go() -> None:
        async with Client(url, token=token_) as client:
            async for event in client.subscribe(*channels):
                sys.stdout.write(orjson.dumps(event).decode() + "\n")
                sys.stdout.flush()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            _run(go())
    except ClientError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None


_URL = click.option(
    "--url", envvar="CROUPIER_URL", default="http://127.0.0.1:8000", show_default=True
)
_ADMIN_KEY = click.option(
    "--key", envvar="CROUPIER_API_KEY", required=True, help="An API key with the admin scope."
)


def _admin(work: Any) -> Any:
    from .client import ClientError

    try:
        return _run(work)
    except ClientError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the server: {exc}") from None


@main.command()
@click.argument("player")
@click.option("--brand", default=None, help="Only the player's connections under this brand.")
@_URL
@_ADMIN_KEY
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
def connections(player: str, brand: str | None, url: str, key: str, as_json: bool) -> None:
    """List PLAYER's connections on every node: transport, node, age, subscriptions with
    their positions, outbox, last activity."""
    import time

    from .client import Client

    async def go() -> dict[str, Any]:
        async with Client(url, api_key=key) as client:
            return await client.connections(player, brand=brand)

    found = _admin(go())
    if as_json:
        click.echo(orjson.dumps(found).decode())
        return
    now = time.time() * 1000
    for c in found["connections"]:
        subs = ", ".join(
            f"{s['channel']}@{s['position']['offset']}" if s.get("position") else s["channel"]
            for s in c["subscriptions"]
        )
        click.echo(
            f"{c['id']}  {c['node']}  {c['transport']}/{c['protocol']}  "
            f"{c.get('brand') or '-'}/{c['player']}  age {int((now - c['created']) / 1000)}s  "
            f"idle {int((now - c['last_activity']) / 1000)}s  outbox {c['outbox']} B  [{subs}]"
        )
    nodes = len(found["nodes"])
    click.echo(f"{len(found['connections'])} connections on {nodes} nodes that answered", err=True)


@main.command()
@click.argument("player", required=False)
@click.option("--brand", default=None, help="Only the player's connections under this brand.")
@click.option("--client", "client_id", default=None, help="One connection, by its id.")
@click.option("--reason", default="operator", show_default=True, help="What the client is told.")
@click.option("--no-reconnect", is_flag=True, help="Tell the client not to connect again.")
@_URL
@_ADMIN_KEY
def disconnect(
    player: str | None,
    brand: str | None,
    client_id: str | None,
    reason: str,
    no_reconnect: bool,
    url: str,
    key: str,
) -> None:
    """Disconnect PLAYER's connections (or --client ID) on every node, with a reason."""
    from .client import Client

    if not player and not client_id:
        raise click.UsageError("give a PLAYER or --client ID")

    async def go() -> dict[str, Any]:
        async with Client(url, api_key=key) as client:
            return await client.disconnect(
                player, brand=brand, client=client_id, reason=reason, reconnect=not no_reconnect
            )

    done = _admin(go())
    click.echo(f"disconnected {done['disconnected']} (nodes: {', '.join(done['nodes'])})")


@main.command(name="log")
@click.option("--kind", "kinds", multiple=True, help="Only records of this kind (may repeat).")
@click.option("--channel", "channel_prefix", default=None, help="Channels starting with this.")
@click.option("--player", default=None)
@click.option("--node", default=None)
@_URL
@_ADMIN_KEY
def live_log(
    kinds: tuple[str, ...],
    channel_prefix: str | None,
    player: str | None,
    node: str | None,
    url: str,
    key: str,
) -> None:
    """Print the live log of every node, one JSON record per line (sampled by the server)."""
    from .client import Client

    async def go() -> None:
        async with Client(url, api_key=key) as client:
            filters = {"kind": list(kinds) or None, "channel_prefix": channel_prefix}
            async for record in client.live_log(**filters, player=player, node=node):
                sys.stdout.write(orjson.dumps(record).decode() + "\n")
                sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        _admin(go())


def _register_bench() -> None:
    from .bench import bench

    main.add_command(bench)


_register_bench()

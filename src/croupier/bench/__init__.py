"""``croupier bench``: the project's own benchmarks, against a real server process.

Each command starts ``croupier serve`` in a child process on a throwaway SQLite file (with
``--pin``, on core 0 while the client runs on core 1), drives it from this process, and
prints a table (or JSON with ``--json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import resource
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import click
import orjson

__all__ = ["bench"]

# Targets from the project's issue (µs, ms, KB, events/s), with the direction that passes.
TARGETS: dict[str, tuple[str, float]] = {
    "server_cpu_us_per_delivery": ("<=", 3.0),
    "latency_p99_ms": ("<=", 25.0),
    "rss_per_connection_kb": ("<=", 10.0),
    "lost": ("<=", 0),
    "duplicates": ("<=", 0),
}
PUBLISH_TARGETS = {"single": 8_000.0, "batch": 100_000.0}
# On PostgreSQL (issue 4), and what a second node may add to delivery latency.
PUBLISH_TARGETS_POSTGRES = {"single": 5_000.0, "batch": 20_000.0}
TARGETS["added_p99_ms"] = ("<=", 10.0)
TARGETS["vs_ws_cpu"] = ("<=", 1.10)  # Centrifugo's protocol within 10 % of the native one
# Issue 6: notification created -> delivered, 1,000/s over 10,000 connected players.
NOTIFICATION_TARGETS: dict[str, tuple[str, float]] = {
    "latency_p99_ms": ("<=", 100.0),
    "lost": ("<=", 0),
    "duplicates": ("<=", 0),
    "failed": ("<=", 0),
    "misrouted": ("<=", 0),
}
# Live sports (issue 7): 10,000 viewers, 1,000 reactions/s, a score update a second.
TARGETS["score_p99_ms"] = ("<=", 50.0)
TARGETS["summary_p99_ms"] = ("<=", 1500.0)
# The leaderboard (issue 5): score updates per second on a 100,000-entry board, one core.
TARGETS["updates_per_s"] = (">=", 10_000.0)
# Matchmaking (issue 8): one matching pass over 10,000 waiting tickets.
TARGETS["pass_ms_p50"] = ("<=", 50.0)
TARGETS["pass_ms_max"] = ("<=", 50.0)
# Issue 16: reconnect storms and the cost of a connection, beside the Node `ws` reference.
STORM_TARGETS: dict[str, tuple[str, float]] = {
    "all_back_s": ("<=", 2.0),
    "failed": ("<=", 0),
    "duplicates": ("<=", 0),
    "gaps": ("<=", 0),
    "not_recovered": ("<=", 0),
}
CONNECT_TARGETS: dict[str, tuple[str, float]] = {"cpu_vs_node": ("<=", 0.6), "failed": ("<=", 0)}
# Issue 17: bursts of events (``bench fanout --burst``) beside the Node `ws` reference.
BURST_TARGETS: dict[str, tuple[str, float]] = {
    "cpu_vs_node": ("<=", 0.25),
    "latency_p99_ms": ("<=", 100.0),
    "lost": ("<=", 0),
    "duplicates": ("<=", 0),
}


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        wanted = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.run(main())
    return uvloop.run(main())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(key: str, value: Any, result: dict[str, Any]) -> str:
    target = TARGETS.get(key)
    if result.get("bench") == "notifications":
        target = NOTIFICATION_TARGETS.get(key)
    elif result.get("bench") == "storm":
        target = STORM_TARGETS.get(key)
    elif result.get("bench") == "connect":
        if result.get("server") != "croupier":
            return ""  # a reference (Node, the Python floor): the targets are Croupier's
        target = CONNECT_TARGETS.get(key)
    elif result.get("transport") == "node-ws":
        return ""  # the reference: no targets of its own
    elif result.get("bench") == "fanout" and result.get("burst", 1) > 1:
        target = BURST_TARGETS.get(key)
    if key == "events_per_s":
        table = PUBLISH_TARGETS_POSTGRES if result.get("log") == "postgres" else PUBLISH_TARGETS
        target = (">=", table[result["mode"]])
    if target is None or not isinstance(value, int | float):
        return ""
    op, bound = target
    ok = value <= bound if op == "<=" else value >= bound
    return f"{op} {_fmt(bound)}  {'ok' if ok else 'MISSED'}"


def _emit(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(results if len(results) > 1 else results[0]).decode())
        return
    for result in results:
        rows = [(k, _fmt(v), _verdict(k, v, result)) for k, v in result.items()]
        width = max(len(k) for k, _, _ in rows)
        vwidth = max(len(v) for _, v, _ in rows)
        click.echo(f"{'metric':<{width}}  {'value':>{vwidth}}  target")
        click.echo(f"{'-' * width}  {'-' * vwidth}  {'-' * 14}")
        for key, value, verdict in rows:
            click.echo(f"{key:<{width}}  {value:>{vwidth}}  {verdict}".rstrip())
        click.echo("")


def _cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores) for ``--pin``: the first two cores this process may use."""
    if not pin:
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise click.UsageError("--pin needs at least two cores")
    return {cores[0]}, {cores[1]}


def _scratch_env(database_url: str | None) -> contextlib.AbstractContextManager[dict[str, str]]:
    """The server's environment: a throwaway PostgreSQL database when one is asked for."""

    @contextlib.contextmanager
    def scratch() -> Iterator[dict[str, str]]:
        if not database_url:
            yield {}
            return
        from .databases import scratch_database

        loop = asyncio.new_event_loop()
        manager = scratch_database(database_url)
        try:
            url = loop.run_until_complete(manager.__aenter__())
            yield {"CROUPIER_DATABASE_URL": url}
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
            loop.close()

    return scratch()


def _serve_and_run(
    pin: bool,
    config: str | None,
    body: Callable[[Any], Coroutine[Any, Any, Any]],
    database_url: str | None = None,
) -> Any:
    from .server import BenchServer

    server_cpus, client_cpus = _cpus(pin)
    with (
        _scratch_env(database_url) as env,
        BenchServer(cpus=server_cpus, config=config, env=env) as server,
    ):
        if client_cpus is not None:
            os.sched_setaffinity(0, client_cpus)
        result = _run(lambda: body(server))
        if database_url:
            for one in result if isinstance(result, list) else [result]:
                one["log"] = "postgres"
    # Other work on the host skews every figure: say how busy it was.
    load = round(os.getloadavg()[0], 2)
    for one in result if isinstance(result, list) else [result]:
        one["host_load_1m"] = load
    return result


pin_option = click.option("--pin", is_flag=True, help="Server on one core, this client on another.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")
transport_option = click.option(
    "--transport", type=click.Choice(["ws", "sse", "centrifugo"]), default="ws", show_default=True
)


@click.group()
def bench() -> None:
    """Measure fan-out, idle memory and publish throughput against a real server process."""


@bench.command()
@click.option("--subscribers", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=100.0, show_default=True, help="Events published per second.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds measured.")
@click.option(
    "--transport",
    "transports",
    type=click.Choice(["ws", "sse", "pusher", "centrifugo"]),
    multiple=True,
    default=("ws",),
    show_default=True,
    help="Repeat to compare protocols in one run, on one server: --transport ws "
    "--transport pusher. centrifugo (/connection/websocket) brings ws along as its baseline.",
)
@click.option(
    "--watch-log",
    is_flag=True,
    help="Run each transport twice on one server: with no console watching the live log, "
    "then with one (GET /api/v1/admin/log open), to compare CPU per delivery.",
)
@click.option(
    "--burst",
    default=None,
    type=click.IntRange(1, 1000),
    help="Publish bursts of N events, each burst one POST /api/v1/batch (RATE bursts/s); "
    "implies --node.  [default: 1, one POST /api/v1/publish per event]",
)
@click.option(
    "--node/--no-node",
    default=None,
    help="Then run the bare Node `ws` reference with the same subscribers, sending each "
    "burst's messages back to back.  [default: on with --burst]",
)
@pin_option
@json_option
def fanout(
    subscribers: int,
    rate: float,
    duration: float,
    transports: tuple[str, ...],
    watch_log: bool,
    burst: int | None,
    node: bool | None,
    pin: bool,
    as_json: bool,
) -> None:
    """N subscribers on one channel, events published over HTTP at RATE.

    Reports server CPU µs per delivery, deliveries/s, publish→receive latency and lost or
    duplicated events (which must be 0). ``pusher`` subscribes over the Pusher protocol
    (``/app/{key}``) to the same kind of stored channel as ``ws``. ``centrifugo`` subscribes
    over Centrifugo's protocol (``/connection/websocket``), with the native ``ws`` run first
    against the same server, so the two compare in one run (``vs_ws_cpu``: the ratio of
    their CPU per delivery).
    """
    from .crowd import PUSHER_CONFIG
    from .fanout import run_fanout, run_fanout_node
    from .node import NodeReference

    _raise_fd_limit(subscribers + 256)
    with_node = burst is not None if node is None else node
    burst = burst or 1
    server_cpus, _ = _cpus(pin)  # before the run pins this process to the client core

    if "centrifugo" in transports and "ws" not in transports:
        transports = ("ws", *transports)

    async def each(server: Any) -> list[dict[str, Any]]:
        results = [
            await run_fanout(
                server,
                transport=transport,
                subscribers=subscribers,
                rate=rate,
                duration=duration,
                watch_log=watched,
                burst=burst,
            )
            for transport in transports
            for watched in ((False, True) if watch_log else (False,))
        ]
        base = next((r for r in results if r["transport"] == "ws"), None)
        for result in results:
            if result["transport"] == "centrifugo" and base and base["server_cpu_us_per_delivery"]:
                result["vs_ws_cpu"] = (
                    result["server_cpu_us_per_delivery"] / base["server_cpu_us_per_delivery"]
                )
        return results

    results = _serve_and_run(pin, PUSHER_CONFIG if "pusher" in transports else None, each)
    if with_node:
        with NodeReference(cpus=server_cpus) as reference:
            theirs = _run(
                lambda: run_fanout_node(
                    reference, subscribers=subscribers, rate=rate, duration=duration, burst=burst
                )
            )
        theirs["host_load_1m"] = round(os.getloadavg()[0], 2)
        for ours in results:
            ours["cpu_vs_node"] = _ratio(ours, theirs, "server_cpu_us_per_delivery")
        results.append(theirs)
    _emit(results, as_json)


@bench.command()
@click.option("--connections", default=10_000, show_default=True, type=click.IntRange(1))
@transport_option
@pin_option
@json_option
def idle(connections: int, transport: str, pin: bool, as_json: bool) -> None:
    """Server RSS per idle authenticated connection holding one subscription."""
    from .fanout import run_idle

    _raise_fd_limit(connections + 256)
    result = _serve_and_run(
        pin,
        None,
        lambda server: run_idle(server, transport=transport, connections=connections),
    )
    _emit([result], as_json)


@bench.command()
@click.option("--mode", type=click.Choice(["single", "batch", "both"]), default="both")
@click.option("--connections", default=64, show_default=True, type=click.IntRange(1))
@click.option("--pipeline", default=2, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
@click.option("--duration", default=5.0, show_default=True, help="Seconds measured per mode.")
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL server to publish into (a scratch database is made and dropped).",
)
@pin_option
@json_option
def publish(
    mode: str,
    connections: int,
    pipeline: int,
    batch_size: int,
    duration: float,
    database_url: str | None,
    pin: bool,
    as_json: bool,
) -> None:
    """Stored events per second over HTTP: one event per request, and batches."""
    from .publish import run_publish

    modes = ("single", "batch") if mode == "both" else (mode,)
    results = _serve_and_run(
        pin,
        None,
        lambda server: run_publish(
            server,
            modes=modes,
            connections=connections,
            depth=pipeline,
            batch=batch_size,
            duration=duration,
        ),
        database_url,
    )
    _emit(results, as_json)


@bench.command()
@click.option("--subscribers", default=1000, show_default=True, type=click.IntRange(2))
@click.option("--rate", default=100.0, show_default=True, help="Events published per second.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds measured.")
@click.option(
    "--database-url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="The PostgreSQL server both nodes share (a scratch database is made and dropped).",
)
@click.option(
    "--broker-url",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="redis://… , or 'postgres' for the PostgreSQL broker on the same database.",
)
@json_option
def nodes(
    subscribers: int,
    rate: float,
    duration: float,
    database_url: str,
    broker_url: str,
    as_json: bool,
) -> None:
    """The delivery latency a second node adds: publish on A, subscribers on A and B."""
    from .nodes import run_nodes
    from .server import BenchServer

    _raise_fd_limit(subscribers + 256)
    with _scratch_env(database_url) as env:
        env = {
            **env,
            "CROUPIER_BROKER_URL": (
                env["CROUPIER_DATABASE_URL"] if broker_url == "postgres" else broker_url
            ),
        }
        with BenchServer(env=env) as node_a, BenchServer(env=env) as node_b:
            result = _run(
                lambda: run_nodes(
                    node_a, node_b, subscribers=subscribers, rate=rate, duration=duration
                )
            )
    result["broker"] = "postgres" if broker_url == "postgres" else "redis"
    result["host_load_1m"] = round(os.getloadavg()[0], 2)
    _emit([result], as_json)


@bench.command()
@click.option("--entries", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--duration", default=5.0, show_default=True, help="Seconds of updates measured.")
@click.option("--concurrency", default=256, show_default=True, type=click.IntRange(1))
@click.option("--queries", default=20_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL server for the board (a scratch database is made and dropped); "
    "default: a throwaway SQLite file.",
)
@click.option(
    "--cores", default=1, show_default=True, type=click.IntRange(0), help="0: do not pin."
)
@json_option
def leaderboard(
    entries: int,
    duration: float,
    concurrency: int,
    queries: int,
    database_url: str | None,
    cores: int,
    as_json: bool,
) -> None:
    """Score updates per second on a board of ENTRIES players with the 1 Hz push running,
    and rank-query latency: in-process, through the Leaderboards service API (not HTTP)."""
    from .leaderboard import run_leaderboard

    if cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
    with _scratch_env(database_url) as env:
        result = _run(
            lambda: run_leaderboard(
                entries=entries,
                duration=duration,
                concurrency=concurrency,
                queries=queries,
                database_url=env.get("CROUPIER_DATABASE_URL"),
            )
        )
    result["host_load_1m"] = round(os.getloadavg()[0], 2)
    _emit([result], as_json)


@bench.command()
@click.option("--players", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=1000.0, show_default=True, help="Notifications per second.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds measured.")
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL server to store into (a scratch database is made and dropped).",
)
@pin_option
@json_option
def notifications(
    players: int, rate: float, duration: float, database_url: str | None, pin: bool, as_json: bool
) -> None:
    """Notification created over HTTP -> delivered on the casino player stream.

    One stream per player; notifications spread over the players at RATE. Reports latency
    percentiles, server CPU per notification, and lost, duplicated or misrouted ones.
    """
    from .notifications import run_notifications

    _raise_fd_limit(players + 256)
    result = _serve_and_run(
        pin,
        None,
        lambda server: run_notifications(server, players=players, rate=rate, duration=duration),
        database_url,
    )
    _emit([result], as_json)


@bench.command()
@click.option("--tickets", default=10_000, show_default=True, type=click.IntRange(2))
@click.option("--passes", default=20, show_default=True, type=click.IntRange(1))
@click.option("--rooms", default=20, show_default=True, type=click.IntRange(1))
@click.option(
    "--actions",
    default=200,
    show_default=True,
    type=click.IntRange(1, 999),
    help="Actions played in each room.",
)
@pin_option
@json_option
def matchmaking(
    tickets: int, passes: int, rooms: int, actions: int, pin: bool, as_json: bool
) -> None:
    """One matching pass over TICKETS waiting tickets (in process), and the room action
    round trip (player.action sent -> room.state received) over real WebSockets."""
    from .matchmaking import run_match_pass, run_room_actions, run_service_pass

    _, client_cpus = _cpus(pin)
    before = os.sched_getaffinity(0)
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)
    first = run_match_pass(tickets, passes)
    service = _run(lambda: run_service_pass(tickets, max(1, min(passes, 5))))
    os.sched_setaffinity(0, before)
    # Players' action rate limit (10/s by default) is raised: this measures the round trip.
    config = (
        '[namespaces.room.client_publish."player.action"]\n'
        "max_bytes = 4096\nrate = 10000\nburst = 10000\n"
    )
    second = _serve_and_run(pin, config, lambda server: run_room_actions(server, rooms, actions))
    first["host_load_1m"] = service["host_load_1m"] = second["host_load_1m"]
    _emit([first, service, second], as_json)


@bench.command()
@click.option("--viewers", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--reactions", default=1000.0, show_default=True, help="Reactions per second.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds measured.")
@pin_option
@json_option
def sports(viewers: int, reactions: float, duration: float, pin: bool, as_json: bool) -> None:
    """VIEWERS on one match, REACTIONS/s from up to 500 of them, a cricket ball a second.

    Reports server CPU, score delivery latency (posted -> every viewer), summary delivery
    latency (window start -> every viewer, the 1 s window included), and whether the
    summaries add up to the reactions accepted.
    """
    from .sports import SERVER_CONFIG, run_sports

    _raise_fd_limit(viewers + 256)
    result = _serve_and_run(
        pin,
        SERVER_CONFIG,
        lambda server: run_sports(server, viewers=viewers, reactions=reactions, duration=duration),
    )
    _emit([result], as_json)


@bench.command()
@click.option("--clients", default=10_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--missed", default=10, show_default=True, type=click.IntRange(0), help="Events per channel."
)
@click.option("--channels", default=1, show_default=True, type=click.IntRange(1))
@click.option(
    "--processes",
    default=0,
    type=click.IntRange(0),
    help="Client processes (default: one per 9,000 clients).",
)
@click.option(
    "--admit-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="The server's limits.admit_rate: new connections a second (0: no limit).",
)
@click.option(
    "--resume",
    type=click.Choice(["message", "url"]),
    default="message",
    show_default=True,
    help="Resume with a subscribe message after connecting, or in the connect URL "
    "(/ws?token=…&channel=…&since=…).",
)
@click.option("--node/--no-node", default=True, show_default=True, help="Run the Node reference.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds a storm may take.")
@pin_option
@json_option
def storm(
    clients: int,
    missed: int,
    channels: int,
    processes: int,
    admit_rate: float,
    resume: str,
    node: bool,
    timeout: float,
    pin: bool,
    as_json: bool,
) -> None:
    """CLIENTS subscribed with positions are cut off, MISSED events are published on their
    channels, and all reconnect at once with `since`.

    Reports the time until every client is back and recovered exactly once, server CPU per
    reconnection and failures; then the same storm against a bare Node `ws` server (greeting
    each client with MISSED messages), on the same cores.
    """
    from .node import NodeReference
    from .server import BenchServer
    from .storm import run_storm, run_storm_node

    _raise_fd_limit(clients + 512)
    server_cpus, client_cpus = _cpus(pin)
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)
    env = {"CROUPIER_ADMIT_RATE": str(admit_rate)} if admit_rate else {}
    with BenchServer(cpus=server_cpus, env=env) as server:
        ours = _run(
            lambda: run_storm(
                server,
                clients=clients,
                missed=missed,
                channels=channels,
                processes=processes,
                timeout=timeout,
                in_url=resume == "url",
            )
        )
    ours["admit_rate"] = admit_rate
    results = [ours]
    if node:
        with NodeReference(cpus=server_cpus) as reference:
            theirs = _run(
                lambda: run_storm_node(
                    reference, clients=clients, missed=missed, processes=processes, timeout=timeout
                )
            )
        results.append(theirs)
        ours["cpu_vs_node"] = _ratio(ours, theirs, "server_cpu_us_per_client")
        ours["time_vs_node"] = _ratio(ours, theirs, "all_back_s")
    for result in results:
        result["host_load_1m"] = round(os.getloadavg()[0], 2)
    _emit(results, as_json)


def _ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> float:
    return float(ours[key] / theirs[key]) if theirs[key] else float("nan")


@bench.command()
@click.option("--clients", default=2000, show_default=True, type=click.IntRange(1))
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(
        ["ws-bare", "ws-token", "ws-token-subscribe", "ws-token-url", "sse-token-channel"]
    ),
    help="Croupier connections to measure (default: all).",
)
@click.option(
    "--concurrency",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Connecting at once.",
)
@click.option("--processes", default=0, type=click.IntRange(0), help="Client processes.")
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Rounds: Node and every kind once per round, interleaved; medians are reported.",
)
@click.option(
    "--before",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The src directory of another Croupier (a checkout of an earlier commit): it is "
    "measured too, as croupier-before, each kind beside this one in the same rounds.",
)
@pin_option
@json_option
def connect(
    clients: int,
    kinds: tuple[str, ...],
    concurrency: int,
    processes: int,
    repeat: int,
    before: Path | None,
    pin: bool,
    as_json: bool,
) -> None:
    """Server CPU per new connection: a bare Node `ws` connection, the Python floor (a bare
    uvloop upgrade, and one that also checks the token's HMAC and answers `subscribed` for the
    channel in the URL), then Croupier's `/ws` bare, with a token, with a token and one
    subscribe message, with a token and the channel in the connect URL, and `/sse` with a
    token and a channel.

    Each client has its own token, never seen before by the server. With --repeat N the
    servers stay up and each round measures Node, the floor and then every kind, so a drift of
    the host touches them alike; each figure is the median of its N runs (`runs_us` lists
    them) and `cpu_vs_node` compares medians. With --before, another Croupier's figures for
    each kind come just before this one's, from the same rounds.
    """
    if before is not None and not (before / "croupier" / "__init__.py").is_file():
        raise click.BadParameter(f"{before} holds no croupier package", param_hint="--before")
    from .floor import FloorReference
    from .node import NodeReference
    from .server import SECRET, BenchServer
    from .storm import run_connect

    chosen = kinds or (
        "ws-bare",
        "ws-token",
        "ws-token-subscribe",
        "ws-token-url",
        "sse-token-channel",
    )
    _raise_fd_limit(clients + 512)
    server_cpus, client_cpus = _cpus(pin)
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)
    options = {"clients": clients, "processes": processes, "concurrency": concurrency}
    references = ("node-bare", "floor-bare", "floor-token-url")
    earlier = None
    if before is not None:
        earlier = BenchServer(cpus=server_cpus, env={"PYTHONPATH": str(before.resolve())})
    # (label, kind): each Croupier kind, after the same kind on the earlier server if any.
    measured = [(kind, kind) for kind in references]
    for kind in chosen:
        if earlier is not None:
            measured.append((f"{kind} before", kind))
        measured.append((kind, kind))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in measured}
    with (
        NodeReference(cpus=server_cpus) as reference,
        FloorReference(SECRET, cpus=server_cpus) as floor,
        BenchServer(cpus=server_cpus) as server,
        earlier if earlier is not None else contextlib.nullcontext(),
    ):
        if earlier is not None:
            earlier.name = "croupier-before"
        targets = {"node-bare": reference, "floor-bare": floor, "floor-token-url": floor}
        for _ in range(repeat):
            for label, kind in measured:
                target = earlier if label.endswith(" before") else targets.get(kind, server)
                assert target is not None
                runs[label].append(
                    _run(functools.partial(run_connect, target, kind, timeout=120, **options))
                )
    results = [_median_run(found) for found in runs.values()]
    node = results[0]
    for result in results[1:]:
        result["cpu_vs_node"] = _ratio(result, node, "server_cpu_us_per_client")
    for result in results:
        result["host_load_1m"] = round(os.getloadavg()[0], 2)
    _emit(results, as_json)


def _median_run(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose server CPU per client is the median of ``found`` (the lower middle one
    of an even count), with every run's figure in ``runs_us`` and failures summed."""
    ordered = sorted(found, key=lambda run: run["server_cpu_us_per_client"])
    result = dict(ordered[(len(ordered) - 1) // 2])
    if len(found) > 1:
        result["runs_us"] = " ".join(f"{run['server_cpu_us_per_client']:.0f}" for run in found)
        result["failed"] = sum(run["failed"] for run in found)
    return result

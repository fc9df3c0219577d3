"""``croupier bench`` end to end with tiny parameters: the fields are there and nothing is lost.

No timing assertions: the figures depend on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from .support import timeout

pytestmark = pytest.mark.e2e


def ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> Any:
    """What ``cpu_vs_node`` must be: ours over Node's; null when Node's CPU did not register
    (the ratio is NaN, which JSON writes as null)."""
    if not theirs[key]:
        return None
    return pytest.approx(ours[key] / theirs[key])


def bench(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "croupier", "bench", *args, "--json"],
        capture_output=True,
        timeout=timeout(120),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return orjson.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_fanout(transport: str) -> None:
    result = bench(
        "fanout", "--subscribers", "20", "--rate", "50", "--duration", "1",
        "--transport", transport,
    )  # fmt: skip
    for field in (
        "server_cpu_us_per_delivery",
        "deliveries_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
    ):
        assert result[field] >= 0
    assert result["deliveries"] == 20 * 50
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert result["disconnects"] == 0


def test_fanout_bursts_beside_node() -> None:
    ours, node = bench(
        "fanout", "--subscribers", "20", "--rate", "10", "--duration", "1", "--burst", "5",
    )  # fmt: skip
    assert (ours["transport"], node["transport"]) == ("ws", "node-ws")
    for result in (ours, node):
        assert result["burst"] == 5
        assert result["deliveries"] == 20 * 10 * 5
        assert result["lost"] == result["duplicates"] == result["disconnects"] == 0
    assert ours["cpu_vs_node"] >= 0
    assert ours["cpu_vs_node"] == ratio(ours, node, "server_cpu_us_per_delivery")


def test_idle() -> None:
    result = bench("idle", "--connections", "20")
    assert result["connections"] == 20
    assert result["failed"] == 0
    assert "rss_per_connection_kb" in result


def test_publish() -> None:
    results = bench("publish", "--connections", "4", "--batch-size", "50", "--duration", "0.5")
    assert [r["mode"] for r in results] == ["single", "batch"]
    for result in results:
        assert result["failed"] == 0
        assert result["stored"] == result["events"] > 0
        assert result["events_per_s"] > 0


def test_storm() -> None:
    ours, node = bench("storm", "--clients", "30", "--missed", "3", "--channels", "2")
    assert (ours["server"], node["server"]) == ("croupier", "node-ws")
    for result in (ours, node):
        assert result["back"] == 30
        assert result["failed"] == 0
        assert result["all_back_s"] > 0
        assert result["server_cpu_us_per_client"] >= 0
    assert ours["duplicates"] == ours["gaps"] == ours["not_recovered"] == 0
    assert "cpu_vs_node" in ours
    assert ours["cpu_vs_node"] == ratio(ours, node, "server_cpu_us_per_client")


def test_storm_resuming_in_the_connect_url() -> None:
    args = ("--clients", "30", "--missed", "3", "--channels", "2", "--resume", "url")
    ours = bench("storm", *args, "--no-node")
    assert ours["resume"] == "url"
    assert ours["back"] == 30
    assert ours["failed"] == 0
    assert ours["duplicates"] == ours["gaps"] == ours["not_recovered"] == 0


def test_connect() -> None:
    results = bench("connect", "--clients", "20")
    assert [(r["server"], r["kind"]) for r in results] == [
        ("node-ws", "node-bare"),
        ("python-floor", "floor-bare"),
        ("python-floor", "floor-token-url"),
        ("croupier", "ws-bare"),
        ("croupier", "ws-token"),
        ("croupier", "ws-token-subscribe"),
        ("croupier", "ws-token-url"),
        ("croupier", "sse-token-channel"),
    ]
    for result in results:
        assert result["back"] == 20
        assert result["failed"] == 0


def test_connect_repeated_reports_each_kinds_median_run() -> None:
    node, floor, floor_url, ours = bench(
        "connect", "--clients", "10", "--kind", "ws-token", "--repeat", "3"
    )
    assert [r["kind"] for r in (node, floor, floor_url, ours)] == [
        "node-bare",
        "floor-bare",
        "floor-token-url",
        "ws-token",
    ]
    for result in (node, floor, floor_url, ours):
        runs = [float(x) for x in result["runs_us"].split()]
        assert len(runs) == 3
        assert result["server_cpu_us_per_client"] == pytest.approx(sorted(runs)[1], abs=0.5)
        assert result["failed"] == 0
    assert ours["cpu_vs_node"] == ratio(ours, node, "server_cpu_us_per_client")


@pytest.mark.parametrize("kind", ["bare", "token", "url", "sse"])
def test_connect_path_opens_and_cleans_up_each_kind(kind: str) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "connect_path.py"
    done = subprocess.run(
        [sys.executable, str(script), kind, "200"],
        capture_output=True,
        timeout=timeout(120),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert re.fullmatch(
        rf"{kind}: \d+\.\d µs CPU per connection \(open and close\)\n", done.stdout.decode()
    )


def test_connect_prints_its_target_verdicts_for_croupier_rows_only() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "croupier", "bench", "connect", "--clients", "10"],
        capture_output=True,
        timeout=timeout(120),
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    tables = done.stdout.decode().strip().split("\n\n")
    verdicts = {}
    for table in tables:
        rows = dict(line.split(None, 1) for line in table.splitlines()[2:])
        verdicts[(rows["server"].strip(), rows["kind"].strip())] = "<= 0.60" in rows.get(
            "cpu_vs_node", ""
        )
    assert verdicts[("croupier", "ws-token-url")]
    assert not verdicts[("python-floor", "floor-token-url")]
    assert not verdicts[("node-ws", "node-bare")]


def test_connect_measures_an_earlier_croupier_beside_this_one() -> None:
    src = Path(__file__).resolve().parents[1] / "src"
    results = bench("connect", "--clients", "10", "--kind", "ws-token-url", "--before", str(src))
    assert [(r["server"], r["kind"]) for r in results][3:] == [
        ("croupier-before", "ws-token-url"),
        ("croupier", "ws-token-url"),
    ]
    for result in results:
        assert result["back"] == 10
        assert result["failed"] == 0


def test_connect_refuses_a_before_that_is_no_croupier(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "croupier", "bench", "connect", "--before", str(tmp_path)],
        capture_output=True,
        timeout=timeout(60),
        check=False,
    )
    assert done.returncode == 2
    assert b"holds no croupier package" in done.stderr

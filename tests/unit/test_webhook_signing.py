"""Webhook rules without I/O: signatures, the retry schedule, event-type patterns."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from croupier.config import load_settings
from croupier.services.webhooks.delivery import WebhookSettings
from croupier.services.webhooks.signing import TypeMatcher, backoff_delay, new_secret, sign, verify

SECRET = "whsec_test-secret-0123456789"
BODY = b'{"id":"dl_1","type":"notification","data":{"a":1}}'


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1735732800." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1735732800, BODY) == f"v1={expected}"


def test_a_signature_verifies_within_the_tolerance() -> None:
    header = sign(SECRET, 1000, BODY)
    assert verify(SECRET, "1000", BODY, header, now=1000)
    assert verify(SECRET, "1000", BODY, header, now=1299)
    assert not verify(SECRET, "1000", BODY, header, now=1301)  # too old: a replay


@pytest.mark.parametrize(
    ("secret", "timestamp", "body"),
    [
        ("whsec_another-secret-000000", "1000", BODY),
        (SECRET, "1001", BODY),
        (SECRET, "1000", BODY.replace(b"1", b"2")),
        (SECRET, "1000", BODY + b" "),
    ],
    ids=["other-secret", "other-timestamp", "tampered-body", "extra-byte"],
)
def test_anything_changed_fails(secret: str, timestamp: str, body: bytes) -> None:
    header = sign(SECRET, 1000, BODY)
    assert not verify(secret, timestamp, body, header, now=1000)


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "1e3", "１０００", "9" * 40])
def test_malformed_timestamps_fail(timestamp: str) -> None:
    assert not verify(SECRET, timestamp, BODY, sign(SECRET, 1000, BODY), now=1000)


def test_one_good_signature_among_several_is_enough() -> None:
    header = f"v1=deadbeef {sign(SECRET, 1000, BODY)}"
    assert verify(SECRET, "1000", BODY, header, now=1000)


def test_secrets_are_fresh() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(a) >= 40


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    def top(low: float, high: float) -> float:
        return high

    ceilings = [backoff_delay(n, base=2, cap=60, rand=top) for n in range(1, 9)]
    assert ceilings == [2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_delay(10_000, base=2, cap=60, rand=top) == 60  # no overflow


def test_backoff_is_full_jitter() -> None:
    seen: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        seen.append((low, high))
        return (low + high) / 2

    assert backoff_delay(3, base=1, cap=100, rand=record) == 2
    assert seen == [(0.0, 4.0)]
    for attempt in range(1, 12):
        assert 0 <= backoff_delay(attempt, base=1, cap=30) <= min(30, 2 ** (attempt - 1))
    with pytest.raises(ValueError, match="counts from 1"):
        backoff_delay(0, base=1, cap=1)


def test_type_patterns() -> None:
    match = TypeMatcher(["tournament.completed", "*_balance_update", "rebuy.*"])
    assert match("tournament.completed")
    assert match("gamification_balance_update")
    assert match("wallet_balance_update")
    assert match("rebuy.requested")
    assert not match("tournament.completedX")
    assert not match("tournament_completed")  # "." is literal, not a regex wildcard
    assert not match("notification")
    assert TypeMatcher(["*"])("anything.at:all")
    assert not TypeMatcher([])("notification")


def test_settings_from_the_environment() -> None:
    settings = WebhookSettings.load(
        {}, {"CROUPIER_WEBHOOK_MAX_ATTEMPTS": "3", "CROUPIER_WEBHOOK_BACKOFF_BASE": "0.05"}
    )
    assert settings.max_attempts == 3
    assert settings.backoff_base == 0.05
    assert settings.lease > settings.timeout
    assert WebhookSettings.load({}, {}) == WebhookSettings()
    with pytest.raises(Exception, match="MAX_ATTEMPTS"):
        WebhookSettings.load({}, {"CROUPIER_WEBHOOK_MAX_ATTEMPTS": "many"})
    with pytest.raises(Exception, match="max_attempts"):
        WebhookSettings.load({}, {"CROUPIER_WEBHOOK_MAX_ATTEMPTS": "0"})


def test_settings_from_the_config_file_with_the_environment_on_top(tmp_path: Path) -> None:
    config = tmp_path / "croupier.toml"
    config.write_text("[webhooks]\nmax_attempts = 4\ntimeout = 2.5\nconcurrency = 0\n")
    table = load_settings(config, env={}).services["webhooks"]
    settings = WebhookSettings.load(table, {"CROUPIER_WEBHOOK_TIMEOUT": "7"})
    assert (settings.max_attempts, settings.timeout, settings.concurrency) == (4, 7.0, 0)
    with pytest.raises(Exception, match="unknown \\[webhooks\\] settings: retries"):
        WebhookSettings.load({"retries": 3}, {})
    with pytest.raises(Exception, match=r"\[webhooks\] timeout must be a number"):
        WebhookSettings.load({"timeout": "soon"}, {})
    with pytest.raises(Exception, match=r"\[webhooks\] concurrency must be a number"):
        WebhookSettings.load({"concurrency": True}, {})

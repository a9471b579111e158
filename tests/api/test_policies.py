"""The retry decision and the Retry-After parser, as plain functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest

from mfo_client.api import RetryPolicy, parse_retry_after, retry_delay

POLICY = RetryPolicy(max_attempts=5, initial_backoff=1.0, max_backoff=6.0, backoff_multiplier=2.0)


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://mfo.test/api/events"))


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    assert retry_delay(POLICY, 1, _response(status)) is not None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500, 501])
def test_other_statuses_are_never_retried(status: int) -> None:
    assert retry_delay(POLICY, 1, _response(status)) is None


def test_transport_errors_are_retried_but_other_exceptions_are_not() -> None:
    request = httpx.Request("GET", "http://mfo.test/")
    assert retry_delay(POLICY, 1, httpx.ConnectError("refused", request=request)) is not None
    assert retry_delay(POLICY, 1, httpx.ReadTimeout("slow", request=request)) is not None
    assert retry_delay(POLICY, 1, ValueError("not transport")) is None


def test_full_jitter_stays_under_a_cap_that_grows_then_saturates() -> None:
    random.seed(7)
    caps = [POLICY.backoff_cap(n) for n in range(1, 5)]
    assert caps == [1.0, 2.0, 4.0, 6.0]
    for attempt, cap in enumerate(caps, start=1):
        delays = [retry_delay(POLICY, attempt, _response(503)) for _ in range(300)]
        assert all(d is not None and 0 <= d <= cap for d in delays)
        # Full jitter spreads over the whole range rather than clustering at the cap.
        assert min(d for d in delays if d is not None) < cap * 0.1
        assert max(d for d in delays if d is not None) > cap * 0.9


def test_last_attempt_is_not_retried() -> None:
    assert retry_delay(POLICY, 4, _response(503)) is not None
    assert retry_delay(POLICY, 5, _response(503)) is None


def test_retry_after_wins_when_within_max_backoff_and_ends_retries_beyond() -> None:
    assert retry_delay(POLICY, 1, _response(429), retry_after=3.5) == 3.5
    assert retry_delay(POLICY, 1, _response(429), retry_after=60) is None


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 03 Dec 2026 12:00:30 GMT", now=now) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1, got 0"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier must be >= 1, got 0.5"),
        ({"initial_backoff": -1}, "must not be negative"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

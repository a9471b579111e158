"""Go-style durations in, Go-style (shortest) text out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from mfo_client.config import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1, milliseconds=500)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30, milliseconds=500)),
        ("1500us", timedelta(microseconds=1500)),
        ("7µs", timedelta(microseconds=7)),  # micro sign, as Go writes it
        ("7μs", timedelta(microseconds=7)),  # Greek mu, also accepted by Go
        ("3000ns", timedelta(microseconds=3)),
        ("1500ns", timedelta(microseconds=2)),  # rounded to timedelta's microsecond
        (".5s", timedelta(milliseconds=500)),
        ("1m0.25s", timedelta(minutes=1, milliseconds=250)),
        ("+5s", timedelta(seconds=5)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("-0s", timedelta(0)),
        ("45", timedelta(seconds=45)),  # bare number: seconds
        ("2.5", timedelta(seconds=2, milliseconds=500)),
        (" 30s ", timedelta(seconds=30)),
        ("48h", timedelta(days=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30x", "", "s", "1 s", "1S", "1e3s", "1h-1m", "ms5", "1.2.3s"])
def test_parse_duration_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)

    assert str(caught.value) == (
        f'not a duration: "{text}" (use Go-style durations such as 250ms, 30s, 1m, 1h30m)'
    )


@pytest.mark.parametrize("text", ["-1s", "-250ms", "-3"])
def test_parse_duration_rejects_negative(text: str) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative, got"):
        parse_duration(text)


def test_parse_duration_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("99999999999999h")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(microseconds=7), "7us"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(seconds=1, milliseconds=500), "1.5s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=1), "1m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=1, seconds=5), "1h5s"),
        (timedelta(hours=2, minutes=45, seconds=30, milliseconds=500), "2h45m30.5s"),
        (timedelta(minutes=1, milliseconds=250), "1m0.25s"),
        (timedelta(days=2), "48h"),
        (-timedelta(seconds=90), "-1m30s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    if value >= timedelta(0):
        assert parse_duration(text) == value


class _Timed(BaseModel):
    wait: Duration


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1m", timedelta(minutes=1)),
        (30, timedelta(seconds=30)),
        (1.5, timedelta(seconds=1, milliseconds=500)),
        (timedelta(seconds=3), timedelta(seconds=3)),
    ],
)
def test_duration_field_accepts_text_numbers_and_timedelta(
    given: object, expected: timedelta
) -> None:
    assert _Timed.model_validate({"wait": given}).wait == expected


def test_duration_field_dumps_go_text() -> None:
    timed = _Timed(wait=timedelta(hours=1, minutes=30))

    assert timed.model_dump() == {"wait": "1h30m"}
    assert timed.model_dump_json() == '{"wait":"1h30m"}'


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("30x", 'not a duration: "30x" (use Go-style durations such as 250ms, 30s, 1m, 1h30m)'),
        (-2, "must not be negative, got -2"),
        (timedelta(seconds=-1), 'must not be negative, got "-1s"'),
        (True, "not a duration: True (use Go-style durations such as 250ms, 30s, 1m, 1h30m)"),
        (None, "not a duration: null (use Go-style durations such as 250ms, 30s, 1m, 1h30m)"),
        (
            float("inf"),
            "not a duration: inf (use Go-style durations such as 250ms, 30s, 1m, 1h30m)",
        ),
    ],
)
def test_duration_field_errors_read_as_help(given: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Timed.model_validate({"wait": given})

    assert [error["msg"] for error in caught.value.errors()] == [message]

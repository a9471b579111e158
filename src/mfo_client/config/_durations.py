"""Go-style durations (`250ms`, `1h30m`), the form the product's config files have always used.

A bare number means seconds. Values are held as `timedelta`, so anything finer than a
microsecond is rounded to the nearest microsecond.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

__all__ = ["Duration", "format_duration", "parse_duration"]

_HINT = "use Go-style durations such as 250ms, 30s, 1m, 1h30m"
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(_NUMBER)
# Go accepts both the micro sign and the Greek mu for microseconds.
_COMPONENT = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")
_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_US_PER_SECOND = 1_000_000
_US_PER_MINUTE = 60 * _US_PER_SECOND
_US_PER_HOUR = 60 * _US_PER_MINUTE


def parse_duration(text: str) -> timedelta:
    """Parse `"1h30m"`, `"1.5s"`, `"250ms"` or a bare number of seconds; reject negatives.

    Raises `ValueError` with a message fit to show a user.
    """
    body = text.strip()
    sign = body[:1]
    if sign in ("+", "-"):
        body = body[1:]
    nanoseconds = _bare_seconds(body) if _BARE.fullmatch(body) else _components(body)
    if nanoseconds is None:
        raise ValueError(f'not a duration: "{text}" ({_HINT})')
    if sign == "-" and nanoseconds:
        raise ValueError(f'must not be negative, got "{text}"')
    return _timedelta(nanoseconds, text)


def format_duration(value: timedelta) -> str:
    """Render like Go's `Duration.String`, minus zero components: `1m`, `1h30m`, `250ms`."""
    micros = value // timedelta(microseconds=1)
    if micros < 0:
        return "-" + format_duration(-value)
    if micros == 0:
        return "0s"
    if micros < _US_PER_SECOND:
        if micros < 1_000:
            return f"{micros}us"
        return _decimal(micros, 1_000) + "ms"
    hours, rest = divmod(micros, _US_PER_HOUR)
    minutes, rest = divmod(rest, _US_PER_MINUTE)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if rest:
        text += _decimal(rest, _US_PER_SECOND) + "s"
    return text


def _bare_seconds(body: str) -> Decimal:
    return Decimal(body) * _NANOSECONDS["s"]


def _components(body: str) -> Decimal | None:
    total = Decimal(0)
    position = 0
    while position < len(body):
        match = _COMPONENT.match(body, position)
        if match is None:
            return None
        total += Decimal(match[1]) * _NANOSECONDS[match[2]]
        position = match.end()
    return total if body else None


def _timedelta(nanoseconds: Decimal, text: str) -> timedelta:
    micros = (nanoseconds / 1_000).to_integral_value(rounding=ROUND_HALF_EVEN)
    try:
        return timedelta(microseconds=int(micros))
    except OverflowError:
        raise ValueError(f'duration too large: "{text}"') from None


def _decimal(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _coerce(value: object) -> object:
    """Accept text, a number of seconds, or a timedelta; report failures in the user's terms."""
    try:
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, bool):
            pass  # YAML `yes`/`true` is never meant as a duration
        elif isinstance(value, int | float) and math.isfinite(value):
            if value < 0:
                raise ValueError(f"must not be negative, got {value}")
            return _timedelta(_bare_seconds(repr(value)), repr(value))
        elif isinstance(value, timedelta):
            if value < timedelta(0):
                raise ValueError(f'must not be negative, got "{format_duration(value)}"')
            return value
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None
    shown = "null" if value is None else repr(value)
    raise PydanticCustomError(
        "duration", "{reason}", {"reason": f"not a duration: {shown} ({_HINT})"}
    )


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="always"),
]
"""A non-negative `timedelta` read from Go-style text and written back the same way."""

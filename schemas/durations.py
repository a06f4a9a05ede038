"""Durations in the configuration file: Prometheus style (`90s`, `5m`) or seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> object:
    """Parse a Prometheus-style duration (`90s`, `5m`, `1h30m`) or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(_duration_problem(value))
    if isinstance(value, int | float):
        # An int too large for a float is beyond the maximum in any case.
        if isinstance(value, int) and value > MAX_DURATION.total_seconds():
            return _to_timedelta(float("inf"), value)
        if not math.isfinite(value):
            raise ValueError(_duration_problem(value))
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return _to_timedelta(value, value)
    if not isinstance(value, str):
        raise ValueError(_duration_problem(value))
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    # A quoted plain number reads as seconds, like an unquoted one.
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return _to_timedelta(float(text), value)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(_duration_problem(value))
    return _to_timedelta(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts), value)


# The units format_duration writes, largest first, in milliseconds. Weeks are
# left out: 10d reads more easily than 1w3d.
_FORMAT_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def format_duration(value: timedelta | float) -> str:
    """Format a timedelta or a number of seconds as parse_duration reads it.

    The largest units come first and zero parts are left out: 5400 seconds
    is `1h30m`, 0.25 is `250ms` and 0 is `0s`. Time is rounded to the
    millisecond. A negative value gets a leading `-`, which parse_duration
    rejects.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format duration {seconds!r}: not a finite number")
    milliseconds = round(abs(seconds) * 1000)
    parts = []
    for unit, size in _FORMAT_UNITS:
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if milliseconds:
        parts.append(f"{milliseconds}ms")
    if not parts:
        return "0s"
    sign = "-" if seconds < 0 else ""
    return sign + "".join(parts)


# The forms parse_duration accepts, as its error messages name them.
DURATION_FORMS = (
    "use a number with a unit, such as 30s, 5m, 1h30m, 2d (units ms, s, m, h, "
    "d, w), or a plain number of seconds"
)


def _duration_problem(value: object) -> str:
    return f"invalid duration {value!r}: {DURATION_FORMS}"


# The maximum duration of any setting: ten years. Longer ones are mistakes,
# and adding them to a time can pass the year 9999 and fail.
MAX_DURATION = timedelta(days=3650)


def _to_timedelta(seconds: float, value: object) -> timedelta:
    if seconds > MAX_DURATION.total_seconds():
        shown = describe_number(value)
        raise ValueError(
            f"invalid duration {shown}: longer than the maximum, {MAX_DURATION.days}d"
        )
    return timedelta(seconds=seconds)


def describe_number(value: object) -> str:
    """Show a value for an error message, cutting a number of many digits."""
    text = repr(value)
    if len(text) > 40:
        return f"{text[:20]}... ({len(text)} characters)"
    return text


# JSON carries a duration as seconds, which parse_duration reads back.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda value: value.total_seconds(), when_used="json"),
]

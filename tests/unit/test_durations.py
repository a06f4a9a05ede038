"""Duration formatting: the units parse_duration reads, largest first."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from schemas.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (172_800, "2d"),
        (864_061, "10d1m1s"),
        (0.25, "250ms"),
        (1.5, "1s500ms"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=7), "7d"),
    ],
)
def test_format_duration_units(value: timedelta | float, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("seconds", [0.0004, 1e-9])
def test_format_duration_below_millisecond(seconds: float) -> None:
    assert format_duration(seconds) == "0s"


def test_format_duration_rounds_to_millisecond() -> None:
    assert format_duration(59.9996) == "1m"


def test_format_duration_negative_gets_sign() -> None:
    assert format_duration(-90) == "-1m30s"


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_format_duration_rejects_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        format_duration(seconds)


@pytest.mark.parametrize("seconds", [0, 1, 59, 61, 3599, 5400, 90_061, 0.125, 86_400])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", [[1, 2], {"m": 5}, None])
def test_parse_duration_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)

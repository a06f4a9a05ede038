"""The on-call report of the web view, and the times it accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.config import Config
from streams.web.analytics_views import _paged
from streams.web.oncall_views import oncall_report, parse_time

CONFIG = Config.model_validate(
    {
        "receivers": {"pd-alice": {"type": "pagerduty"}},
        "users": {
            "alice": {"receivers": ["pd-alice"]},
            "bob": {"receivers": ["pd-alice"]},
        },
        "schedules": {
            "primary": {
                "layers": [
                    {"rotation": "daily", "start": "2024-05-01", "users": ["alice"]}
                ]
            }
        },
    }
)


def test_iso_time_with_zone_parsed() -> None:
    parsed = parse_time("2024-05-01T09:00:00+02:00")

    assert parsed == datetime(2024, 5, 1, 7, tzinfo=UTC)


def test_iso_time_without_zone_is_utc() -> None:
    assert parse_time("2024-05-01T09:00:00") == datetime(2024, 5, 1, 9, tzinfo=UTC)


def test_unix_seconds_parsed() -> None:
    assert parse_time("1714554000") == datetime(2024, 5, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "nan", "1e300", ""])
def test_invalid_time_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="use ISO 8601"):
        parse_time(text)


def test_report_names_user_shift_and_receivers() -> None:
    report = oncall_report(CONFIG, ["primary"], datetime(2024, 5, 2, 12, tzinfo=UTC))

    [row] = report["schedules"]
    assert row["schedule"] == "primary"
    assert row["on_call"]["user"] == "alice"
    assert row["on_call"]["start"] == "2024-05-02T09:00:00+00:00"
    assert row["on_call"]["end"] == "2024-05-03T09:00:00+00:00"
    assert row["receivers"] == ["pd-alice"]


def test_report_before_start_has_nobody() -> None:
    report = oncall_report(CONFIG, ["primary"], datetime(2024, 4, 1, tzinfo=UTC))

    assert report["schedules"][0]["on_call"] is None
    assert report["schedules"][0]["receivers"] == []


def test_policy_targets_resolved_to_receivers() -> None:
    config = Config.model_validate(
        {
            "users": {"alice": {"receivers": ["pd"]}},
            "schedules": {
                "primary": {
                    "timezone": "UTC",
                    "layers": [
                        {
                            "rotation": "weekly",
                            "start": "2024-01-01",
                            "users": ["alice"],
                        }
                    ],
                }
            },
            "receivers": {"pd": {"type": "console"}},
            "policies": {
                "default": {
                    "levels": [
                        {"targets": [{"schedule": "primary"}, {"user": "alice"}, "pd"]}
                    ]
                }
            },
        }
    )
    at = datetime(2024, 6, 1, tzinfo=UTC)

    paged = [
        _paged(config, t, at) for t in config.policies["default"].levels[0].targets
    ]

    assert paged[0] == {"schedule": "primary", "user": "alice", "receivers": ["pd"]}
    assert paged[1] == {"user": "alice", "receivers": ["pd"]}
    assert paged[2] == {"receiver": "pd", "receivers": ["pd"]}

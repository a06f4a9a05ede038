"""The NAB ambient temperature scenario: its configuration and its reference.

The reference is computed from the CSV by a plain loop, independently of the
pipeline's rule code, so the end-to-end tests compare two implementations.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SERIES = "realKnownCause/ambient_temperature_system_failure.csv"
HOT_FOR = timedelta(hours=2)
COLD_FOR = timedelta(hours=1)
ESCALATE_AFTER = timedelta(hours=1)
SLACK_TOKEN = "xoxb-test-token"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"
LABELS = {"service": "machine-room", "metric": "temperature", "series": "ambient"}


def pipeline_config() -> dict[str, Any]:
    return {
        "rules": {
            "metrics": [
                {
                    "name": "room_hot",
                    "match": {"metric": "temperature"},
                    "op": "above",
                    "threshold": 80,
                    "for": "2h",
                    "severity": "high",
                    "auto_resolve": True,
                    "summary": "Machine room above 80 F",
                },
                {
                    "name": "room_cold",
                    "match": {"metric": "temperature"},
                    "op": "below",
                    "threshold": 60,
                    "for": "1h",
                    "severity": "medium",
                    "auto_resolve": False,
                    "summary": "Machine room below 60 F",
                },
            ]
        },
        "policies": {
            "default": {
                "levels": [
                    {"delay": "0s", "targets": ["slack", "pagerduty"]},
                    {"delay": "1h", "targets": ["secondary"]},
                ]
            }
        },
        # The machine room's MTTR is hours: keep response target alerts,
        # which would open incidents of their own, out of this scenario.
        "targets": {"mtta_alert": "30d", "mttr_alert": "30d"},
        "receivers": {
            "slack": {"type": "slack", "channel": "#oncall"},
            "pagerduty": {"type": "pagerduty"},
            "secondary": {"type": "console"},
        },
    }


def read_series(path: Path) -> list[tuple[datetime, float]]:
    with path.open() as handle:
        return [
            (
                datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC),
                float(row["value"]),
            )
            for row in csv.DictReader(handle)
        ]


def episodes(
    rows: list[tuple[datetime, float]], breached: Any, hold: timedelta
) -> list[dict[str, Any]]:
    """Return each firing episode: breach start, firing time, clear time."""
    found: list[dict[str, Any]] = []
    start: datetime | None = None
    firing: dict[str, Any] | None = None
    for at, value in rows:
        if breached(value):
            start = start or at
            if firing is None and at - start >= hold:
                firing = {"start": start, "fired": at, "cleared": None}
                found.append(firing)
        else:
            if firing is not None:
                firing["cleared"] = at
            start, firing = None, None
    return found


def expected_incidents(rows: list[tuple[datetime, float]]) -> list[dict[str, Any]]:
    """One incident per hot episode; the cold rule keeps one incident open."""
    hot = episodes(rows, lambda v: v > 80, HOT_FOR)
    cold = episodes(rows, lambda v: v < 60, COLD_FOR)
    incidents = [
        {"rule": "room_hot", "opened": e["fired"], "resolved": e["cleared"]}
        for e in hot
    ]
    if cold:
        incidents.append({"rule": "room_cold", "opened": cold[0]["fired"]})
    return sorted(incidents, key=lambda i: i["opened"])

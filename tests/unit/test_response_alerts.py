"""Response target alerts, target validation and the analytics web helpers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import at
from pydantic import ValidationError

from schemas.analytics import Targets
from schemas.config import Config
from schemas.records import AlertStatus
from streams.analytics.breaches import breach_alert, breach_changes
from streams.web.analytics_views import invalid_dimension
from streams.web.queries import IncidentFilter, merge_listings

CONFIG = Config()
WINDOW_START = 1_714_521_600.0


def summary(mtta_s: float | None, mttr_s: float | None) -> dict[str, Any]:
    return {"mtta_s": mtta_s, "mttr_s": mttr_s}


def test_mtta_above_alert_level_fires() -> None:
    changes = breach_changes(summary(11 * 60, None), CONFIG, {})

    assert changes == {"mtta": AlertStatus.FIRING}


def test_mean_at_alert_level_does_not_fire() -> None:
    assert breach_changes(summary(10 * 60, 120 * 60), CONFIG, {}) == {}


def test_firing_breach_fires_once() -> None:
    raised = {"mttr": "firing"}

    assert breach_changes(summary(None, 200 * 60), CONFIG, raised) == {}


def test_breach_resolves_when_mean_drops() -> None:
    raised = {"mttr": "firing"}

    changes = breach_changes(summary(None, 90 * 60), CONFIG, raised)

    assert changes == {"mttr": AlertStatus.RESOLVED}


def test_empty_window_raises_nothing() -> None:
    assert breach_changes(summary(None, None), CONFIG, {}) == {}


def test_breach_alert_names_service_and_measure() -> None:
    alert = breach_alert(
        CONFIG, "api", "mtta", WINDOW_START, AlertStatus.FIRING, 900.0, at(0)
    )

    assert alert.labels["service"] == "api"
    assert alert.labels["alertname"] == "MTTABreach"
    assert alert.rule == "mtta_alert"
    assert alert.source == "analytics"
    assert "15.0 min" in alert.annotations["summary"]


def test_breach_resolve_shares_fingerprint() -> None:
    firing = breach_alert(
        CONFIG, "api", "mttr", WINDOW_START, AlertStatus.FIRING, 9000.0, at(0)
    )
    resolved = breach_alert(
        CONFIG, "api", "mttr", WINDOW_START, AlertStatus.RESOLVED, 60.0, at(60)
    )

    assert firing.fingerprint == resolved.fingerprint
    assert firing.event_id != resolved.event_id
    assert resolved.ends_at == at(60)


def test_alert_level_below_target_rejected() -> None:
    with pytest.raises(ValidationError, match="mtta_alert"):
        Targets(mtta=timedelta(minutes=10), mtta_alert=timedelta(minutes=5))


def test_unknown_severity_weight_rejected() -> None:
    with pytest.raises(ValidationError, match="urgent"):
        Targets(severity_weights={"urgent": 3.0})


def test_targets_read_from_yaml_durations() -> None:
    config = Config.model_validate(
        {"targets": {"mtta": "2m", "mtta_alert": "4m", "false_positive_rate": 0.2}}
    )

    assert config.targets.mtta == timedelta(minutes=2)
    assert config.targets.false_positive_rate == 0.2


@pytest.mark.parametrize("dimension", ["all", "service:api", "severity:critical"])
def test_valid_dimensions_accepted(dimension: str) -> None:
    assert invalid_dimension(dimension) is None


@pytest.mark.parametrize("dimension", ["api", "service:", "severity:urgent", "all:x"])
def test_invalid_dimensions_rejected(dimension: str) -> None:
    problem = invalid_dimension(dimension)

    assert problem is not None
    assert repr(dimension) in problem


def incident(number: int) -> dict[str, Any]:
    return {
        "incident_id": f"g{number}-1",
        "opened_at": f"2024-05-01T12:{number:02d}:00+00:00",
        "service": "api",
        "state": "open",
    }


def test_merged_listing_pages_across_workers() -> None:
    query = IncidentFilter(limit=2, offset=1)
    local = [incident(1), incident(4)]
    remote = {"total": 2, "incidents": [incident(3), incident(2)]}

    listing = merge_listings(local, [remote], query)

    assert listing["total"] == 4
    assert [i["incident_id"] for i in listing["incidents"]] == ["g3-1", "g2-1"]

"""Topic records: incident ids, aware datetimes and strict fields."""

from __future__ import annotations

from datetime import datetime

import pytest
from factories import at, make_alert, make_command, make_event
from pydantic import ValidationError

from schemas.records import (
    Alert,
    CommandKind,
    MetricSample,
    RunbookRun,
    group_key_of,
)

NAIVE = datetime(2024, 5, 1, 12, 0)


@pytest.mark.parametrize(
    ("incident_id", "group_key"),
    [("g1-1", "g1"), ("node-a-12", "node-a"), ("3f2a9c-7", "3f2a9c")],
)
def test_group_key_of_valid_id(incident_id: str, group_key: str) -> None:
    assert group_key_of(incident_id) == group_key


@pytest.mark.parametrize("incident_id", ["g1", "g1-", "-3", "g1-x", "g1-1a", ""])
def test_group_key_of_invalid_id_rejected(incident_id: str) -> None:
    with pytest.raises(ValueError, match="invalid incident id") as excinfo:
        group_key_of(incident_id)

    assert repr(incident_id) in str(excinfo.value)


def test_group_key_of_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError, match="invalid incident id"):
        group_key_of("g1-²")


def test_naive_alert_time_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_alert(at=NAIVE)


def test_naive_sample_time_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        MetricSample(at=NAIVE, value=1.0)


def test_naive_event_time_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_event(opened_at=NAIVE)


def test_naive_command_time_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_command(CommandKind.ACKNOWLEDGE, 0, at=NAIVE)


def test_naive_runbook_run_time_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        RunbookRun(
            run_id="g1-1:restart-model",
            runbook="restart-model",
            incident_id="g1-1",
            dry_run=True,
            status="rendered",
            started_at=NAIVE,
            finished_at=NAIVE,
            steps=[],
        )


def test_extra_alert_field_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        make_alert(priority="p1")


def test_extra_sample_field_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        MetricSample(at=at(0), value=1.0, unit="percent")  # type: ignore[call-arg]


def test_extra_command_field_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        make_command(CommandKind.ACKNOWLEDGE, 0, reason="busy")


def test_non_finite_sample_value_rejected() -> None:
    with pytest.raises(ValidationError):
        MetricSample(at=at(0), value=float("nan"))


def test_unknown_schema_version_rejected() -> None:
    with pytest.raises(ValidationError, match="schema_version"):
        make_alert(schema_version=2)


def test_records_are_frozen() -> None:
    alert = make_alert()

    with pytest.raises(ValidationError, match="frozen"):
        alert.rule = "other"  # type: ignore[misc]


def test_record_round_trips_through_bytes() -> None:
    alert = make_alert()

    assert Alert.model_validate_json(alert.to_bytes()) == alert


def test_idempotency_key_joins_incident_and_seq() -> None:
    assert make_event(seq=4).idempotency_key == "g1-1:4"

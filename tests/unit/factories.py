"""Factories for the records the unit tests feed to the pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.records import (
    Alert,
    AlertStatus,
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    IncidentState,
    MetricSample,
    Notification,
    Severity,
)
from schemas.rules import ThresholdRule

# Every test time is an offset in seconds from T0.
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GROUP_KEY = "g1"
INCIDENT_ID = "g1-1"


def at(seconds: float) -> datetime:
    """Return the time `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def make_rule(**overrides: Any) -> ThresholdRule:
    fields: dict[str, Any] = {
        "name": "cpu_high",
        "match": {"metric": "cpu_utilization"},
        "threshold": 90.0,
        "for_": timedelta(minutes=5),
        "severity": Severity.HIGH,
    }
    fields.update(overrides)
    return ThresholdRule(**fields)


def make_sample(seconds: float, value: float) -> MetricSample:
    return MetricSample(at=at(seconds), value=value)


def make_alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "event_id": "alert-1",
        "fingerprint": "fp-1",
        "group_key": GROUP_KEY,
        "rule": "cpu_high",
        "status": AlertStatus.FIRING,
        "severity": Severity.HIGH,
        "labels": {"service": "api", "metric": "cpu_utilization"},
        "annotations": {"summary": "CPU above 90 %"},
        "starts_at": at(-300),
        "at": at(0),
    }
    fields.update(overrides)
    return Alert(**fields)


def make_resolved_alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "event_id": "alert-1-resolved",
        "status": AlertStatus.RESOLVED,
        "at": at(60),
        "ends_at": at(60),
    }
    fields.update(overrides)
    return make_alert(**fields)


def make_command(
    kind: CommandKind, seconds: float, command_id: str | None = None, **overrides: Any
) -> Command:
    fields: dict[str, Any] = {
        "command_id": command_id or f"{kind}-{seconds:g}",
        "kind": kind,
        "incident_id": INCIDENT_ID,
        "actor": "alice",
        "source": "slack",
        "at": at(seconds),
    }
    fields.update(overrides)
    return Command(**fields)


def make_event(**overrides: Any) -> IncidentEvent:
    fields: dict[str, Any] = {
        "incident_id": INCIDENT_ID,
        "group_key": GROUP_KEY,
        "seq": 1,
        "kind": EventKind.OPENED,
        "at": at(0),
        "actor": "detect",
        "state": IncidentState.OPEN,
        "service": "api",
        "severity": Severity.HIGH,
        "title": "CPU above 90 %",
        "rule": "cpu_high",
        "labels": {"service": "api", "metric": "cpu_utilization"},
        "opened_at": at(0),
        "started_at": at(-300),
    }
    fields.update(overrides)
    return IncidentEvent(**fields)


def make_notification(
    receiver: str = "slack-oncall", **event_overrides: Any
) -> Notification:
    event = make_event(**event_overrides)
    return Notification(
        notification_id=f"{event.idempotency_key}:{receiver}",
        receiver=receiver,
        event=event,
    )

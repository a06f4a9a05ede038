"""Alert identity and construction shared by every rule type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas.records import Alert, AlertStatus, stable_hash
from schemas.rules import LogRule, MetricRule

if TYPE_CHECKING:
    from schemas.config import Config
from streams.correlate.identity import group_key_for
from streams.detect.hold import Transition
from streams.detect.log_rules import match_line

__all__ = ["build_alert", "fingerprint", "match_line", "matches"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Return whether every selector label is present in `labels` with its value."""
    return all(labels.get(name) == value for name, value in selector.items())


def fingerprint(rule_name: str, labels: dict[str, str]) -> str:
    """Return the identity of an alert: its rule and identifying labels."""
    return stable_hash(rule_name, sorted(labels.items()))


def build_alert(
    rule: MetricRule | LogRule,
    series_labels: dict[str, str],
    transition: Transition,
    annotations: dict[str, str],
    event_key: str | None = None,
    config: Config | None = None,
) -> Alert:
    """Build the alert record a rule transition publishes.

    `event_key` distinguishes alerts of one fingerprint that share a
    transition time, such as two matching log lines in the same second. It
    must not change when the input is redelivered, so it is a record offset
    and line index.
    """
    labels = {**series_labels, **rule.labels, "alertname": rule.name}
    identity = fingerprint(rule.name, {**series_labels, **rule.labels})
    group_key = group_key_for(config, labels, identity)
    starts_at = datetime.fromtimestamp(transition.starts_at, UTC)
    at = datetime.fromtimestamp(transition.at, UTC)
    return Alert(
        event_id=stable_hash(
            identity, transition.status, transition.starts_at, event_key
        ),
        fingerprint=identity,
        group_key=group_key,
        rule=rule.name,
        status=transition.status,
        severity=rule.severity,
        labels=labels,
        annotations={
            "summary": rule.summary or rule.name,
            **transition.annotations,
            **annotations,
        },
        starts_at=starts_at,
        ends_at=at if transition.status is AlertStatus.RESOLVED else None,
        at=at,
        auto_resolve=rule.auto_resolve,
    )

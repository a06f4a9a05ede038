"""Rule evaluation as pure functions over per-series state and one input."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from schemas.config import PatternRule, ThresholdRule
from schemas.records import (
    Alert,
    AlertStatus,
    LogLine,
    MetricSample,
    stable_hash,
)


@dataclass
class ThresholdState:
    """The state of one series against one threshold rule.

    Times are Unix seconds of event time. `pending_since` is the first sample
    of the current breach, which is also the start of impact.
    """

    pending_since: float | None = None
    firing: bool = False
    last_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pending_since": self.pending_since,
            "firing": self.firing,
            "last_at": self.last_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThresholdState:
        return cls(
            pending_since=data.get("pending_since"),
            firing=bool(data.get("firing")),
            last_at=data.get("last_at"),
        )


@dataclass(frozen=True)
class Transition:
    status: AlertStatus
    starts_at: float
    at: float


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Return whether every selector label is present in `labels` with its value."""
    return all(labels.get(name) == value for name, value in selector.items())


def step_threshold(
    rule: ThresholdRule, state: ThresholdState, sample: MetricSample
) -> Transition | None:
    """Apply one sample to `state` in place and return the alert it causes, if any.

    A sample at or before the last applied one is ignored, so a redelivered
    batch changes nothing.
    """
    at = sample.at.timestamp()
    if state.last_at is not None and at <= state.last_at:
        return None
    state.last_at = at

    if not rule.breached(sample.value):
        was_firing = state.firing
        started = state.pending_since
        state.pending_since = None
        state.firing = False
        if was_firing and started is not None:
            return Transition(AlertStatus.RESOLVED, started, at)
        return None

    if state.pending_since is None:
        state.pending_since = at
    held_s = at - state.pending_since
    if not state.firing and held_s >= rule.for_.total_seconds():
        state.firing = True
        return Transition(AlertStatus.FIRING, state.pending_since, at)
    return None


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def match_line(rule: PatternRule, line: LogLine) -> bool:
    """Return whether a log line matches a pattern rule's level and regex."""
    if rule.levels and line.level.lower() not in {lv.lower() for lv in rule.levels}:
        return False
    return _compiled(rule.regex).search(line.message) is not None


def fingerprint(rule_name: str, labels: dict[str, str]) -> str:
    """Return the identity of an alert: its rule and identifying labels."""
    return stable_hash(rule_name, sorted(labels.items()))


def build_alert(
    rule: ThresholdRule | PatternRule,
    series_labels: dict[str, str],
    transition: Transition,
    annotations: dict[str, str],
    event_key: str | None = None,
) -> Alert:
    """Build the alert record a rule transition publishes.

    `event_key` distinguishes alerts of one fingerprint that share a
    transition time, such as two matching log lines in the same second. It
    must not change when the input is redelivered, so it is a record offset
    and line index.
    """
    labels = {**series_labels, **rule.labels, "alertname": rule.name}
    identity = fingerprint(rule.name, {**series_labels, **rule.labels})
    starts_at = datetime.fromtimestamp(transition.starts_at, UTC)
    at = datetime.fromtimestamp(transition.at, UTC)
    return Alert(
        event_id=stable_hash(
            identity, transition.status, transition.starts_at, event_key
        ),
        fingerprint=identity,
        group_key=identity,
        rule=rule.name,
        status=transition.status,
        severity=rule.severity,
        labels=labels,
        annotations={"summary": rule.summary or rule.name, **annotations},
        starts_at=starts_at,
        ends_at=at if transition.status is AlertStatus.RESOLVED else None,
        at=at,
        auto_resolve=rule.auto_resolve,
    )

"""Per-series and per-key evaluation: ordering, lateness, and every rule in turn."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.records import LogLine, MetricSample
from schemas.rules import LogRule, MetricRule
from streams.detect import log_rules, metric_rules
from streams.detect.hold import Transition
from streams.detect.rules import matches


@dataclass(frozen=True)
class Fired:
    """A transition of one rule, with the labels its alert carries."""

    rule: MetricRule | LogRule
    labels: dict[str, str]
    transition: Transition
    event_key: str | None = None


def admit(
    state: dict[str, Any], samples: list[MetricSample], lateness_s: float
) -> tuple[list[list[float]], list[MetricSample]]:
    """Order new samples with the held ones and release those past the lateness.

    Returns the samples to apply, in event order, and the late ones. A sample
    is late when it is more than the lateness behind the newest sample that
    arrived before it, or at or before the last released one, because it can
    no longer be applied in order. With no lateness allowed every in-order sample is
    released at once.
    """
    released_at = state.get("released_at")
    max_at = float(state.get("max_at", float("-inf")))
    late, fresh = [], []
    for sample in samples:
        at = sample.at.timestamp()
        behind = at < max_at - lateness_s
        if behind or (released_at is not None and at <= released_at):
            late.append(sample)
            continue
        fresh.append([at, sample.value])
        max_at = max(max_at, at)
    pending = sorted([*state.get("pending", []), *fresh])
    cutoff = max_at - lateness_s
    ready = [p for p in pending if p[0] <= cutoff]
    state["pending"] = [p for p in pending if p[0] > cutoff]
    state["max_at"] = max_at
    if ready:
        state["released_at"] = ready[-1][0]
    return ready, late


def apply_samples(
    rules: list[MetricRule],
    state: dict[str, Any],
    labels: dict[str, str],
    samples: list[list[float]],
) -> list[Fired]:
    """Apply ordered samples of one series to every rule that selects it."""
    rule_states: dict[str, Any] = state.setdefault("rules", {})
    fired = []
    for rule in rules:
        if not matches(rule.match, labels):
            continue
        rule_state = rule_states.setdefault(rule.name, {})
        for transition in metric_rules.step_many(rule, rule_state, samples):
            fired.append(Fired(rule, labels, transition))
    return fired


def advance_series(
    rules: Sequence[MetricRule], state: dict[str, Any], now: float
) -> list[Fired]:
    """Apply the passing of time to one series' time-based rules."""
    labels: dict[str, str] = state.get("labels", {})
    fired = []
    for rule in rules:
        if not matches(rule.match, labels):
            continue
        rule_state = state.setdefault("rules", {}).setdefault(rule.name, {})
        transition = metric_rules.advance(rule, rule_state, now)
        if transition is not None:
            fired.append(Fired(rule, labels, transition))
    return fired


def key_group(rule: LogRule, labels: dict[str, str], line: LogLine) -> dict[str, str]:
    """Return the `group_by` values of a line, from its fields or source labels."""
    return {name: line.fields.get(name, labels.get(name, "")) for name in rule.group_by}


def log_key(rule: LogRule, source: str, group: dict[str, str]) -> str:
    return f"{rule.name}|{source}|{json.dumps(sorted(group.items()))}"


def apply_line(
    rule: LogRule,
    state: dict[str, Any],
    labels: dict[str, str],
    line: LogLine,
    event_key: str,
) -> Fired | None:
    """Apply one line that passed a rule's filters to that rule's key state."""
    transition = log_rules.step(rule, state, line)
    if transition is None:
        return None
    return Fired(rule, labels, transition, event_key)


def advance_key(rule: LogRule, state: dict[str, Any], now: float) -> Fired | None:
    transition = log_rules.advance(rule, state, now)
    if transition is None:
        return None
    return Fired(rule, state.get("labels", {}), transition)

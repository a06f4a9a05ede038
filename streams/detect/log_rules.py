"""Log rule evaluation: one line, or the passing of time, against one rule and key.

State for one rule and key is a JSON-compatible dict, as for metric rules.
"""

from __future__ import annotations

from typing import Any

from schemas.patterns import compile_pattern
from schemas.records import AlertStatus, LogLine
from schemas.rules import (
    CardinalityRule,
    FrequencyRule,
    LogRule,
    NewTermRule,
    PatternRule,
)
from streams.detect.hold import HoldState, Transition, hold


def match_line(
    rule: LogRule, line: LogLine, found: frozenset[str] | None = None
) -> bool:
    """Return whether a line passes a rule's level, field and regex filters.

    `found` is the set of regexes that match the message, from a
    PatternSet of every rule's regex. Without it the rule's regex is
    searched on its own.
    """
    if rule.levels and line.level.lower() not in {lv.lower() for lv in rule.levels}:
        return False
    if any(line.fields.get(name) != value for name, value in rule.fields.items()):
        return False
    if rule.regex is None:
        return True
    if found is not None:
        return rule.regex in found
    return compile_pattern(rule.regex).search(line.message) is not None


def _step_pattern(
    rule: PatternRule, state: dict[str, Any], line: LogLine
) -> Transition:
    at = line.at.timestamp()
    state["last_match"] = max(at, float(state.get("last_match", at)))
    state["firing"] = True
    state.setdefault("started", at)
    return Transition(AlertStatus.FIRING, at, at, {"line": line.message[:500]})


def _quiet_resolve(
    state: dict[str, Any], now: float, quiet_s: float, since_key: str
) -> Transition | None:
    if not state.get("firing"):
        return None
    last = float(state.get(since_key, now))
    if now - last < quiet_s:
        return None
    started = float(state.pop("started", last))
    state["firing"] = False
    return Transition(AlertStatus.RESOLVED, started, max(now, last + quiet_s))


def _step_frequency(
    rule: FrequencyRule, state: dict[str, Any], line: LogLine
) -> Transition | None:
    at = line.at.timestamp()
    times = sorted([*state.get("times", []), at])[-rule.min_count :]
    state["times"] = times
    return _check_frequency(rule, state, at)


def _check_frequency(
    rule: FrequencyRule, state: dict[str, Any], now: float
) -> Transition | None:
    window_s = rule.window.total_seconds()
    times: list[float] = state.get("times", [])
    enough = len(times) >= rule.min_count and times[0] > now - window_s
    hold_state = HoldState.from_json(state.get("hold", {}))
    transition = hold(
        hold_state,
        now,
        enough,
        0.0,
        rule.keep_firing_for.total_seconds(),
        breach_started=times[0] if times else now,
    )
    state["hold"] = hold_state.to_json()
    if transition is None:
        return None
    return Transition(
        transition.status,
        transition.starts_at,
        transition.at,
        {"min_count": str(rule.min_count), "window": str(rule.window)},
    )


def _step_new_term(
    rule: NewTermRule, state: dict[str, Any], line: LogLine
) -> Transition | None:
    at = line.at.timestamp()
    term = line.fields.get(rule.field)
    if term is None:
        return None
    lookback_s = rule.lookback.total_seconds()
    state.setdefault("trained_until", at + lookback_s)
    seen: dict[str, float] = {
        value: last
        for value, last in state.get("seen", {}).items()
        if last > at - lookback_s
    }
    is_new = term not in seen and at >= state["trained_until"]
    seen[term] = max(at, seen.get(term, at))
    state["seen"] = seen
    if not is_new:
        return None
    state["last_new"] = at
    state["firing"] = True
    state.setdefault("started", at)
    return Transition(AlertStatus.FIRING, at, at, {"term": term, "field": rule.field})


def _step_cardinality(
    rule: CardinalityRule, state: dict[str, Any], line: LogLine
) -> Transition | None:
    at = line.at.timestamp()
    value = line.fields.get(rule.field)
    state.setdefault("first_at", at)
    if value is not None:
        values: dict[str, float] = dict(state.get("values", {}))
        values[value] = max(at, values.get(value, at))
        state["values"] = values
    return _check_cardinality(rule, state, at)


def _check_cardinality(
    rule: CardinalityRule, state: dict[str, Any], now: float
) -> Transition | None:
    window_s = rule.window.total_seconds()
    values = {v: t for v, t in state.get("values", {}).items() if t > now - window_s}
    state["values"] = values
    count = len(values)
    if rule.op == "above":
        breached = count > rule.threshold
    else:
        covered = now - float(state.get("first_at", now)) >= window_s
        breached = covered and count < rule.threshold
    hold_state = HoldState.from_json(state.get("hold", {}))
    transition = hold(
        hold_state, now, breached, 0.0, rule.keep_firing_for.total_seconds()
    )
    state["hold"] = hold_state.to_json()
    if transition is None:
        return None
    annotations = {
        "distinct": str(count),
        "field": rule.field,
        "threshold": str(rule.threshold),
    }
    return Transition(
        transition.status, transition.starts_at, transition.at, annotations
    )


def step(rule: LogRule, state: dict[str, Any], line: LogLine) -> Transition | None:
    """Apply one line that passed the rule's filters to its state for one key."""
    if isinstance(rule, PatternRule):
        return _step_pattern(rule, state, line)
    if isinstance(rule, FrequencyRule):
        return _step_frequency(rule, state, line)
    if isinstance(rule, NewTermRule):
        return _step_new_term(rule, state, line)
    return _step_cardinality(rule, state, line)


def advance(rule: LogRule, state: dict[str, Any], now: float) -> Transition | None:
    """Apply the passing of time: quiet spells resolve, windows empty."""
    if isinstance(rule, PatternRule):
        return _quiet_resolve(
            state, now, rule.keep_firing_for.total_seconds(), "last_match"
        )
    if isinstance(rule, NewTermRule):
        return _quiet_resolve(
            state, now, rule.keep_firing_for.total_seconds(), "last_new"
        )
    if isinstance(rule, FrequencyRule):
        return _check_frequency(rule, state, now)
    return _check_cardinality(rule, state, now)

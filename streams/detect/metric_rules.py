"""Metric rule evaluation: one sample, or the passing of time, against one rule.

Each evaluator keeps its state for one series in a JSON-compatible dict, so
the detect stage can store it in a table and resume it after a restart.
"""

from __future__ import annotations

from typing import Any

from schemas.rules import (
    AbsenceRule,
    AnomalyRule,
    BurnRateRule,
    ChangeRule,
    MetricRule,
    ThresholdRule,
)
from streams.detect.anomaly import AnomalyDetector
from streams.detect.hold import HoldState, Transition, hold


def _hold_state(state: dict[str, Any]) -> HoldState:
    return HoldState.from_json(state.get("hold", {}))


def _save(state: dict[str, Any], hold_state: HoldState) -> None:
    state["hold"] = hold_state.to_json()


def _trim(samples: list[list[float]], horizon: float) -> list[list[float]]:
    return [s for s in samples if s[0] > horizon]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def step_threshold(
    rule: ThresholdRule, state: HoldState, at: float, value: float
) -> Transition | None:
    """Apply one sample to a threshold rule's state in place."""
    if state.last_at is not None and at <= state.last_at:
        return None
    state.last_at = at
    return hold(
        state,
        at,
        rule.breached(value),
        rule.for_.total_seconds(),
        rule.keep_firing_for.total_seconds(),
    )


def _step_change(
    rule: ChangeRule, state: dict[str, Any], at: float, value: float
) -> Transition | None:
    window_s = rule.window.total_seconds()
    reference_s = rule.reference.total_seconds()
    state.setdefault("first_at", at)
    samples = _trim(
        [*state.get("samples", []), [at, value]], at - window_s - reference_s
    )
    state["samples"] = samples
    if at - state["first_at"] < window_s + reference_s:
        return None
    current = [v for t, v in samples if t > at - window_s]
    reference = [v for t, v in samples if t <= at - window_s]
    if len(current) < rule.min_samples or len(reference) < rule.min_samples:
        return None
    current_mean = _mean(current) or 0.0
    reference_mean = _mean(reference) or 0.0
    if reference_mean == 0:
        ratio = float("inf") if current_mean > 0 else 1.0
    else:
        ratio = current_mean / reference_mean
    up = ratio >= rule.ratio
    down = ratio <= 1 / rule.ratio
    breached = {"up": up, "down": down, "both": up or down}[rule.direction]
    hold_state = _hold_state(state)
    transition = hold(
        hold_state, at, breached, 0.0, rule.keep_firing_for.total_seconds()
    )
    _save(state, hold_state)
    if transition is None:
        return None
    annotations = {"ratio": f"{ratio:.3g}", "reference_mean": f"{reference_mean:.6g}"}
    return Transition(
        transition.status, transition.starts_at, transition.at, annotations
    )


def _step_absence(
    rule: AbsenceRule, state: dict[str, Any], at: float
) -> Transition | None:
    state.setdefault("first_seen", at)
    times = [*state.get("times", []), at][-rule.min_samples :]
    state["times"] = times
    return _check_absence(rule, state, at)


def _check_absence(
    rule: AbsenceRule, state: dict[str, Any], now: float
) -> Transition | None:
    window_s = rule.window.total_seconds()
    times: list[float] = state.get("times", [])
    first_seen = float(state.get("first_seen", now))
    if len(times) >= rule.min_samples:
        absent_since = times[0] + window_s
    else:
        absent_since = first_seen + window_s
    absent = now >= absent_since
    hold_state = _hold_state(state)
    transition = hold(
        hold_state,
        now,
        absent,
        0.0,
        rule.keep_firing_for.total_seconds(),
        breach_started=absent_since,
    )
    _save(state, hold_state)
    if transition is None:
        return None
    seen = len([t for t in times if t > now - window_s])
    annotations = {"samples_in_window": str(seen), "min_samples": str(rule.min_samples)}
    return Transition(
        transition.status, transition.starts_at, transition.at, annotations
    )


def _run_anomaly(
    rule: AnomalyRule, state: dict[str, Any], samples: list[list[float]]
) -> list[Transition]:
    """Score a run of samples with the series' detector, restored once per run.

    The detector's state is tens of kilobytes of JSON, so it is decoded and
    encoded once per batch, not once per sample. A sample the detector
    rejects (a repeated timestamp) is skipped.
    """
    stored = state.get("detector")
    detector = AnomalyDetector.from_json(stored) if stored else AnomalyDetector()
    hold_state = _hold_state(state)
    transitions = []
    for at, value in samples:
        try:
            score = detector.update(at, value)
        except ValueError:
            continue
        keep_s = rule.keep_firing_for.total_seconds()
        transition = hold(hold_state, at, score >= rule.threshold, 0.0, keep_s)
        if transition is not None:
            annotations = {"score": f"{score:.3f}", "value": f"{value:g}"}
            transitions.append(
                Transition(
                    transition.status,
                    transition.starts_at,
                    transition.at,
                    annotations,
                )
            )
    state["detector"] = detector.to_json()
    _save(state, hold_state)
    return transitions


def _step_burn_rate(
    rule: BurnRateRule, state: dict[str, Any], at: float, value: float
) -> Transition | None:
    longest_s = max(w.long.total_seconds() for w in rule.windows)
    samples = _trim([*state.get("samples", []), [at, value]], at - longest_s)
    state["samples"] = samples
    budget = 1.0 - rule.objective
    burning = []
    for pair in rule.windows:
        long_mean = _mean([v for t, v in samples if t > at - pair.long.total_seconds()])
        short_mean = _mean(
            [v for t, v in samples if t > at - pair.short.total_seconds()]
        )
        if long_mean is None or short_mean is None:
            continue
        if long_mean / budget >= pair.factor and short_mean / budget >= pair.factor:
            burning.append(f"{pair.factor:g}x over {pair.long} and {pair.short}")
    hold_state = _hold_state(state)
    transition = hold(
        hold_state, at, bool(burning), 0.0, rule.keep_firing_for.total_seconds()
    )
    _save(state, hold_state)
    if transition is None:
        return None
    annotations = {"burning": "; ".join(burning)} if burning else {}
    return Transition(
        transition.status, transition.starts_at, transition.at, annotations
    )


def step(
    rule: MetricRule, state: dict[str, Any], at: float, value: float
) -> Transition | None:
    """Apply one sample, in event order, to one rule's state for a series."""
    if isinstance(rule, ThresholdRule):
        threshold_state = _hold_state(state)
        transition = step_threshold(rule, threshold_state, at, value)
        _save(state, threshold_state)
        if transition is None:
            return None
        annotations = {"value": f"{value:g}", "threshold": f"{rule.threshold:g}"}
        return Transition(
            transition.status, transition.starts_at, transition.at, annotations
        )
    if isinstance(rule, ChangeRule):
        return _step_change(rule, state, at, value)
    if isinstance(rule, AbsenceRule):
        return _step_absence(rule, state, at)
    if isinstance(rule, AnomalyRule):
        found = _run_anomaly(rule, state, [[at, value]])
        return found[0] if found else None
    return _step_burn_rate(rule, state, at, value)


def step_many(
    rule: MetricRule, state: dict[str, Any], samples: list[list[float]]
) -> list[Transition]:
    """Apply ordered samples of one series to one rule's state."""
    if isinstance(rule, AnomalyRule):
        return _run_anomaly(rule, state, samples)
    found = (step(rule, state, at, value) for at, value in samples)
    return [transition for transition in found if transition is not None]


def advance(rule: MetricRule, state: dict[str, Any], now: float) -> Transition | None:
    """Apply the passing of time to a rule that can change without samples."""
    if isinstance(rule, AbsenceRule):
        return _check_absence(rule, state, now)
    return None

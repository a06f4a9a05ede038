"""Detection rules: threshold steps, log matching, fingerprints and alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from factories import T0, at, make_rule, make_sample

from schemas.records import AlertStatus, LogLine
from schemas.rules import PatternRule, ThresholdRule
from streams.detect.hold import HoldState, Transition
from streams.detect.metric_rules import step_threshold
from streams.detect.rules import build_alert, fingerprint, match_line, matches

LABELS = {"service": "api", "host": "node-1", "metric": "cpu_utilization"}


def feed(
    rule: ThresholdRule, state: HoldState, samples: Sequence[tuple[float, float]]
) -> list[Transition | None]:
    """Apply (seconds, value) samples in order and return every transition."""
    transitions = []
    for s, v in samples:
        sample = make_sample(s, v)
        transitions.append(
            step_threshold(rule, state, sample.at.timestamp(), sample.value)
        )
    return transitions


# step_threshold


def test_threshold_fires_once_for_has_held() -> None:
    rule = make_rule(for_=timedelta(minutes=5))
    transitions = feed(rule, HoldState(), [(0, 95), (120, 95), (300, 95)])

    assert transitions[2] == Transition(
        AlertStatus.FIRING, T0.timestamp(), at(300).timestamp()
    )


def test_threshold_silent_before_for_has_held() -> None:
    rule = make_rule(for_=timedelta(minutes=5))
    transitions = feed(rule, HoldState(), [(0, 95), (120, 95), (299, 95)])

    assert transitions == [None, None, None]


def test_threshold_without_for_fires_on_first_breach() -> None:
    rule = make_rule(for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 95)])

    assert transitions[0] == Transition(
        AlertStatus.FIRING, T0.timestamp(), T0.timestamp()
    )


def test_threshold_fires_once_while_breaching() -> None:
    rule = make_rule(for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 95), (60, 96), (120, 97)])

    assert transitions[1:] == [None, None]


def test_threshold_bound_is_exclusive() -> None:
    rule = make_rule(for_=timedelta(0), threshold=90.0)
    transitions = feed(rule, HoldState(), [(0, 90)])

    assert transitions == [None]


def test_threshold_resolves_at_first_clear_sample() -> None:
    rule = make_rule(for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 95), (60, 95), (120, 50)])

    assert transitions[2] == Transition(
        AlertStatus.RESOLVED, T0.timestamp(), at(120).timestamp()
    )


def test_threshold_resolve_clears_state() -> None:
    rule = make_rule(for_=timedelta(0))
    state = HoldState()
    feed(rule, state, [(0, 95), (60, 50)])

    assert state == HoldState(
        pending_since=None, firing=False, last_at=at(60).timestamp()
    )


def test_clear_sample_while_pending_causes_nothing() -> None:
    rule = make_rule(for_=timedelta(minutes=5))
    transitions = feed(rule, HoldState(), [(0, 95), (60, 50)])

    assert transitions == [None, None]


def test_clear_sample_restarts_the_for_period() -> None:
    rule = make_rule(for_=timedelta(minutes=5))
    samples = [(0, 95), (200, 50), (240, 95), (400, 95), (540, 95)]
    transitions = feed(rule, HoldState(), samples)

    assert transitions[:4] == [None, None, None, None]
    assert transitions[4] == Transition(
        AlertStatus.FIRING, at(240).timestamp(), at(540).timestamp()
    )


def test_sample_at_last_applied_time_is_ignored() -> None:
    rule = make_rule(for_=timedelta(0))
    state = HoldState()
    feed(rule, state, [(0, 95)])
    before = HoldState(**state.to_json())

    transitions = feed(rule, state, [(0, 50)])

    assert transitions == [None]
    assert state == before


def test_sample_before_last_applied_is_ignored() -> None:
    rule = make_rule(for_=timedelta(0))
    state = HoldState()
    feed(rule, state, [(60, 95)])
    before = HoldState(**state.to_json())

    transitions = feed(rule, state, [(30, 50)])

    assert transitions == [None]
    assert state == before


def test_redelivered_batch_changes_nothing() -> None:
    rule = make_rule(for_=timedelta(minutes=1))
    state = HoldState()
    batch = [(0, 95), (60, 95), (120, 50)]
    first = feed(rule, state, batch)
    second = feed(rule, state, batch)

    assert [t.status for t in first if t] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    assert second == [None, None, None]


def test_below_rule_fires_under_threshold() -> None:
    rule = make_rule(op="below", threshold=0.95, for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 0.9)])

    assert transitions[0] is not None
    assert transitions[0].status is AlertStatus.FIRING


def test_below_rule_ignores_values_above() -> None:
    rule = make_rule(op="below", threshold=0.95, for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 0.99)])

    assert transitions == [None]


def test_below_rule_resolves_when_value_recovers() -> None:
    rule = make_rule(op="below", threshold=0.95, for_=timedelta(0))
    transitions = feed(rule, HoldState(), [(0, 0.5), (60, 0.99)])

    assert transitions[1] is not None
    assert transitions[1].status is AlertStatus.RESOLVED


def test_state_round_trips_through_json() -> None:
    state = HoldState(pending_since=10.0, firing=True, last_at=20.0)

    assert HoldState.from_json(state.to_json()) == state


def test_state_from_empty_json_is_fresh() -> None:
    assert HoldState.from_json({}) == HoldState()


# matches and match_line


def test_selector_requires_every_label() -> None:
    assert matches({"service": "api", "host": "node-1"}, LABELS)
    assert not matches({"service": "api", "host": "node-2"}, LABELS)
    assert not matches({"zone": "a"}, LABELS)


def test_empty_selector_matches_any_labels() -> None:
    assert matches({}, LABELS)


def pattern_rule(**overrides: Any) -> PatternRule:
    fields: dict[str, Any] = {"name": "kernel_fatal", "regex": "(?i)kernel panic"}
    fields.update(overrides)
    return PatternRule(**fields)


def line(message: str, level: str = "error") -> LogLine:
    return LogLine(at=T0, message=message, level=level)


def test_match_line_searches_whole_message() -> None:
    assert match_line(pattern_rule(), line("boot: Kernel Panic - not syncing"))


def test_match_line_rejects_other_message() -> None:
    assert not match_line(pattern_rule(), line("kernel: eth0 link up"))


def test_match_line_rejects_level_not_listed() -> None:
    rule = pattern_rule(levels=["error", "fatal"])

    assert not match_line(rule, line("kernel panic", level="warning"))


def test_match_line_levels_ignore_case() -> None:
    rule = pattern_rule(levels=["Error"])

    assert match_line(rule, line("kernel panic", level="ERROR"))


def test_match_line_without_levels_accepts_any_level() -> None:
    assert match_line(pattern_rule(), line("kernel panic", level="debug"))


# fingerprint and build_alert


def test_fingerprint_ignores_label_order() -> None:
    reordered = dict(reversed(list(LABELS.items())))

    assert fingerprint("cpu_high", LABELS) == fingerprint("cpu_high", reordered)


def test_fingerprint_differs_by_rule() -> None:
    assert fingerprint("cpu_high", LABELS) != fingerprint("memory_high", LABELS)


def test_fingerprint_differs_by_label_value() -> None:
    other = {**LABELS, "host": "node-2"}

    assert fingerprint("cpu_high", LABELS) != fingerprint("cpu_high", other)


FIRING = Transition(AlertStatus.FIRING, T0.timestamp(), at(300).timestamp())
RESOLVED = Transition(AlertStatus.RESOLVED, T0.timestamp(), at(600).timestamp())


def test_event_id_stable_for_same_transition() -> None:
    rule = make_rule()
    first = build_alert(rule, LABELS, FIRING, {"value": "95"})
    second = build_alert(rule, dict(reversed(LABELS.items())), FIRING, {"value": "97"})

    assert first.event_id == second.event_id


def test_event_id_differs_between_firing_and_resolve() -> None:
    rule = make_rule()
    firing = build_alert(rule, LABELS, FIRING, {})
    resolved = build_alert(rule, LABELS, RESOLVED, {})

    assert firing.event_id != resolved.event_id


def test_event_id_differs_for_a_new_breach() -> None:
    rule = make_rule()
    later = Transition(AlertStatus.FIRING, at(900).timestamp(), at(1200).timestamp())

    first = build_alert(rule, LABELS, FIRING, {})
    second = build_alert(rule, LABELS, later, {})

    assert first.event_id != second.event_id


def test_annotations_do_not_change_fingerprint() -> None:
    rule = make_rule()
    first = build_alert(rule, LABELS, FIRING, {"value": "95"})
    second = build_alert(rule, LABELS, FIRING, {"value": "99", "extra": "x"})

    assert first.fingerprint == second.fingerprint


def test_rule_labels_change_fingerprint() -> None:
    plain = build_alert(make_rule(), LABELS, FIRING, {})
    labelled = build_alert(make_rule(labels={"team": "ml"}), LABELS, FIRING, {})

    assert plain.fingerprint != labelled.fingerprint


def test_alert_groups_by_fingerprint() -> None:
    alert = build_alert(make_rule(), LABELS, FIRING, {})

    assert alert.group_key == alert.fingerprint


def test_alert_labels_add_rule_labels_and_alertname() -> None:
    alert = build_alert(make_rule(labels={"team": "ml"}), LABELS, FIRING, {})

    assert alert.labels == {**LABELS, "team": "ml", "alertname": "cpu_high"}


def test_firing_alert_times() -> None:
    alert = build_alert(make_rule(), LABELS, FIRING, {})

    assert alert.starts_at == T0
    assert alert.at == at(300)
    assert alert.ends_at is None


def test_resolved_alert_ends_at_resolve_time() -> None:
    alert = build_alert(make_rule(), LABELS, RESOLVED, {})

    assert alert.ends_at == at(600)


def test_summary_defaults_to_rule_name() -> None:
    alert = build_alert(make_rule(summary=""), LABELS, FIRING, {})

    assert alert.annotations["summary"] == "cpu_high"


def test_alert_carries_rule_settings() -> None:
    rule = make_rule(auto_resolve=True)
    alert = build_alert(rule, LABELS, FIRING, {})

    assert alert.auto_resolve is True
    assert alert.severity is rule.severity
    assert alert.rule == "cpu_high"


def test_event_key_separates_alerts_at_same_time() -> None:
    rule = make_rule()
    first = build_alert(rule, LABELS, FIRING, {}, event_key="17:0")
    second = build_alert(rule, LABELS, FIRING, {}, event_key="17:1")

    assert first.event_id != second.event_id
    assert first.fingerprint == second.fingerprint


def test_event_key_stable_for_redelivered_input() -> None:
    rule = make_rule()
    first = build_alert(rule, LABELS, FIRING, {"line": "a"}, event_key="17:0")
    second = build_alert(rule, LABELS, FIRING, {"line": "a"}, event_key="17:0")

    assert first.event_id == second.event_id

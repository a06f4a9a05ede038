"""Runbook decisions: triggers, rate limit, circuit breaker, slots, recovery."""

from __future__ import annotations

from typing import Any

import pytest
from factories import make_event

from schemas.records import EventKind, Severity
from schemas.runbooks import Runbook, Safety
from streams.runbooks.engine import (
    RunSummary,
    Slots,
    admit,
    recovery_of,
    run_id_of,
    should_retry,
    target_of,
    trigger_matches,
    waits_end,
)

NOTIFY = {"type": "notify", "receivers": ["pager"], "message": "hi"}


def runbook(**overrides: Any) -> Runbook:
    fields: dict[str, Any] = {
        "name": "restart",
        "owner": "ml",
        "trigger": {"labels": {"team": "ml"}},
        "steps": [{"name": "tell", "action": NOTIFY}],
        "safety": {
            "target_label": "host",
            "rate_limit": {"max_runs": 3, "window": "1h"},
            "circuit_breaker": {"max_consecutive_failures": 2, "cooldown": "10m"},
        },
    }
    fields.update(overrides)
    return Runbook.model_validate(fields)


def run(started_s: float, status: str, target: str = "h1") -> RunSummary:
    return RunSummary(f"r{started_s}", "restart", target, started_s, status)


def test_trigger_matches_labels() -> None:
    event = make_event(labels={"team": "ml", "host": "h1"})

    assert trigger_matches(runbook(), event)


def test_trigger_rejects_other_labels() -> None:
    assert not trigger_matches(runbook(), make_event(labels={"team": "web"}))


def test_trigger_severity_listed() -> None:
    book = runbook(trigger={"labels": {}, "severity": ["critical"]})

    assert not trigger_matches(book, make_event(severity=Severity.HIGH))
    assert trigger_matches(book, make_event(severity=Severity.CRITICAL))


def test_trigger_rule_listed() -> None:
    book = runbook(trigger={"rules": ["disk_full"]})

    assert not trigger_matches(book, make_event(rule="cpu_high"))
    assert trigger_matches(book, make_event(rule="disk_full"))


def test_trigger_opened_only_by_default() -> None:
    event = make_event(labels={"team": "ml"}, kind=EventKind.ESCALATED)

    assert not trigger_matches(runbook(), event)


def test_trigger_on_escalation() -> None:
    book = runbook(trigger={"labels": {"team": "ml"}, "transitions": ["escalated"]})
    event = make_event(labels={"team": "ml"}, kind=EventKind.ESCALATED)

    assert trigger_matches(book, event)


def test_target_from_label() -> None:
    assert target_of(Safety(target_label="host"), {"host": "h1"}) == "h1"
    assert target_of(Safety(target_label="host"), {}) == ""
    assert target_of(Safety(), {"host": "h1"}) == ""


def test_run_id_same_for_redelivery() -> None:
    first = run_id_of(make_event(seq=1), "restart")

    assert first == run_id_of(make_event(seq=1), "restart")
    assert first != run_id_of(make_event(seq=2), "restart")


def test_admit_first_run() -> None:
    assert admit(runbook(), "h1", [], 0).allowed


def test_rate_limit_stops_at_maximum() -> None:
    history = [run(0, "succeeded"), run(10, "succeeded"), run(20, "succeeded")]

    decision = admit(runbook(), "h1", history, 30)

    assert not decision.allowed
    assert decision.status == "rate_limited"
    assert decision.notify_owner


def test_rate_limit_notifies_owner_once() -> None:
    history = [run(0, "succeeded"), run(10, "succeeded"), run(20, "succeeded")]
    history.append(run(25, "rate_limited"))

    decision = admit(runbook(), "h1", history, 30)

    assert decision.status == "rate_limited"
    assert not decision.notify_owner


def test_rate_limit_window_slides() -> None:
    history = [run(0, "succeeded"), run(10, "succeeded"), run(20, "succeeded")]

    assert admit(runbook(), "h1", history, 3600.5).allowed


def test_rate_limit_per_target() -> None:
    history = [run(0, "succeeded"), run(10, "succeeded"), run(20, "succeeded")]

    assert admit(runbook(), "h2", history, 30).allowed


def test_denied_runs_do_not_count() -> None:
    history = [run(0, "succeeded"), run(10, "rate_limited"), run(20, "circuit_open")]

    assert admit(runbook(), "h1", history, 30).allowed


def test_breaker_opens_after_consecutive_failures() -> None:
    history = [run(0, "succeeded"), run(10, "failed"), run(20, "timed_out")]

    decision = admit(runbook(), "h1", history, 30)

    assert decision.status == "circuit_open"
    assert decision.notify_owner


def test_breaker_success_resets_count() -> None:
    history = [run(0, "failed"), run(10, "succeeded"), run(20, "failed")]
    book = runbook(safety={"target_label": "host", "rate_limit": {"max_runs": 10}})

    assert admit(book, "h1", history, 30).allowed


def test_breaker_allows_trial_after_cooldown() -> None:
    history = [run(0, "failed"), run(10, "failed")]

    assert admit(runbook(), "h1", history, 10 + 600).allowed


def test_breaker_one_trial_at_a_time() -> None:
    history = [run(0, "failed"), run(10, "failed"), run(700, "running")]

    decision = admit(runbook(), "h1", history, 710)

    assert decision.status == "circuit_open"


def test_slots_limit_per_runbook() -> None:
    slots = Slots()
    safety = Safety(max_concurrent=2, max_concurrent_per_target=2)

    assert slots.try_acquire("a", "restart", "h1", safety)
    assert slots.try_acquire("b", "restart", "h2", safety)
    assert not slots.try_acquire("c", "restart", "h3", safety)


def test_slots_limit_per_target() -> None:
    slots = Slots()
    safety = Safety(max_concurrent=5, max_concurrent_per_target=1)

    assert slots.try_acquire("a", "restart", "h1", safety)
    assert not slots.try_acquire("b", "restart", "h1", safety)
    assert slots.try_acquire("c", "restart", "h2", safety)


def test_slots_release_frees() -> None:
    slots = Slots()
    safety = Safety()
    slots.try_acquire("a", "restart", "h1", safety)

    slots.release("a")

    assert slots.try_acquire("b", "restart", "h1", safety)


def test_slots_other_runbook_independent() -> None:
    slots = Slots()
    slots.try_acquire("a", "restart", "h1", Safety())

    assert slots.try_acquire("b", "drain", "h1", Safety())


@pytest.mark.parametrize(
    ("attempt", "outcome", "expected"),
    [
        (1, "failed", True),
        (2, "timed_out", True),
        (3, "failed", False),
        (1, "succeeded", False),
        (1, "expired", False),
    ],
)
def test_should_retry(attempt: int, outcome: str, expected: bool) -> None:
    step = runbook(steps=[{"name": "tell", "action": NOTIFY, "retries": 2}]).steps[0]

    assert should_retry(step, attempt, outcome) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", "resume"),
        ("awaiting_approval", "resume"),
        ("running", "interrupt"),
        ("succeeded", "none"),
        ("expired", "none"),
    ],
)
def test_recovery_of(status: str, expected: str) -> None:
    assert recovery_of(status) == expected


def test_wait_ends_on_rule_resolve() -> None:
    event = make_event(kind=EventKind.ALERT_RESOLVED, rule="cpu_high")

    assert waits_end("alert_resolved", "cpu_high", event)
    assert not waits_end("alert_resolved", "disk_full", event)
    assert not waits_end("incident_resolved", None, event)


def test_wait_ends_on_incident_resolve() -> None:
    event = make_event(kind=EventKind.RESOLVED)

    assert waits_end("incident_resolved", None, event)


def test_rate_limit_notifies_once_out_of_order() -> None:
    history = [run(0, "succeeded"), run(10, "succeeded"), run(90, "succeeded")]
    history.append(run(20, "rate_limited"))

    decision = admit(runbook(), "h1", history, 30)

    assert decision.status == "rate_limited"
    assert not decision.notify_owner


def test_rate_limit_notifies_again_next_window() -> None:
    history = [run(4000, "succeeded"), run(4010, "succeeded"), run(4020, "succeeded")]
    history.append(run(20, "rate_limited"))

    decision = admit(runbook(), "h1", history, 4030)

    assert decision.status == "rate_limited"
    assert decision.notify_owner

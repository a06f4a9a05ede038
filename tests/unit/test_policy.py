"""Escalation plans: who hears of each transition, and when the next level is due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import T0, make_event

from schemas.config import Config, EscalationLevel
from schemas.records import EventKind, IncidentEvent, IncidentState
from streams.escalate.policy import (
    CONSOLE,
    Plan,
    due_escalation,
    message_updates,
    plan_for,
    policy_levels,
    receivers_for,
)

OPENED_S = T0.timestamp()

CONFIG = Config.model_validate(
    {
        "policies": {
            "default": {
                "levels": [
                    {"delay": "0s", "targets": ["slack-oncall", "pagerduty-primary"]},
                    {"delay": "15m", "targets": ["secondary"]},
                    {"delay": "30m", "targets": ["pagerduty-primary", "manager"]},
                ]
            }
        },
        "receivers": {
            "slack-oncall": {"type": "slack", "channel": "#oncall"},
            "pagerduty-primary": {"type": "pagerduty"},
            "secondary": {"type": "console"},
            "manager": {"type": "console"},
        },
    }
)
LEVELS = policy_levels(CONFIG, "default")


def opened_plan() -> Plan:
    """Return the plan of a just-opened incident, with level 0 notified."""
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, LEVELS)
    receivers_for(plan, opened)
    return plan


def escalated(level: int) -> IncidentEvent:
    return make_event(kind=EventKind.ESCALATED, seq=level + 1, level=level)


# policy_levels


def test_configured_policy_levels_returned() -> None:
    assert policy_levels(CONFIG, "default") == CONFIG.policies["default"].levels


def test_missing_policy_falls_back_to_console() -> None:
    levels = policy_levels(CONFIG, "no-such-policy")

    assert levels == [EscalationLevel(delay=timedelta(0), targets=[CONSOLE])]


def test_console_fallback_notifies_console_on_open() -> None:
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, policy_levels(Config(), "default"))

    assert receivers_for(plan, opened) == [CONSOLE]
    assert plan.next_due is None


# plan_for and receivers_for


def test_plan_starts_at_level_zero() -> None:
    plan = plan_for(make_event(kind=EventKind.OPENED), LEVELS)

    assert plan.level == 0
    assert plan.notified == []


def test_plan_schedules_first_escalation() -> None:
    plan = plan_for(make_event(kind=EventKind.OPENED), LEVELS)

    assert plan.next_due == OPENED_S + 900


def test_opened_notifies_level_zero_targets() -> None:
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, LEVELS)

    assert receivers_for(plan, opened) == ["slack-oncall", "pagerduty-primary"]


def test_escalated_notifies_its_level() -> None:
    plan = opened_plan()

    assert receivers_for(plan, escalated(1)) == ["secondary"]
    assert plan.level == 1


def test_escalated_schedules_following_level() -> None:
    plan = opened_plan()
    receivers_for(plan, escalated(1))

    assert plan.next_due == OPENED_S + 1800


def test_last_level_leaves_nothing_due() -> None:
    plan = opened_plan()
    receivers_for(plan, escalated(1))
    receivers_for(plan, escalated(2))

    assert plan.next_due is None


def test_escalated_past_last_level_notifies_nobody() -> None:
    plan = opened_plan()

    assert receivers_for(plan, escalated(3)) == []
    assert plan.level == 0


@pytest.mark.parametrize("kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED])
def test_follow_up_reaches_every_notified_receiver(kind: EventKind) -> None:
    plan = opened_plan()
    receivers_for(plan, escalated(1))
    receivers_for(plan, escalated(2))

    receivers = receivers_for(plan, make_event(kind=kind, seq=4))

    assert receivers == ["slack-oncall", "pagerduty-primary", "secondary", "manager"]


def test_follow_up_skips_levels_not_reached() -> None:
    plan = opened_plan()
    event = make_event(
        kind=EventKind.ACKNOWLEDGED, seq=2, state=IncidentState.ACKNOWLEDGED
    )

    assert receivers_for(plan, event) == ["slack-oncall", "pagerduty-primary"]


def test_acknowledged_clears_next_due() -> None:
    plan = opened_plan()
    receivers_for(plan, make_event(kind=EventKind.ACKNOWLEDGED, seq=2))

    assert plan.next_due is None


def test_resolved_clears_next_due() -> None:
    plan = opened_plan()
    receivers_for(plan, make_event(kind=EventKind.RESOLVED, seq=2))

    assert plan.next_due is None


@pytest.mark.parametrize(
    "kind",
    [EventKind.ALERT_ADDED, EventKind.ALERT_RESOLVED, EventKind.NOTIFIED],
)
def test_other_events_notify_nobody(kind: EventKind) -> None:
    plan = opened_plan()

    assert receivers_for(plan, make_event(kind=kind, seq=2)) == []
    assert plan.next_due == OPENED_S + 900


def test_redelivered_opened_keeps_reached_level() -> None:
    plan = opened_plan()
    receivers_for(plan, escalated(1))

    receivers_for(plan, make_event(kind=EventKind.OPENED))

    assert plan.level == 1
    assert plan.next_due == OPENED_S + 1800


def test_redelivered_escalated_keeps_reached_level() -> None:
    plan = opened_plan()
    receivers_for(plan, escalated(1))
    receivers_for(plan, escalated(2))

    receivers_for(plan, escalated(1))

    assert plan.level == 2
    assert plan.next_due is None


# due_escalation


def test_nothing_due_before_next_due() -> None:
    assert due_escalation(opened_plan(), OPENED_S + 899) is None


def test_next_level_due_at_next_due() -> None:
    assert due_escalation(opened_plan(), OPENED_S + 900) == 1


def test_next_level_still_due_later() -> None:
    assert due_escalation(opened_plan(), OPENED_S + 5000) == 1


def test_nothing_due_after_resolve() -> None:
    plan = opened_plan()
    receivers_for(plan, make_event(kind=EventKind.RESOLVED, seq=2))

    assert due_escalation(plan, OPENED_S + 5000) is None


# message_updates: Slack messages kept current on transitions to others

SLACK = {"slack-oncall"}


def updates_after(event: IncidentEvent, muted: bool = False) -> list[str]:
    """Apply `event` to a plan that notified level 0 and return its message updates."""
    plan = opened_plan()
    receivers = receivers_for(plan, event, muted)
    return message_updates(plan, event, receivers, SLACK, muted)


def test_escalation_updates_slack_message() -> None:
    assert updates_after(escalated(1)) == ["slack-oncall"]


def test_escalation_while_muted_updates_nothing() -> None:
    assert updates_after(escalated(1), muted=True) == []


def test_acknowledgement_to_slack_needs_no_update() -> None:
    ack = make_event(kind=EventKind.ACKNOWLEDGED, seq=2)

    # The acknowledgement reaches the Slack receiver itself.
    assert updates_after(ack) == []


def test_repeat_updates_no_message() -> None:
    repeated = make_event(kind=EventKind.REPEATED, seq=2)

    assert updates_after(repeated) == []


def test_unnotified_resolve_updates_nothing() -> None:
    plan = opened_plan()
    plan.send_resolved = False
    resolved = make_event(kind=EventKind.RESOLVED, seq=2)
    receivers = receivers_for(plan, resolved)

    assert message_updates(plan, resolved, receivers, SLACK) == []


def test_slack_never_notified_gets_no_update() -> None:
    plan = opened_plan()
    event = escalated(1)
    receivers = receivers_for(plan, event)

    assert message_updates(plan, event, receivers, {"slack-ml"}) == []

"""Route grouping, group_wait and send_resolved in the pure policy code."""

from __future__ import annotations

from datetime import timedelta

from factories import at, make_event

from schemas.config import Config, EscalationLevel
from schemas.records import EventKind
from streams.correlate.identity import alert_identity, group_key_for
from streams.escalate.policy import (
    Plan,
    hold_reason,
    plan_for,
    receivers_for,
    repeat_due,
)

LEVELS = [
    EscalationLevel(delay=timedelta(0), targets=["pager"]),
    EscalationLevel(delay=timedelta(minutes=10), targets=["lead"]),
]


def grouped_config() -> Config:
    return Config.model_validate(
        {
            "routes": [
                {"match": {"team": "db"}, "policy": "p", "group_by": ["cluster"]}
            ],
            "policies": {"p": {"levels": [{"targets": ["pager"]}]}},
            "receivers": {"pager": {"type": "console"}},
        }
    )


def test_group_by_shares_key_across_hosts() -> None:
    config = grouped_config()
    one = group_key_for(config, {"team": "db", "cluster": "a", "host": "1"}, "f1")
    two = group_key_for(config, {"team": "db", "cluster": "a", "host": "2"}, "f2")
    assert one == two


def test_group_by_separates_clusters() -> None:
    config = grouped_config()
    one = group_key_for(config, {"team": "db", "cluster": "a"}, "f1")
    two = group_key_for(config, {"team": "db", "cluster": "b"}, "f2")
    assert one != two


def test_unrouted_alert_is_its_own_group() -> None:
    assert group_key_for(grouped_config(), {"team": "web"}, "f1") == "f1"


def test_external_identity_uses_routes() -> None:
    labels = {"team": "db", "cluster": "a", "host": "1"}
    fingerprint, group_key = alert_identity("http", labels, grouped_config())
    assert group_key != fingerprint


def test_group_wait_leaves_opening_unnotified() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS, delays_s=[120.0, 720.0])
    assert receivers_for(plan, event) == []
    assert plan.next_due == event.opened_at.timestamp() + 120.0


def test_level_zero_reached_after_group_wait() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS, delays_s=[120.0, 720.0])
    receivers_for(plan, event)
    escalated = make_event(kind=EventKind.ESCALATED, level=0)
    assert receivers_for(plan, escalated) == ["pager"]


def test_resolve_before_group_wait_notifies_nobody() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS, delays_s=[120.0, 720.0])
    receivers_for(plan, event)
    assert receivers_for(plan, make_event(kind=EventKind.RESOLVED)) == []


def test_send_resolved_off_skips_resolve() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS)
    plan.send_resolved = False
    assert receivers_for(plan, event) == ["pager"]
    assert receivers_for(plan, make_event(kind=EventKind.RESOLVED)) == []


def test_repeat_due_after_interval() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS)
    plan.repeat_interval_s = 3600.0
    receivers_for(plan, event)
    opened = event.at.timestamp()
    assert not repeat_due(plan, opened + 3599)
    assert repeat_due(plan, opened + 3600)


def test_repeat_notifies_every_paged_receiver() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS)
    plan.repeat_interval_s = 3600.0
    receivers_for(plan, event)
    repeated = make_event(kind=EventKind.REPEATED)
    assert receivers_for(plan, repeated) == ["pager"]
    assert plan.repeats == 1


def test_acknowledgement_stops_repeats() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS)
    plan.repeat_interval_s = 60.0
    receivers_for(plan, event)
    receivers_for(plan, make_event(kind=EventKind.ACKNOWLEDGED))
    assert not repeat_due(plan, event.at.timestamp() + 3600)
    assert receivers_for(plan, make_event(kind=EventKind.REPEATED)) == []


SILENCED = {"reason": "silenced", "silence_id": "s-1", "matchers": "service=api"}


def paged_plan() -> Plan:
    """Return a plan that paged "pager" at 0 s and repeats every hour."""
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS)
    plan.repeat_interval_s = 3600.0
    assert receivers_for(plan, event) == ["pager"]
    return plan


def test_repeat_held_while_silenced() -> None:
    plan = paged_plan()
    repeated = make_event(kind=EventKind.REPEATED, seq=2, at=at(3600))

    reason = hold_reason(plan, repeated, SILENCED)

    assert reason == SILENCED
    assert receivers_for(plan, repeated, muted=True) == []
    assert plan.repeats == 1
    assert plan.repeat_held


def test_held_repeat_waits_for_unmute() -> None:
    plan = paged_plan()
    repeated = make_event(kind=EventKind.REPEATED, seq=2, at=at(3600))
    receivers_for(plan, repeated, muted=True)

    assert not repeat_due(plan, at(3601).timestamp(), muted=True)
    assert repeat_due(plan, at(3601).timestamp(), muted=False)
    again = make_event(kind=EventKind.REPEATED, seq=3, at=at(3601))
    assert hold_reason(plan, again, None) is None
    assert receivers_for(plan, again) == ["pager"]
    assert not plan.repeat_held
    assert not repeat_due(plan, at(3602).timestamp())


def test_group_update_held_while_muted() -> None:
    plan = paged_plan()
    window = {"reason": "maintenance", "window": "db-upgrade"}
    update = make_event(kind=EventKind.GROUP_UPDATED, seq=2, at=at(60))

    assert hold_reason(plan, update, window) == window
    assert receivers_for(plan, update, muted=True) == []


def test_reminders_held_while_flapping() -> None:
    plan = paged_plan()
    plan.flapping = True
    for kind in (EventKind.REPEATED, EventKind.GROUP_UPDATED):
        event = make_event(kind=kind, seq=2, at=at(3600))
        assert hold_reason(plan, event, None) == {"reason": "flapping"}, kind
        assert receivers_for(plan, event, muted=True) == [], kind


def test_resolve_never_held() -> None:
    plan = paged_plan()
    inhibited = {"reason": "inhibited", "by": "fp-2", "alertname": "NodeDown"}
    for kind in (EventKind.ACKNOWLEDGED, EventKind.RESOLVED):
        event = make_event(kind=kind, seq=2, at=at(60))
        assert hold_reason(plan, event, inhibited) is None, kind
    resolved = make_event(kind=EventKind.RESOLVED, seq=3, at=at(60))
    assert receivers_for(plan, resolved, muted=True) == ["pager"]


def test_reminder_to_nobody_not_held() -> None:
    event = make_event(kind=EventKind.OPENED)
    plan = plan_for(event, LEVELS, delays_s=[120.0, 720.0])
    receivers_for(plan, event)
    update = make_event(kind=EventKind.GROUP_UPDATED, seq=2, at=at(60))

    assert hold_reason(plan, update, SILENCED) is None

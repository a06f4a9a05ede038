"""Group updates, minimum group size and flapping, on an injected timeline."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from factories import (
    GROUP_KEY,
    at,
    make_alert,
    make_command,
    make_event,
    make_resolved_alert,
)
from pydantic import ValidationError

from schemas.config import EscalationLevel
from schemas.grouping import Flapping
from schemas.records import Alert, AlertStatus, CommandKind, EventKind, IncidentState
from streams.correlate.grouping import GroupRules, next_check_at
from streams.correlate.lifecycle import (
    Group,
    Incident,
    Reopening,
    apply_alert,
    apply_command,
    resolve_timeout_at,
    trim_timeline,
)
from streams.escalate.policy import Plan, plan_for, receivers_for

POLICY = "default"
# Level 1 comes late enough to stay out of these timelines.
DELAYS_S = [0.0, 3600.0]
INTERVAL = GroupRules(group_interval_s=300.0)
# Flapping after more than 4 changes in 10 minutes; stable after 5 minutes
# without a change and at least 5 minutes after it began.
FLAPPING = GroupRules(
    flapping=Flapping(
        changes=4,
        window=timedelta(minutes=10),
        hold_down=timedelta(minutes=5),
        pause=timedelta(minutes=5),
    )
)


def firing(fingerprint: str, seconds: float) -> Alert:
    return make_alert(
        event_id=f"{fingerprint}-firing-{seconds:g}",
        fingerprint=fingerprint,
        at=at(seconds),
        starts_at=at(seconds),
        auto_resolve=True,
    )


def resolved(fingerprint: str, seconds: float) -> Alert:
    return make_resolved_alert(
        event_id=f"{fingerprint}-resolved-{seconds:g}",
        fingerprint=fingerprint,
        at=at(seconds),
        ends_at=at(seconds),
        starts_at=at(seconds - 1),
        auto_resolve=True,
    )


class Timeline:
    """Feed alerts and commands to one group and keep every event they caused."""

    def __init__(self, rules: GroupRules, delays_s: list[float] | None = None):
        self.rules = rules
        self.delays_s = delays_s or DELAYS_S
        self.group = Group(group_key=GROUP_KEY)
        self.incident: Incident | None = None
        self.events: list = []

    def alert(self, alert: Alert) -> list[EventKind]:
        current = self.incident
        incident, events = apply_alert(
            self.group, current, alert, POLICY, self.delays_s, rules=self.rules
        )
        self.incident = incident
        self.events.extend(events)
        return [event.kind for event in events]

    def check(self, seconds: float) -> list[EventKind]:
        assert self.incident is not None
        command = make_command(
            CommandKind.CHECK,
            seconds,
            incident_id=self.incident.incident_id,
            source="correlate",
        )
        events = apply_command(self.group, self.incident, command)
        self.events.extend(events)
        return [event.kind for event in events]


# Group interval


def test_change_within_interval_waits_for_update() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))

    kinds = timeline.alert(firing("fp-2", 60))

    assert kinds == [EventKind.ALERT_ADDED]
    assert timeline.incident is not None
    assert next_check_at(timeline.incident) == at(300)


def test_update_sent_once_interval_passes() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 60))
    timeline.alert(firing("fp-3", 120))

    assert timeline.check(299) == []
    kinds = timeline.check(300)

    assert kinds == [EventKind.GROUP_UPDATED]
    update = timeline.events[-1]
    assert update.details["added"] == ["fp-2", "fp-3"]
    assert update.details["firing"] == 3
    assert update.at == at(300)


def test_change_after_quiet_interval_updates_at_once() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))

    kinds = timeline.alert(firing("fp-2", 900))

    assert kinds == [EventKind.ALERT_ADDED, EventKind.GROUP_UPDATED]
    assert timeline.events[-1].at == at(900)


def test_late_update_stamped_when_due() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 60))

    # A replay applies the update only when the next record comes.
    kinds = timeline.alert(firing("fp-3", 2000))

    assert kinds[0] is EventKind.GROUP_UPDATED
    assert timeline.events[-3].at == at(300)


def test_group_clearing_resolves_at_once() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 10))

    assert timeline.alert(resolved("fp-1", 20)) == [EventKind.ALERT_RESOLVED]
    kinds = timeline.alert(resolved("fp-2", 30))

    assert kinds == [EventKind.ALERT_RESOLVED, EventKind.RESOLVED]
    assert timeline.incident is not None
    assert timeline.incident.pending_changes == []
    assert next_check_at(timeline.incident) is None


def test_change_during_group_wait_queues_nothing() -> None:
    timeline = Timeline(INTERVAL, delays_s=[120.0, 720.0])
    timeline.alert(firing("fp-1", 0))

    kinds = timeline.alert(firing("fp-2", 30))

    assert kinds == [EventKind.ALERT_ADDED]
    assert timeline.incident is not None
    assert timeline.incident.pending_changes == []


def test_zero_interval_updates_each_change() -> None:
    timeline = Timeline(GroupRules(group_interval_s=0.0))
    timeline.alert(firing("fp-1", 0))

    kinds = timeline.alert(firing("fp-2", 5))

    assert kinds == [EventKind.ALERT_ADDED, EventKind.GROUP_UPDATED]


def test_update_reaches_notified_receivers() -> None:
    timeline = Timeline(INTERVAL)
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 60))
    timeline.check(300)
    plan = Plan(
        incident_id="g1-1",
        group_key=GROUP_KEY,
        opened_at=at(0).timestamp(),
        levels=[],
        level=0,
        notified=["slack-oncall", "pagerduty-primary"],
    )

    receivers = receivers_for(plan, timeline.events[-1])

    assert receivers == ["slack-oncall", "pagerduty-primary"]


# Minimum group size


def test_group_below_minimum_opens_nothing() -> None:
    timeline = Timeline(GroupRules(min_alerts=3))

    assert timeline.alert(firing("fp-1", 0)) == []
    assert timeline.alert(firing("fp-2", 10)) == []

    assert timeline.incident is None
    assert sorted(timeline.group.pending) == ["fp-1", "fp-2"]


def test_group_reaching_minimum_opens_incident() -> None:
    timeline = Timeline(GroupRules(min_alerts=3))
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 10))

    kinds = timeline.alert(firing("fp-3", 20))

    assert kinds == [EventKind.OPENED, EventKind.ALERT_ADDED, EventKind.ALERT_ADDED]
    assert timeline.incident is not None
    assert sorted(timeline.incident.firing) == ["fp-1", "fp-2", "fp-3"]
    assert timeline.incident.opened_at == at(20)
    assert timeline.events[0].details["min_alerts"] == 3
    assert timeline.group.pending == {}


def test_opening_names_first_waiting_alert() -> None:
    timeline = Timeline(GroupRules(min_alerts=3))
    timeline.alert(firing("fp-1", 0))
    timeline.alert(firing("fp-2", 10))
    timeline.alert(resolved("fp-2", 20))
    timeline.alert(firing("fp-3", 30))

    timeline.alert(firing("fp-4", 40))

    named = [event.details["fingerprint"] for event in timeline.events]
    assert named == ["fp-1", "fp-3", "fp-4"]
    assert [event.kind for event in timeline.events] == [
        EventKind.OPENED,
        EventKind.ALERT_ADDED,
        EventKind.ALERT_ADDED,
    ]


def test_resolved_alert_leaves_waiting_group() -> None:
    timeline = Timeline(GroupRules(min_alerts=2))
    timeline.alert(firing("fp-1", 0))
    timeline.alert(resolved("fp-1", 30))

    kinds = timeline.alert(firing("fp-2", 40))

    assert kinds == []
    assert list(timeline.group.pending) == ["fp-2"]


def test_repeated_alert_counts_once_towards_minimum() -> None:
    timeline = Timeline(GroupRules(min_alerts=2))
    timeline.alert(firing("fp-1", 0))

    kinds = timeline.alert(firing("fp-1", 30))

    assert kinds == []
    assert timeline.incident is None


# Flapping


def flap(timeline: Timeline, fingerprint: str, start: float, changes: int) -> None:
    """Fire and resolve an alert alternately, one change every 30 seconds."""
    for index in range(changes):
        seconds = start + 30 * index
        if index % 2 == 0:
            timeline.alert(firing(fingerprint, seconds))
        else:
            timeline.alert(resolved(fingerprint, seconds))


def test_few_changes_are_not_flapping() -> None:
    timeline = Timeline(FLAPPING)

    flap(timeline, "fp-1", 0, 4)

    kinds = [event.kind for event in timeline.events]
    assert EventKind.FLAPPING not in kinds
    assert timeline.incident is not None
    assert timeline.incident.state is IncidentState.RESOLVED


def test_fifth_change_marks_flapping() -> None:
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 4)

    kinds = timeline.alert(firing("fp-1", 120))

    assert kinds == [EventKind.OPENED, EventKind.FLAPPING]
    assert timeline.events[-2].details["flapping"] is True
    flapping = timeline.events[-1]
    assert flapping.details["changes"] == 5
    assert "notifications held" in flapping.details["reason"]


def test_flapping_incident_stays_open_on_resolve() -> None:
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 5)

    kinds = timeline.alert(resolved("fp-1", 150))

    assert kinds == [EventKind.ALERT_RESOLVED]
    assert timeline.incident is not None
    assert timeline.incident.state is IncidentState.OPEN


def test_refire_while_flapping_reuses_incident() -> None:
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 6)
    incident_id = timeline.incident.incident_id if timeline.incident else None

    kinds = timeline.alert(firing("fp-1", 180))

    assert kinds == [EventKind.ALERT_ADDED]
    assert timeline.incident is not None
    assert timeline.incident.incident_id == incident_id


def test_stable_clear_alert_resolves() -> None:
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 6)
    # The last change, a resolve, came at 150 s: stable at 450 s.
    assert timeline.incident is not None
    assert next_check_at(timeline.incident) == at(450)

    assert timeline.check(449) == []
    kinds = timeline.check(450)

    assert kinds == [EventKind.STABILIZED, EventKind.RESOLVED]
    assert timeline.incident.state is IncidentState.RESOLVED
    assert timeline.events[-1].details["how"] == "alert cleared and stable"
    assert timeline.group.changes == {}


def test_stable_firing_alert_stays_open() -> None:
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 7)

    kinds = timeline.check(480)

    assert kinds == [EventKind.STABILIZED]
    assert timeline.incident is not None
    assert timeline.incident.state is IncidentState.OPEN
    assert timeline.incident.flapping == []


def test_pause_outlasts_short_hold_down() -> None:
    rules = GroupRules(
        flapping=Flapping(
            changes=2,
            window=timedelta(minutes=10),
            hold_down=timedelta(seconds=30),
            pause=timedelta(minutes=15),
        )
    )
    timeline = Timeline(rules)
    flap(timeline, "fp-1", 0, 3)
    assert timeline.incident is not None

    # Flapping began at 60 s: the 15-minute pause ends at 960 s.
    assert next_check_at(timeline.incident) == at(960)


def test_old_changes_leave_window() -> None:
    timeline = Timeline(FLAPPING)
    for index in range(6):
        seconds = 400 * index
        alert = firing("fp-1", seconds) if index % 2 == 0 else resolved("fp-1", seconds)
        timeline.alert(alert)

    kinds = [event.kind for event in timeline.events]
    assert EventKind.FLAPPING not in kinds
    assert len(timeline.group.changes["fp-1"]) <= 2


def held_plan() -> Plan:
    """Return a plan whose opening was held because its alert flapped."""
    timeline = Timeline(FLAPPING)
    flap(timeline, "fp-1", 0, 5)
    opened = [e for e in timeline.events if e.kind is EventKind.OPENED][-1]
    plan = plan_for(opened, [EscalationLevel(targets=["slack-oncall"])])
    plan.flapping = True
    assert receivers_for(plan, opened, muted=True) == []
    return plan


def test_flapping_plan_sends_nothing() -> None:
    plan = held_plan()

    for kind in (EventKind.RELEASED, EventKind.GROUP_UPDATED, EventKind.REPEATED):
        event = make_event(kind=kind, seq=9, at=at(200))
        assert receivers_for(plan, event) == [], kind
    assert plan.held


def test_stabilized_plan_notifies_held_level() -> None:
    plan = held_plan()
    event = make_event(
        kind=EventKind.STABILIZED, seq=9, at=at(480), details={"firing": 1}
    )

    receivers = receivers_for(plan, event)

    assert receivers == ["slack-oncall"]
    assert not plan.flapping
    assert not plan.held


def test_stabilized_clear_plan_pages_nobody() -> None:
    plan = held_plan()
    event = make_event(
        kind=EventKind.STABILIZED, seq=9, at=at(450), details={"firing": 0}
    )

    assert receivers_for(plan, event) == []
    assert not plan.flapping


def test_flapping_settings_validated() -> None:
    with pytest.raises(ValidationError, match="pause must be between 120s and 900s"):
        Flapping(pause=timedelta(seconds=60))
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        Flapping(changes=1)


def test_firing_status_change_counts() -> None:
    group = Group(group_key=GROUP_KEY)
    alert = firing("fp-1", 0)

    apply_alert(group, None, alert, POLICY, DELAYS_S, rules=FLAPPING)

    assert group.last_status["fp-1"] == AlertStatus.FIRING.value
    assert group.changes["fp-1"] == [at(0).timestamp()]


# Resolve timeout


def timed_out_incident() -> tuple[Group, Incident]:
    group = Group(group_key=GROUP_KEY)
    reopening = Reopening(resolve_timeout_s=3600.0)
    # One level only, so no escalation comes due with the timeout.
    incident, _ = apply_alert(group, None, firing("fp-1", 0), POLICY, [0.0], reopening)
    assert incident is not None
    return group, incident


def test_open_incident_resolves_on_timeout() -> None:
    group, incident = timed_out_incident()
    early = make_command(CommandKind.CHECK, 3599, source="correlate")
    due = make_command(CommandKind.CHECK, 3700, source="correlate")

    assert apply_command(group, incident, early) == []
    events = apply_command(group, incident, due)

    assert [event.kind for event in events] == [EventKind.RESOLVED]
    assert events[0].details["how"] == "timed out"
    assert events[0].at == at(3600)
    assert incident.resolved_by == "correlate"
    assert group.open_incident is None


def test_acknowledged_incident_also_times_out() -> None:
    group, incident = timed_out_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))

    events = apply_command(
        group, incident, make_command(CommandKind.CHECK, 3600, source="correlate")
    )

    assert [event.kind for event in events] == [EventKind.RESOLVED]


def test_timeout_off_by_default() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(group, None, firing("fp-1", 0), POLICY, DELAYS_S)
    assert incident is not None

    assert resolve_timeout_at(incident) is None


def test_resolve_timeout_before_flapping_end() -> None:
    group = Group(group_key=GROUP_KEY)
    reopening = Reopening(resolve_timeout_s=200.0)
    rules = FLAPPING
    incident = None
    for index in range(5):
        seconds = 30 * index
        alert = firing("fp-1", seconds) if index % 2 == 0 else resolved("fp-1", seconds)
        incident, _ = apply_alert(
            group, incident, alert, POLICY, [0.0], reopening, rules=rules
        )
    assert incident is not None
    assert incident.flapping_since is not None

    events = apply_command(
        group, incident, make_command(CommandKind.CHECK, 1000, source="correlate")
    )

    assert [event.kind for event in events] == [EventKind.RESOLVED]
    assert events[0].details["how"] == "timed out"
    assert events[0].at == at(320)


def test_min_alerts_counts_alerts_still_firing() -> None:
    timeline = Timeline(GroupRules(min_alerts=3))
    for index, fingerprint in enumerate(("a", "b", "c")):
        timeline.alert(firing(fingerprint, index))
    assert timeline.incident is not None
    person = make_command(
        CommandKind.RESOLVE, 60, incident_id=timeline.incident.incident_id
    )
    apply_command(timeline.group, timeline.incident, person)

    kinds = timeline.alert(firing("d", 120))

    assert kinds == [EventKind.OPENED]
    assert timeline.incident.incident_id.endswith("-2")


def test_cleared_alert_leaves_resolved_incident() -> None:
    timeline = Timeline(GroupRules(min_alerts=3))
    for index, fingerprint in enumerate(("a", "b", "c")):
        timeline.alert(firing(fingerprint, index))
    assert timeline.incident is not None
    person = make_command(
        CommandKind.RESOLVE, 60, incident_id=timeline.incident.incident_id
    )
    apply_command(timeline.group, timeline.incident, person)
    timeline.alert(resolved("a", 90))
    timeline.alert(resolved("b", 95))

    # Only c still fires, so d makes two: below the minimum of three.
    assert timeline.alert(firing("d", 120)) == []


def test_reopen_keeps_caught_up_events() -> None:
    group = Group(group_key=GROUP_KEY)
    reopening = Reopening(resolve_timeout_s=600.0)
    incident, _ = apply_alert(
        group, None, firing("fp-1", 0), POLICY, [0.0, 300.0], reopening
    )
    assert incident is not None

    events = apply_command(
        group,
        incident,
        make_command(CommandKind.REOPEN, 700, incident_id=incident.incident_id),
    )

    kinds = [event.kind for event in events]
    assert kinds == [EventKind.ESCALATED, EventKind.RESOLVED, EventKind.REOPENED]


def test_trim_timeline_keeps_opening_and_fits() -> None:
    stored = {
        "incident_id": "g1-1",
        "timeline": [
            {"seq": n, "kind": "note_added", "details": {"text": "x" * 1000}}
            for n in range(1, 101)
        ],
    }

    dropped = trim_timeline(stored, max_bytes=20_000)

    assert dropped > 0
    assert stored["timeline"][0]["seq"] == 1
    assert stored["timeline"][-1]["seq"] == 100
    assert len(json.dumps(stored)) <= 20_000
    assert stored["timeline_dropped"] == dropped

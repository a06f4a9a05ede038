"""The incident lifecycle: alerts and commands applied to groups and incidents."""

from __future__ import annotations

from factories import (
    GROUP_KEY,
    INCIDENT_ID,
    at,
    make_alert,
    make_command,
    make_resolved_alert,
)

from schemas.records import Alert, Command, CommandKind, EventKind, IncidentState
from streams.correlate.lifecycle import (
    Group,
    Incident,
    apply_alert,
    apply_command,
    catch_up,
)

POLICY = "default"
# Escalation levels 1 and 2 are due 10 and 30 minutes after opening.
DELAYS_S = [0.0, 600.0, 1800.0]


def start_incident(**alert_overrides: object) -> tuple[Group, Incident]:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(
        group, None, make_alert(**alert_overrides), POLICY, DELAYS_S
    )
    assert incident is not None
    return group, incident


def apply(group: Group, incident: Incident | None, alert: Alert) -> list[EventKind]:
    """Apply one alert and return the kinds of the events it caused."""
    _, events = apply_alert(group, incident, alert, POLICY, DELAYS_S)
    return [event.kind for event in events]


def second_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {"event_id": "alert-2", "fingerprint": "fp-2"}
    fields.update(overrides)
    return make_alert(**fields)


# Alerts


def test_firing_alert_opens_incident() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, events = apply_alert(group, None, make_alert(), POLICY, DELAYS_S)

    assert incident is not None
    assert incident.incident_id == f"{GROUP_KEY}-1"
    assert incident.state is IncidentState.OPEN
    assert [event.kind for event in events] == [EventKind.OPENED]


def test_opened_incident_is_group_open_incident() -> None:
    group, incident = start_incident()

    assert group.open_incident == incident.incident_id


def test_opened_event_records_policy_and_times() -> None:
    group = Group(group_key=GROUP_KEY)
    _, events = apply_alert(group, None, make_alert(), POLICY, DELAYS_S)
    opened = events[0]

    assert opened.seq == 1
    assert opened.details["policy"] == POLICY
    assert opened.opened_at == at(0)
    assert opened.started_at == at(-300)


def test_opened_incident_takes_title_from_summary() -> None:
    _, incident = start_incident()

    assert incident.title == "CPU above 90 %"


def test_redelivered_alert_is_ignored() -> None:
    group, incident = start_incident()

    assert apply(group, incident, make_alert()) == []
    assert incident.seq == 1


def test_redelivered_opening_alert_opens_nothing() -> None:
    group, _ = start_incident()

    assert apply(group, None, make_alert()) == []
    assert group.incidents_opened == 1


def test_second_fingerprint_adds_alert() -> None:
    group, incident = start_incident()

    assert apply(group, incident, second_alert()) == [EventKind.ALERT_ADDED]
    assert incident.firing == ["fp-1", "fp-2"]


def test_repeated_fingerprint_recorded_as_duplicate() -> None:
    group, incident = start_incident()
    again = make_alert(event_id="alert-1-again", at=at(30))

    assert apply(group, incident, again) == [EventKind.SUPPRESSED]
    assert incident.firing == ["fp-1"]
    details = incident.timeline[-1]["details"]
    assert details["reason"] == "duplicate"
    assert details["duplicate_of"] == INCIDENT_ID
    assert details["event_id"] == "alert-1-again"


def test_resolved_alert_records_alert_resolved() -> None:
    group, incident = start_incident()

    assert apply(group, incident, make_resolved_alert()) == [EventKind.ALERT_RESOLVED]
    assert incident.firing == []


def test_last_alert_cleared_resolves_when_rule_says_so() -> None:
    group, incident = start_incident(auto_resolve=True)
    resolved = make_resolved_alert(auto_resolve=True)

    kinds = apply(group, incident, resolved)

    assert kinds == [EventKind.ALERT_RESOLVED, EventKind.RESOLVED]
    assert incident.state is IncidentState.RESOLVED
    assert incident.resolved_by == "detect"


def test_auto_resolve_records_how() -> None:
    group, incident = start_incident(auto_resolve=True)
    _, events = apply_alert(
        group, incident, make_resolved_alert(auto_resolve=True), POLICY, DELAYS_S
    )

    assert events[-1].details == {"how": "alert cleared", "acknowledged": False}


def test_last_alert_cleared_stays_open_without_auto_resolve() -> None:
    group, incident = start_incident()

    apply(group, incident, make_resolved_alert())

    assert incident.state is IncidentState.OPEN


def test_auto_resolve_waits_for_every_fingerprint() -> None:
    group, incident = start_incident(auto_resolve=True)
    apply(group, incident, second_alert(auto_resolve=True))

    kinds = apply(group, incident, make_resolved_alert(auto_resolve=True))

    assert kinds == [EventKind.ALERT_RESOLVED]
    assert incident.state is IncidentState.OPEN


def test_resolved_alert_for_other_fingerprint_is_ignored() -> None:
    group, incident = start_incident()
    other = make_resolved_alert(event_id="alert-9-resolved", fingerprint="fp-9")

    assert apply(group, incident, other) == []


def test_resolved_alert_without_incident_is_ignored() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, events = apply_alert(group, None, make_resolved_alert(), POLICY, DELAYS_S)

    assert incident is None
    assert events == []


def test_alert_after_resolve_opens_second_incident() -> None:
    group, first = start_incident(auto_resolve=True)
    apply(group, first, make_resolved_alert(auto_resolve=True))
    assert group.open_incident is None

    again = make_alert(event_id="alert-3", at=at(900), starts_at=at(900))
    second, events = apply_alert(group, None, again, POLICY, DELAYS_S)

    assert second is not None
    assert second.incident_id == f"{GROUP_KEY}-2"
    assert [event.kind for event in events] == [EventKind.OPENED]
    assert group.open_incident == second.incident_id


def test_alert_on_resolved_incident_opens_new_one() -> None:
    group, first = start_incident()
    apply_command(group, first, make_command(CommandKind.RESOLVE, 60))

    again = make_alert(event_id="alert-3", at=at(900))
    second, _ = apply_alert(group, first, again, POLICY, DELAYS_S)

    assert second is not None
    assert second.incident_id == f"{GROUP_KEY}-2"
    assert first.state is IncidentState.RESOLVED


def test_event_seq_counts_from_one() -> None:
    group, incident = start_incident()
    _, added = apply_alert(group, incident, second_alert(), POLICY, DELAYS_S)
    events = apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))

    assert [added[0].seq, events[0].seq] == [2, 3]
    assert events[0].idempotency_key == f"{INCIDENT_ID}:3"


# Commands


def test_acknowledge_records_who_and_when() -> None:
    group, incident = start_incident()
    events = apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))

    assert [event.kind for event in events] == [EventKind.ACKNOWLEDGED]
    assert events[0].actor == "alice via slack"
    assert incident.state is IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_at == at(60)


def test_second_acknowledge_adds_no_event() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))

    events = apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 90))

    assert events == []
    assert incident.acknowledged_at == at(60)


def test_resolve_after_ack_records_acknowledgement() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))

    events = apply_command(group, incident, make_command(CommandKind.RESOLVE, 120))

    assert [event.kind for event in events] == [EventKind.RESOLVED]
    assert events[0].details == {"how": "by a person", "acknowledged": True}
    assert incident.state is IncidentState.RESOLVED
    assert incident.resolved_at == at(120)


def test_resolve_clears_group_open_incident() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))

    assert group.open_incident is None


def test_ack_after_resolve_is_ignored() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))

    events = apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 90))

    assert events == []
    assert incident.state is IncidentState.RESOLVED
    assert incident.acknowledged_at is None


def test_second_resolve_adds_no_event() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))

    assert apply_command(group, incident, make_command(CommandKind.RESOLVE, 90)) == []


def test_redelivered_command_is_ignored() -> None:
    group, incident = start_incident()
    command = make_command(CommandKind.ACKNOWLEDGE, 60)
    apply_command(group, incident, command)
    seq = incident.seq

    assert apply_command(group, incident, command) == []
    assert incident.seq == seq


def test_record_command_appends_event() -> None:
    group, incident = start_incident()
    command = make_command(
        CommandKind.RECORD,
        30,
        event_kind=EventKind.NOTIFIED,
        source="notify",
        details={"receiver": "slack-oncall"},
    )

    events = apply_command(group, incident, command)

    assert [event.kind for event in events] == [EventKind.NOTIFIED]
    assert events[0].details == {"receiver": "slack-oncall"}
    assert events[0].at == at(30)
    assert incident.state is IncidentState.OPEN


def test_record_command_defaults_to_notified() -> None:
    group, incident = start_incident()
    events = apply_command(group, incident, make_command(CommandKind.RECORD, 30))

    assert events[0].kind is EventKind.NOTIFIED


def test_redelivered_record_command_is_ignored() -> None:
    group, incident = start_incident()
    command = make_command(CommandKind.RECORD, 30, event_kind=EventKind.NOTIFIED)
    apply_command(group, incident, command)

    assert apply_command(group, incident, command) == []
    assert len(incident.timeline) == 2


def test_timeline_keeps_every_event() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 60))
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 120))

    kinds = [entry["kind"] for entry in incident.timeline]

    assert kinds == ["opened", "acknowledged", "resolved"]


# Escalation


def test_escalation_waits_for_due_time() -> None:
    _, incident = start_incident()

    assert catch_up(incident, at(599)) == []
    assert incident.level == 0


def test_escalation_reached_at_due_time() -> None:
    _, incident = start_incident()
    events = catch_up(incident, at(600))

    assert [event.kind for event in events] == [EventKind.ESCALATED]
    assert events[0].level == 1
    assert events[0].at == at(600)
    assert incident.level == 1


def test_late_catch_up_stamps_each_due_time() -> None:
    _, incident = start_incident()
    events = catch_up(incident, at(3600))

    assert [event.level for event in events] == [1, 2]
    assert [event.at for event in events] == [at(600), at(1800)]


def test_escalation_stops_at_last_level() -> None:
    _, incident = start_incident()
    catch_up(incident, at(86_400))

    assert incident.level == len(DELAYS_S) - 1


def test_escalation_never_repeats() -> None:
    _, incident = start_incident()
    catch_up(incident, at(700))

    assert catch_up(incident, at(800)) == []


def test_no_escalation_after_ack() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 100))

    assert catch_up(incident, at(3600)) == []
    assert incident.level == 0


def test_no_escalation_after_resolve() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 100))

    assert catch_up(incident, at(3600)) == []


def test_single_level_policy_never_escalates() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(group, None, make_alert(), POLICY, [0.0])
    assert incident is not None

    assert catch_up(incident, at(86_400)) == []


def test_escalate_command_catches_up() -> None:
    group, incident = start_incident()
    command = make_command(CommandKind.ESCALATE, 700, source="escalate", level=1)

    events = apply_command(group, incident, command)

    assert [(event.kind, event.level) for event in events] == [(EventKind.ESCALATED, 1)]


def test_early_escalate_command_changes_nothing() -> None:
    group, incident = start_incident()
    command = make_command(CommandKind.ESCALATE, 300, source="escalate", level=1)

    assert apply_command(group, incident, command) == []
    assert incident.level == 0


def test_late_ack_records_escalation_first() -> None:
    group, incident = start_incident()
    events = apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 700))

    kinds = [event.kind for event in events]

    assert kinds == [EventKind.ESCALATED, EventKind.ACKNOWLEDGED]
    assert events[0].at == at(600)


def test_alert_catches_up_due_escalations() -> None:
    group, incident = start_incident()

    kinds = apply(group, incident, second_alert(at=at(700)))

    assert kinds == [EventKind.ESCALATED, EventKind.ALERT_ADDED]


def test_escalation_delays_fixed_at_open() -> None:
    group, incident = start_incident()
    _, events = apply_alert(
        group, incident, second_alert(at=at(700)), POLICY, [0.0, 6000.0]
    )

    assert events[0].kind is EventKind.ESCALATED
    assert incident.level_delays_s == DELAYS_S


def escalate_now(seconds: float) -> Command:
    return make_command(
        CommandKind.ESCALATE,
        seconds,
        source="runbook",
        details={"now": True, "reason": "verification failed"},
    )


def test_escalate_now_moves_to_next_level() -> None:
    group, incident = start_incident()

    events = apply_command(group, incident, escalate_now(60))

    assert [event.kind for event in events] == [EventKind.ESCALATED]
    assert events[0].level == 1
    assert events[0].at == at(60)
    assert events[0].details["reason"] == "verification failed"


def test_escalate_now_skips_acknowledged_incident() -> None:
    group, incident = start_incident()
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 30))

    assert apply_command(group, incident, escalate_now(60)) == []
    assert incident.level == 0


def test_escalate_now_stops_at_last_level() -> None:
    group, incident = start_incident()
    apply_command(group, incident, escalate_now(60))
    apply_command(group, incident, escalate_now(70))

    assert apply_command(group, incident, escalate_now(80)) == []
    assert incident.level == 2


def test_plain_escalate_waits_for_due_level() -> None:
    group, incident = start_incident()
    command = make_command(CommandKind.ESCALATE, 60, source="escalate", level=1)

    assert apply_command(group, incident, command) == []

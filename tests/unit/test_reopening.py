"""Reopen window, recurrence links, notes and reopen commands in the lifecycle."""

from __future__ import annotations

from factories import GROUP_KEY, at, make_alert, make_command, make_resolved_alert

from schemas.records import Alert, CommandKind, EventKind, IncidentState
from streams.correlate.lifecycle import (
    DUPLICATES_RECORDED,
    Group,
    Incident,
    Reopening,
    apply_alert,
    apply_command,
    catch_up,
)

DELAYS_S = [0.0, 600.0]
REOPENING = Reopening(reopen_window_s=300.0, recurrence_window_s=3600.0)


def resolved_incident() -> tuple[Group, Incident]:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(
        group, None, make_alert(auto_resolve=True), "default", DELAYS_S, REOPENING
    )
    assert incident is not None
    apply_alert(group, incident, make_resolved_alert(auto_resolve=True), "p", DELAYS_S)
    assert incident.state is IncidentState.RESOLVED
    return group, incident


def fire_again(
    group: Group, incident: Incident, seconds: float
) -> tuple[Incident, list[EventKind]]:
    alert = make_alert(
        event_id=f"again-{seconds}", at=at(seconds), starts_at=at(seconds)
    )
    found, events = apply_alert(group, incident, alert, "default", DELAYS_S, REOPENING)
    assert found is not None
    return found, [e.kind for e in events]


def test_alert_inside_reopen_window_reopens() -> None:
    group, incident = resolved_incident()
    found, kinds = fire_again(group, incident, 60 + 300)
    assert found.incident_id == incident.incident_id
    assert kinds == [EventKind.REOPENED]
    assert found.state is IncidentState.OPEN
    assert group.open_incident == incident.incident_id


def test_reopened_incident_escalates_from_reopening() -> None:
    group, incident = resolved_incident()
    found, _ = fire_again(group, incident, 360)
    assert catch_up(found, at(360 + 599)) == []
    escalated = catch_up(found, at(360 + 600))
    assert [e.kind for e in escalated] == [EventKind.ESCALATED]


def test_alert_after_reopen_window_links_recurrence() -> None:
    group, incident = resolved_incident()
    found, kinds = fire_again(group, incident, 60 + 301)
    assert found.incident_id == f"{GROUP_KEY}-2"
    assert kinds == [EventKind.OPENED]
    assert found.recurrence_of == incident.incident_id


def test_alert_after_recurrence_window_is_unlinked() -> None:
    group, incident = resolved_incident()
    found, _ = fire_again(group, incident, 60 + 3601)
    assert found.recurrence_of is None


def test_note_kept_on_incident() -> None:
    group, incident = resolved_incident()
    note = make_command(CommandKind.NOTE, 70, details={"note": "rebooted"})
    events = apply_command(group, incident, note)
    assert [e.kind for e in events] == [EventKind.NOTE_ADDED]
    assert incident.notes[0]["note"] == "rebooted"

    found, kinds = fire_again(group, incident, 120)

    assert kinds == [EventKind.REOPENED]
    assert found.incident_id == incident.incident_id
    assert [n["note"] for n in found.notes] == ["rebooted"]


def late_firing(seconds: float, fingerprint: str = "fp-1") -> Alert:
    """Return a firing alert stamped `seconds` after T0, delivered late."""
    return make_alert(
        event_id=f"late-{fingerprint}-{seconds}",
        fingerprint=fingerprint,
        at=at(seconds),
        starts_at=at(seconds),
    )


def test_late_firing_without_window_is_stale() -> None:
    group, incident = resolved_incident()
    for seconds in (30, 60):
        alert = late_firing(seconds)
        found, events = apply_alert(group, incident, alert, "p", DELAYS_S, Reopening())

        assert found is incident
        assert [e.kind for e in events] == [EventKind.SUPPRESSED]
        assert events[0].details["reason"] == "stale"
        assert events[0].details["event_id"] == alert.event_id
        assert events[0].at == at(60)
    assert incident.state is IncidentState.RESOLVED
    assert group.open_incident is None
    assert group.incidents_opened == 1


def test_late_firing_with_window_is_stale() -> None:
    group, incident = resolved_incident()
    found, events = apply_alert(
        group, incident, late_firing(30), "p", DELAYS_S, REOPENING
    )
    assert found is incident
    assert [e.kind for e in events] == [EventKind.SUPPRESSED]
    assert incident.state is IncidentState.RESOLVED


def test_late_firing_after_person_resolve_is_stale() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(group, None, make_alert(), "p", DELAYS_S)
    assert incident is not None
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))
    assert incident.firing == ["fp-1"]

    found, events = apply_alert(
        group, incident, late_firing(45), "p", DELAYS_S, Reopening()
    )

    assert found is incident
    assert [e.kind for e in events] == [EventKind.SUPPRESSED]
    assert incident.state is IncidentState.RESOLVED


def test_late_firing_after_person_then_alert_resolve() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(group, None, make_alert(), "p", DELAYS_S)
    assert incident is not None
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))
    # The alert's own resolve arrives after the person's, ending at 90 s.
    _, cleared = apply_alert(
        group,
        incident,
        make_resolved_alert(at=at(90), ends_at=at(90)),
        "p",
        DELAYS_S,
        REOPENING,
    )
    assert [e.kind for e in cleared] == [EventKind.ALERT_RESOLVED]
    assert incident.firing == []

    found, events = apply_alert(
        group, incident, late_firing(75), "p", DELAYS_S, REOPENING
    )

    assert found is incident
    assert [e.kind for e in events] == [EventKind.SUPPRESSED]
    assert incident.state is IncidentState.RESOLVED


def test_new_alert_before_resolve_opens_recurrence() -> None:
    group, incident = resolved_incident()
    alert = late_firing(50, fingerprint="fp-2")

    found, events = apply_alert(group, incident, alert, "p", DELAYS_S, Reopening())

    assert found is not None
    assert [e.kind for e in events] == [EventKind.OPENED]
    assert found.incident_id == f"{GROUP_KEY}-2"
    assert found.recurrence_of == incident.incident_id
    assert incident.state is IncidentState.RESOLVED


def test_new_alert_before_resolve_reopens_in_window() -> None:
    group, incident = resolved_incident()
    alert = late_firing(50, fingerprint="fp-2")

    found, events = apply_alert(group, incident, alert, "p", DELAYS_S, REOPENING)

    assert found is incident
    assert [e.kind for e in events] == [EventKind.REOPENED]


def test_stale_reports_recorded_up_to_limit() -> None:
    group, incident = resolved_incident()
    recorded = 0
    for index in range(DUPLICATES_RECORDED + 3):
        alert = late_firing(index)
        _, events = apply_alert(group, incident, alert, "p", DELAYS_S, Reopening())
        recorded += len(events)
    assert recorded == DUPLICATES_RECORDED
    assert incident.state is IncidentState.RESOLVED


def test_reopen_command_reopens_resolved() -> None:
    group, incident = resolved_incident()
    events = apply_command(group, incident, make_command(CommandKind.REOPEN, 90))
    assert [e.kind for e in events] == [EventKind.REOPENED]
    assert incident.resolved_at is None


def test_reopen_command_on_open_incident_is_ignored() -> None:
    group = Group(group_key=GROUP_KEY)
    incident, _ = apply_alert(group, None, make_alert(), "default", DELAYS_S)
    assert incident is not None
    assert apply_command(group, incident, make_command(CommandKind.REOPEN, 30)) == []

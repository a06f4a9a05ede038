"""Reopen window, recurrence links, notes and reopen commands in the lifecycle."""

from __future__ import annotations

from factories import GROUP_KEY, at, make_alert, make_command, make_resolved_alert

from schemas.records import CommandKind, EventKind, IncidentState
from streams.correlate.lifecycle import (
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

"""The incident lifecycle as pure functions: alerts and commands in, events out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.records import (
    Alert,
    AlertStatus,
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    IncidentState,
    Severity,
)

# How many recent alert and command ids a group or incident remembers to drop
# redeliveries. A redelivery older than that many newer records gets through.
SEEN_IDS_KEPT = 512


class Group(BaseModel):
    """Everything correlate keeps about one group key between incidents."""

    group_key: str
    incidents_opened: int = 0
    open_incident: str | None = None
    last_incident: str | None = None
    seen: list[str] = Field(default_factory=list)

    def remember(self, record_id: str) -> None:
        self.seen = [*self.seen, record_id][-SEEN_IDS_KEPT:]


class Incident(BaseModel):
    """The current state of one incident and its whole timeline."""

    incident_id: str
    group_key: str
    state: IncidentState = IncidentState.OPEN
    service: str
    severity: Severity
    title: str
    rule: str
    labels: dict[str, str]
    policy: str
    auto_resolve: bool
    opened_at: datetime
    started_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    level: int = 0
    recurrence_of: str | None = None
    # When the escalation levels' delays count from: the opening, or the
    # latest reopening.
    escalation_base: datetime | None = None
    notes: list[dict[str, Any]] = Field(default_factory=list)
    # Delay of each escalation level after opening, in seconds, from the
    # policy as it was when the incident opened.
    level_delays_s: list[float] = Field(default_factory=lambda: [0.0])
    seq: int = 0
    alert_count: int = 0
    firing: list[str] = Field(default_factory=list)
    seen_commands: list[str] = Field(default_factory=list)
    timeline: list[dict[str, Any]] = Field(default_factory=list)

    def append(
        self,
        kind: EventKind,
        at: datetime,
        actor: str,
        details: dict[str, Any] | None = None,
    ) -> IncidentEvent:
        """Add one event to the timeline and return it."""
        self.seq += 1
        event = IncidentEvent(
            incident_id=self.incident_id,
            group_key=self.group_key,
            seq=self.seq,
            kind=kind,
            at=at,
            actor=actor,
            state=self.state,
            service=self.service,
            severity=self.severity,
            title=self.title,
            rule=self.rule,
            labels=self.labels,
            opened_at=self.opened_at,
            started_at=self.started_at,
            level=self.level,
            details=details or {},
        )
        self.timeline.append(event.model_dump(mode="json"))
        return event


def open_incident(
    group: Group, alert: Alert, policy: str, level_delays_s: list[float]
) -> Incident:
    group.incidents_opened += 1
    incident = Incident(
        incident_id=f"{group.group_key}-{group.incidents_opened}",
        group_key=group.group_key,
        service=alert.service,
        severity=alert.severity,
        title=alert.annotations.get("summary", alert.rule),
        rule=alert.rule,
        labels=alert.labels,
        policy=policy,
        level_delays_s=level_delays_s,
        # A first level that is not due at once waits for the group to settle.
        level=0 if level_delays_s and level_delays_s[0] <= 0 else -1,
        auto_resolve=alert.auto_resolve,
        opened_at=alert.at,
        started_at=alert.starts_at,
        alert_count=1,
        firing=[alert.fingerprint],
    )
    group.open_incident = incident.incident_id
    group.last_incident = incident.incident_id
    return incident


@dataclass(frozen=True)
class Reopening:
    """The reopen and recurrence windows of a group's last resolved incident.

    Within `reopen_window` of the resolve the incident reopens; later, within
    `recurrence_window`, a new incident opens linked to it as a recurrence.
    """

    reopen_window_s: float = 0.0
    recurrence_window_s: float = 86400.0
    # Whether the route notifies resolves; carried to escalate on the opening.
    send_resolved: bool = True


def catch_up(incident: Incident, at: datetime) -> list[IncidentEvent]:
    """Escalate an unacknowledged incident through every level due by `at`.

    Each escalation is stamped with its own due time, so a replay that
    applies it late still records it when it was due.
    """
    events = []
    opened = (incident.escalation_base or incident.opened_at).timestamp()
    while incident.state is IncidentState.OPEN:
        following = incident.level + 1
        if following >= len(incident.level_delays_s):
            break
        due = opened + incident.level_delays_s[following]
        if due > at.timestamp():
            break
        incident.level = following
        due_at = datetime.fromtimestamp(due, at.tzinfo)
        reason = "group wait elapsed" if following == 0 else "not acknowledged in time"
        details = {"level": following, "reason": reason}
        events.append(
            incident.append(EventKind.ESCALATED, due_at, "escalation policy", details)
        )
    return events


def apply_alert(
    group: Group,
    incident: Incident | None,
    alert: Alert,
    policy: str,
    level_delays_s: list[float],
    reopening: Reopening | None = None,
) -> tuple[Incident | None, list[IncidentEvent]]:
    """Apply one alert to its group and open incident.

    Returns the incident to store (possibly new) and the timeline events the
    alert caused. A redelivered alert causes none.
    """
    if alert.event_id in group.seen:
        return incident, []
    group.remember(alert.event_id)
    earlier = catch_up(incident, alert.at) if incident is not None else []
    if alert.status is AlertStatus.FIRING:
        incident, events = _apply_firing(
            group, incident, alert, policy, level_delays_s, reopening or Reopening()
        )
    else:
        incident, events = _apply_resolved(group, incident, alert)
    return incident, earlier + events


def _apply_firing(
    group: Group,
    incident: Incident | None,
    alert: Alert,
    policy: str,
    level_delays_s: list[float],
    reopening: Reopening,
) -> tuple[Incident, list[IncidentEvent]]:
    send_resolved = reopening.send_resolved
    details: dict[str, Any] = {
        "fingerprint": alert.fingerprint,
        "annotations": alert.annotations,
    }
    previous = incident
    if previous is not None and previous.state is IncidentState.RESOLVED:
        since_s = (alert.at - (previous.resolved_at or alert.at)).total_seconds()
        if since_s <= reopening.reopen_window_s:
            events = _reopen(group, previous, alert.at, alert.source)
            if events:
                previous.firing = [alert.fingerprint]
                previous.alert_count += 1
                return previous, events
        if since_s > reopening.recurrence_window_s:
            previous = None
    if incident is None or incident.state is IncidentState.RESOLVED:
        incident = open_incident(group, alert, policy, level_delays_s)
        details["policy"] = policy
        details["level_delays_s"] = level_delays_s
        details["send_resolved"] = send_resolved
        if previous is not None:
            incident.recurrence_of = previous.incident_id
            details["recurrence_of"] = previous.incident_id
        return incident, [
            incident.append(EventKind.OPENED, alert.at, alert.source, details)
        ]
    incident.alert_count += 1
    if alert.fingerprint in incident.firing:
        return incident, []
    incident.firing = [*incident.firing, alert.fingerprint]
    return incident, [
        incident.append(EventKind.ALERT_ADDED, alert.at, alert.source, details)
    ]


def _apply_resolved(
    group: Group, incident: Incident | None, alert: Alert
) -> tuple[Incident | None, list[IncidentEvent]]:
    if incident is None or incident.state is IncidentState.RESOLVED:
        return incident, []
    if alert.fingerprint not in incident.firing:
        return incident, []
    incident.firing = [f for f in incident.firing if f != alert.fingerprint]
    details = {"fingerprint": alert.fingerprint}
    events = [
        incident.append(EventKind.ALERT_RESOLVED, alert.at, alert.source, details)
    ]
    if not incident.firing and alert.auto_resolve:
        events.append(
            _resolve(group, incident, alert.at, alert.source, "alert cleared")
        )
    return incident, events


def _resolve(
    group: Group,
    incident: Incident,
    at: datetime,
    actor: str,
    how: str,
    resolution: str | None = None,
) -> IncidentEvent:
    incident.state = IncidentState.RESOLVED
    incident.resolved_at = at
    incident.resolved_by = actor
    if group.open_incident == incident.incident_id:
        group.open_incident = None
    details: dict[str, Any] = {
        "how": how,
        "acknowledged": incident.acknowledged_at is not None,
    }
    if resolution is not None:
        details["resolution"] = resolution
    return incident.append(EventKind.RESOLVED, at, actor, details)


def apply_command(
    group: Group, incident: Incident, command: Command
) -> list[IncidentEvent]:
    """Apply one command to an incident and return the events it caused.

    An acknowledgement after the resolve changes nothing: the resolve wins.
    A redelivered command causes no event.
    """
    if command.command_id in incident.seen_commands:
        return []
    incident.seen_commands = [*incident.seen_commands, command.command_id][
        -SEEN_IDS_KEPT:
    ]
    actor = f"{command.actor} via {command.source}"
    if command.kind is CommandKind.RECORD:
        kind = command.event_kind or EventKind.NOTIFIED
        return [incident.append(kind, command.at, actor, command.details)]
    if command.kind is CommandKind.NOTE:
        note = {"at": command.at.isoformat(), "actor": actor, **command.details}
        incident.notes = [*incident.notes, note]
        return [
            incident.append(EventKind.NOTE_ADDED, command.at, actor, command.details)
        ]
    # An escalate command only requests this catch-up: levels are reached
    # when they are due, never earlier and never twice.
    earlier = catch_up(incident, command.at)
    if command.kind is CommandKind.REOPEN:
        return _reopen(group, incident, command.at, actor)
    if incident.state is IncidentState.RESOLVED:
        return earlier
    if command.kind is CommandKind.RESOLVE:
        resolution = command.details.get("resolution")
        resolved = _resolve(
            group,
            incident,
            command.at,
            actor,
            "by a person",
            resolution if isinstance(resolution, str) else None,
        )
        return [*earlier, resolved]
    if command.kind is CommandKind.ACKNOWLEDGE:
        if incident.state is IncidentState.ACKNOWLEDGED:
            return earlier
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at = command.at
        incident.acknowledged_by = actor
        return [*earlier, incident.append(EventKind.ACKNOWLEDGED, command.at, actor)]
    return earlier


def _reopen(
    group: Group, incident: Incident, at: datetime, actor: str
) -> list[IncidentEvent]:
    """Reopen a resolved incident, unless its group has opened another since."""
    if incident.state is not IncidentState.RESOLVED:
        return []
    if group.open_incident not in (None, incident.incident_id):
        return []
    incident.state = IncidentState.OPEN
    incident.resolved_at = None
    incident.resolved_by = None
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.level = 0
    incident.escalation_base = at
    group.open_incident = incident.incident_id
    return [incident.append(EventKind.REOPENED, at, actor)]

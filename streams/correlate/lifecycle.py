"""The incident lifecycle as pure functions: alerts and commands in, events out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from schemas.oncall import EscalationPolicy
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
from streams.correlate.grouping import (
    GroupRules,
    due_stable,
    due_update,
    note_flapping_change,
    note_group_change,
    record_change,
    stabilize,
    start_flapping,
)
from streams.escalate.policy import step_delays_s

# How many recent alert and command ids a group or incident remembers to drop
# redeliveries. A redelivery older than that many newer records gets through.
SEEN_IDS_KEPT = 512
# Duplicates of firing alerts recorded on an incident's timeline; later ones
# are only counted.
DUPLICATES_RECORDED = 10
# The largest stored incident, in bytes of JSON. Kafka rejects records over
# 1 MiB by default, and a changelog record that fails stops the worker.
MAX_INCIDENT_BYTES = 512 * 1024


def trim_timeline(stored: dict[str, Any], max_bytes: int = MAX_INCIDENT_BYTES) -> int:
    """Drop the oldest timeline events after the first until `stored` fits.

    Returns how many were dropped; the opening event is always kept.
    """
    size = len(json.dumps(stored))
    timeline = stored.get("timeline") or []
    dropped = 0
    while size > max_bytes and len(timeline) > 1:
        size -= len(json.dumps(timeline.pop(1))) + 2
        dropped += 1
    if dropped:
        stored["timeline_dropped"] = stored.get("timeline_dropped", 0) + dropped
    return dropped


class Group(BaseModel):
    """Everything correlate keeps about one group key between incidents."""

    group_key: str
    incidents_opened: int = 0
    open_incident: str | None = None
    last_incident: str | None = None
    seen: list[str] = Field(default_factory=list)
    # Alerts waiting for the route's minimum group size, by fingerprint.
    pending: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Recent state changes (epoch seconds) and the last status, by
    # fingerprint, for flapping detection.
    changes: dict[str, list[float]] = Field(default_factory=dict)
    last_status: dict[str, str] = Field(default_factory=dict)

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
    # Delay of each escalation step after `escalation_base`, in seconds,
    # from the policy as it was when the incident opened. A step is one level
    # in one run of the levels, so repeats make more steps than levels.
    level_delays_s: list[float] = Field(default_factory=lambda: [0.0])
    # The escalation policy as it was when the incident opened, and the
    # route's group_wait, to plan the steps again from a reopening or an
    # acknowledgement that timed out.
    policy_snapshot: dict[str, Any] | None = None
    group_wait_s: float = 0.0
    # The route's send_resolved and repeat_interval at the opening, carried
    # on a reopening so escalate plans it as it planned the opening. None on
    # incidents stored before these fields existed.
    send_resolved: bool | None = None
    repeat_interval_s: float | None = None
    # The seq of the acknowledgement an ack timeout must match.
    acknowledged_seq: int | None = None
    seq: int = 0
    alert_count: int = 0
    firing: list[str] = Field(default_factory=list)
    seen_commands: list[str] = Field(default_factory=list)
    timeline: list[dict[str, Any]] = Field(default_factory=list)
    # Group updates: changes waiting for the group interval, and when the
    # last update went out.
    group_interval_s: float = 0.0
    pending_changes: list[dict[str, Any]] = Field(default_factory=list)
    last_update_at: datetime | None = None
    # Flapping: the alerts that flap, since when, and the last change of
    # any of them, with the hold-down and pause that end it.
    flapping: list[str] = Field(default_factory=list)
    flapping_since: datetime | None = None
    last_change_at: datetime | None = None
    hold_down_s: float = 0.0
    pause_s: float = 0.0
    # Second reports of firing alerts; only the first few are on the timeline.
    duplicates: int = 0
    # Timeline events dropped to keep the stored incident under its size limit.
    timeline_dropped: int = 0
    # Resolved by timeout this long after the escalation last started (the
    # opening, a reopening or an ack timeout); 0 is never.
    resolve_timeout_s: float = 0.0

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
    group: Group,
    alert: Alert,
    policy: str,
    level_delays_s: list[float],
    snapshot: PolicySnapshot | None = None,
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
        policy_snapshot=snapshot.policy if snapshot else None,
        group_wait_s=snapshot.group_wait_s if snapshot else 0.0,
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
class PolicySnapshot:
    """An escalation policy as JSON, with the route's group_wait in seconds."""

    policy: dict[str, Any]
    group_wait_s: float = 0.0
    # The route's repeat_interval in seconds, or None to leave it to escalate.
    repeat_interval_s: float | None = None


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
    # Resolve an incident open this long; 0 never does.
    resolve_timeout_s: float = 0.0


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
        details: dict[str, Any] = {"level": following, "reason": reason}
        levels = (incident.policy_snapshot or {}).get("levels")
        if isinstance(levels, list) and levels:
            # With repeats a step's index runs past the policy's levels.
            details["policy_level"] = following % len(levels)
            details["run"] = following // len(levels)
        events.append(
            incident.append(EventKind.ESCALATED, due_at, "escalation policy", details)
        )
    return events


def catch_up_all(group: Group, incident: Incident, at: datetime) -> list[IncidentEvent]:
    """Apply everything due by `at`: escalations, the end of flapping, updates.

    A resolve timeout due by `at` comes last, and nothing due after it is
    applied: a late catch-up gives the same timeline as a timely one.
    """
    timeout_at = resolve_timeout_at(incident)
    if timeout_at is not None and timeout_at < at:
        at = timeout_at
    events = catch_up(incident, at)
    if due_stable(incident, at):
        # Each flapping episode ends with its alerts' changes forgotten.
        for fingerprint in incident.flapping:
            group.changes.pop(fingerprint, None)
        events.append(stabilize(incident))
        if not incident.firing and incident.auto_resolve:
            stable_at = events[-1].at
            how = "alert cleared and stable"
            events.append(_resolve(group, incident, stable_at, "correlate", how))
    events.extend(due_update(incident, at))
    timed_out = timeout_at is not None and at >= timeout_at
    if timed_out and incident.state is not IncidentState.RESOLVED:
        assert timeout_at is not None
        how = "timed out"
        events.append(_resolve(group, incident, timeout_at, "correlate", how))
    return events


def resolve_timeout_at(incident: Incident) -> datetime | None:
    """Return when an open incident is resolved by timeout, if it ever is."""
    if incident.resolve_timeout_s <= 0 or incident.state is IncidentState.RESOLVED:
        return None
    opened = incident.escalation_base or incident.opened_at
    return opened + timedelta(seconds=incident.resolve_timeout_s)


def apply_alert(
    group: Group,
    incident: Incident | None,
    alert: Alert,
    policy: str,
    level_delays_s: list[float],
    reopening: Reopening | None = None,
    snapshot: PolicySnapshot | None = None,
    rules: GroupRules | None = None,
) -> tuple[Incident | None, list[IncidentEvent]]:
    """Apply one alert to its group and open incident.

    Returns the incident to store (possibly new) and the timeline events the
    alert caused. A redelivered alert causes none.
    """
    if alert.event_id in group.seen:
        return incident, []
    group.remember(alert.event_id)
    rules = rules or GroupRules()
    earlier = catch_up_all(group, incident, alert.at) if incident is not None else []
    if incident is not None and is_stale_firing(incident, alert):
        # Checked before the flapping count: a stale report is no state change.
        return incident, earlier + _record_stale(incident, alert)
    flaps = record_change(group, alert, rules.flapping)
    if alert.status is AlertStatus.FIRING:
        incident, events = _apply_firing(
            group,
            incident,
            alert,
            (policy, level_delays_s, snapshot),
            reopening or Reopening(),
            rules,
            flaps,
        )
    else:
        incident, events = _apply_resolved(group, incident, alert, rules)
    if flaps and incident is not None and incident.state is not IncidentState.RESOLVED:
        assert rules.flapping is not None
        changes = len(group.changes.get(alert.fingerprint, []))
        started = start_flapping(incident, alert, rules.flapping, changes)
        if started is not None:
            events.append(started)
    return incident, earlier + events


def _apply_firing(
    group: Group,
    incident: Incident | None,
    alert: Alert,
    plan: tuple[str, list[float], PolicySnapshot | None],
    reopening: Reopening,
    rules: GroupRules,
    flaps: bool,
) -> tuple[Incident | None, list[IncidentEvent]]:
    policy, level_delays_s, snapshot = plan
    send_resolved = reopening.send_resolved
    details: dict[str, Any] = {
        "fingerprint": alert.fingerprint,
        "annotations": alert.annotations,
    }
    previous = incident
    if previous is not None and previous.state is IncidentState.RESOLVED:
        since_s = (alert.at - (previous.resolved_at or alert.at)).total_seconds()
        # Without a reopen window nothing reopens: a firing alert stamped at
        # or before the resolve that is not stale is a new alert, which
        # opens a new incident linked to this one as a recurrence.
        reopens = reopening.reopen_window_s > 0
        if reopens and since_s <= reopening.reopen_window_s:
            events = _reopen(group, previous, alert.at, alert.source, flaps)
            if events:
                previous.firing = [alert.fingerprint]
                previous.alert_count += 1
                return previous, events
        if since_s > reopening.recurrence_window_s:
            previous = None
    if incident is None or incident.state is IncidentState.RESOLVED:
        # Alerts still firing in the group's last incident, which a person
        # resolved, count towards the minimum of the next one.
        still_firing = len(incident.firing) if incident is not None else 0
        waiting = _wait_for_group(group, alert, rules.min_alerts - still_firing)
        if waiting is None:
            return incident, []
        first = waiting[0]
        incident = open_incident(group, first, policy, level_delays_s, snapshot)
        details["fingerprint"] = first.fingerprint
        details["annotations"] = first.annotations
        # The incident opens when its group is large enough; its impact
        # started with the first alert that was waiting.
        incident.opened_at = alert.at
        incident.group_interval_s = rules.group_interval_s or 0.0
        incident.resolve_timeout_s = reopening.resolve_timeout_s
        if incident.level == 0:
            incident.last_update_at = alert.at
        details["policy"] = policy
        details["level_delays_s"] = level_delays_s
        if snapshot is not None:
            details["policy_snapshot"] = snapshot.policy
        details["send_resolved"] = send_resolved
        incident.send_resolved = send_resolved
        if snapshot is not None and snapshot.repeat_interval_s is not None:
            incident.repeat_interval_s = snapshot.repeat_interval_s
            details["repeat_interval_s"] = snapshot.repeat_interval_s
        if flaps:
            details["flapping"] = True
        if previous is not None:
            incident.recurrence_of = previous.incident_id
            details["recurrence_of"] = previous.incident_id
        if len(waiting) > 1:
            details["min_alerts"] = rules.min_alerts
        opened = incident.append(EventKind.OPENED, alert.at, alert.source, details)
        return incident, [opened, *_add_waiting(incident, waiting[1:], alert.at)]
    incident.alert_count += 1
    if alert.fingerprint in incident.firing:
        incident.duplicates += 1
        if incident.duplicates > DUPLICATES_RECORDED:
            return incident, []
        duplicate = {
            "reason": "duplicate",
            "fingerprint": alert.fingerprint,
            "event_id": alert.event_id,
            "duplicate_of": incident.incident_id,
        }
        suppressed = EventKind.SUPPRESSED
        return incident, [
            incident.append(suppressed, alert.at, alert.source, duplicate)
        ]
    incident.firing = [*incident.firing, alert.fingerprint]
    note_flapping_change(incident, alert.at)
    added = incident.append(EventKind.ALERT_ADDED, alert.at, alert.source, details)
    return incident, [
        added,
        *note_group_change(incident, alert, rules.group_interval_s),
    ]


def is_stale_firing(incident: Incident, alert: Alert) -> bool:
    """Return whether a firing alert reports nothing newer than a resolve.

    A firing alert that arrives late or out of order, stamped at or before
    the moment the resolved incident last learned that alert's state, is
    stale: the alert was still firing when a person or timeout resolved the
    incident, or the alert resolved at or after the stamp. Such a report
    neither reopens the incident nor opens a new one, whatever the reopen
    window. A firing alert stamped after its own resolve is a new episode.
    """
    if alert.status is not AlertStatus.FIRING:
        return False
    if incident.state is not IncidentState.RESOLVED:
        return False
    known_at = _state_known_at(incident, alert.fingerprint)
    return known_at is not None and alert.at <= known_at


def _state_known_at(incident: Incident, fingerprint: str) -> datetime | None:
    """Return the latest time at which a resolved incident knew an alert's state.

    For an alert still firing at the resolve that is the resolve itself, and
    otherwise the alert's latest `alert_resolved` event. None means the
    incident never had the alert.
    """
    if fingerprint in incident.firing:
        return incident.resolved_at
    # NOTE: an alert whose `alert_resolved` event was trimmed off the
    # timeline counts as one the incident never had.
    for event in reversed(incident.timeline):
        if event["kind"] != EventKind.ALERT_RESOLVED:
            continue
        if event["details"].get("fingerprint") == fingerprint:
            return datetime.fromisoformat(event["at"])
    return None


def _record_stale(incident: Incident, alert: Alert) -> list[IncidentEvent]:
    """Record a stale firing alert on the resolved incident's timeline.

    The stale reports share the duplicates' budget of recorded events.
    """
    incident.duplicates += 1
    if incident.duplicates > DUPLICATES_RECORDED:
        return []
    # Stamped at the resolve, so the timeline stays in time order.
    resolved_at = incident.resolved_at or alert.at
    details = {
        "reason": "stale",
        "fingerprint": alert.fingerprint,
        "event_id": alert.event_id,
        "alert_at": alert.at.isoformat(),
    }
    suppressed = EventKind.SUPPRESSED
    return [incident.append(suppressed, resolved_at, alert.source, details)]


def _wait_for_group(group: Group, alert: Alert, min_alerts: int) -> list[Alert] | None:
    """Return the alerts that open an incident, or None while there are too few.

    The alert that opens the incident comes first.
    """
    if min_alerts <= 1:
        return [alert]
    group.pending[alert.fingerprint] = alert.model_dump(mode="json")
    if len(group.pending) < min_alerts:
        return None
    waiting = [Alert.model_validate(a) for a in group.pending.values()]
    group.pending = {}
    waiting.sort(key=lambda a: (a.at, a.fingerprint))
    return waiting


def _add_waiting(
    incident: Incident, waiting: list[Alert], at: datetime
) -> list[IncidentEvent]:
    events = []
    for alert in waiting:
        incident.firing = [*incident.firing, alert.fingerprint]
        incident.alert_count += 1
        details = {"fingerprint": alert.fingerprint, "annotations": alert.annotations}
        events.append(incident.append(EventKind.ALERT_ADDED, at, alert.source, details))
    return events


def _apply_resolved(
    group: Group, incident: Incident | None, alert: Alert, rules: GroupRules
) -> tuple[Incident | None, list[IncidentEvent]]:
    group.pending.pop(alert.fingerprint, None)
    if incident is None:
        return incident, []
    if incident.state is IncidentState.RESOLVED:
        # A person resolved it while this alert fired: it no longer fires.
        if alert.fingerprint not in incident.firing:
            return incident, []
        incident.firing = [f for f in incident.firing if f != alert.fingerprint]
        # Recorded so a late firing report from before this resolve is stale.
        # Stamped no earlier than the incident's resolve, to keep time order.
        resolved_at = incident.resolved_at or alert.at
        details = {"fingerprint": alert.fingerprint, "ends_at": alert.at.isoformat()}
        at = max(alert.at, resolved_at)
        event = incident.append(EventKind.ALERT_RESOLVED, at, alert.source, details)
        return incident, [event]
    if alert.fingerprint not in incident.firing:
        return incident, []
    incident.firing = [f for f in incident.firing if f != alert.fingerprint]
    note_flapping_change(incident, alert.at)
    details = {"fingerprint": alert.fingerprint}
    events = [
        incident.append(EventKind.ALERT_RESOLVED, alert.at, alert.source, details)
    ]
    # A flapping incident stays open until it is stable: the resolve then
    # comes from the stabilization, if the alert is still clear.
    holding = incident.flapping_since is not None or (
        rules.flapping is not None and _flaps(group, alert, rules)
    )
    if not incident.firing and alert.auto_resolve and not holding:
        events.append(
            _resolve(group, incident, alert.at, alert.source, "alert cleared")
        )
    elif incident.firing:
        events.extend(note_group_change(incident, alert, rules.group_interval_s))
    return incident, events


def _flaps(group: Group, alert: Alert, rules: GroupRules) -> bool:
    assert rules.flapping is not None
    return len(group.changes.get(alert.fingerprint, [])) > rules.flapping.changes


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
    incident.pending_changes = []
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
    # An escalate or check command requests this catch-up: levels, updates
    # and the end of flapping come when they are due, and never twice. Only
    # an escalate marked `now` (a failed runbook check) moves on earlier.
    earlier = catch_up_all(group, incident, command.at)
    if command.kind is CommandKind.REOPEN:
        return [*earlier, *_reopen(group, incident, command.at, actor)]
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
        return [*earlier, *_acknowledge(incident, command.at, actor)]
    if command.kind is CommandKind.ACK_TIMEOUT:
        return [*earlier, *_ack_timed_out(incident, command)]
    if command.kind is CommandKind.ESCALATE and command.details.get("now") is True:
        return [*earlier, *_escalate_now(incident, command, actor)]
    return earlier


def _escalate_now(
    incident: Incident, command: Command, actor: str
) -> list[IncidentEvent]:
    """Move an open incident to its next level before that level is due.

    An acknowledged incident, or one already at its last level, stays as it is.
    """
    if incident.state is not IncidentState.OPEN:
        return []
    following = incident.level + 1
    if following >= len(incident.level_delays_s):
        return []
    incident.level = following
    details = {
        "level": following,
        "reason": str(command.details.get("reason", "requested")),
    }
    return [incident.append(EventKind.ESCALATED, command.at, actor, details)]


def _acknowledge(incident: Incident, at: datetime, actor: str) -> list[IncidentEvent]:
    """Acknowledge an open incident.

    An acknowledgement after an ack timeout is marked `again`, and the
    incident keeps its first acknowledgement time, which MTTA counts from.
    """
    if incident.state is IncidentState.ACKNOWLEDGED:
        return []
    again = incident.acknowledged_at is not None
    incident.state = IncidentState.ACKNOWLEDGED
    incident.acknowledged_at = incident.acknowledged_at or at
    incident.acknowledged_by = actor
    details = {"again": True} if again else {}
    event = incident.append(EventKind.ACKNOWLEDGED, at, actor, details)
    incident.acknowledged_seq = event.seq
    return [event]


def _ack_timed_out(incident: Incident, command: Command) -> list[IncidentEvent]:
    """Return an acknowledged incident to triggered and restart its escalation.

    Only the acknowledgement the timeout was set for expires: a timeout of
    an earlier one, or one after the resolve, changes nothing.
    """
    expected = command.details.get("acknowledged_seq")
    if incident.state is not IncidentState.ACKNOWLEDGED:
        return []
    if expected is None or expected != incident.acknowledged_seq:
        return []
    incident.state = IncidentState.OPEN
    incident.acknowledged_seq = None
    _restart_escalation(incident, command.at)
    details = {
        "acknowledged_seq": expected,
        "level_delays_s": incident.level_delays_s,
    }
    return [
        incident.append(
            EventKind.ACK_TIMED_OUT, command.at, "escalation policy", details
        )
    ]


def _restart_escalation(incident: Incident, at: datetime) -> None:
    """Start the escalation policy again at `at`, from its first level."""
    incident.level = 0
    incident.escalation_base = at
    if incident.policy_snapshot is not None:
        policy = EscalationPolicy.model_validate(incident.policy_snapshot)
        incident.level_delays_s = step_delays_s(policy, at, incident.group_wait_s)


def _reopen(
    group: Group, incident: Incident, at: datetime, actor: str, flaps: bool = False
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
    incident.acknowledged_seq = None
    _restart_escalation(incident, at)
    group.open_incident = incident.incident_id
    incident.pending_changes = []
    incident.last_update_at = at
    details: dict[str, Any] = {
        "level_delays_s": incident.level_delays_s,
        **_opening_terms(incident),
    }
    if flaps:
        details["flapping"] = True
    return [incident.append(EventKind.REOPENED, at, actor, details)]


def _opening_terms(incident: Incident) -> dict[str, Any]:
    """Return the policy and route settings the incident opened with.

    A reopening carries them because escalate drops an incident's plan on
    its resolve, and must plan the reopening from the policy as it was at
    the opening rather than from the configuration as it is now.
    """
    terms: dict[str, Any] = {"policy": incident.policy}
    if incident.policy_snapshot is not None:
        terms["policy_snapshot"] = incident.policy_snapshot
    if incident.send_resolved is not None:
        terms["send_resolved"] = incident.send_resolved
    if incident.repeat_interval_s is not None:
        terms["repeat_interval_s"] = incident.repeat_interval_s
    return terms

"""Time-based grouping rules of an incident: group updates, minimum size, flapping.

Pure functions over the `Group` and `Incident` models of the lifecycle. Each
returns the timeline events it caused; the caller stores the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from schemas.grouping import Flapping
from schemas.records import Alert, AlertStatus, EventKind, IncidentEvent, IncidentState

if TYPE_CHECKING:
    from streams.correlate.lifecycle import Group, Incident

ACTOR = "correlate"


@dataclass(frozen=True)
class GroupRules:
    """The grouping settings of the route an alert matched."""

    # None sends no group updates at all.
    group_interval_s: float | None = None
    min_alerts: int = 1
    flapping: Flapping | None = None


def record_change(group: Group, alert: Alert, flapping: Flapping | None) -> bool:
    """Count a state change of the alert's fingerprint and return whether it flaps.

    Only a change of status counts: a firing alert sent again is not a
    change. Changes older than the flapping window are forgotten.
    """
    if flapping is None:
        return False
    fingerprint = alert.fingerprint
    status = alert.status.value
    previous = group.last_status.get(fingerprint, AlertStatus.RESOLVED.value)
    group.last_status[fingerprint] = status
    window_s = flapping.window.total_seconds()
    now = alert.at.timestamp()
    kept = [t for t in group.changes.get(fingerprint, []) if t > now - window_s]
    if status != previous:
        kept.append(now)
    # One more than the threshold is all the decision needs.
    kept = kept[-(flapping.changes + 1) :]
    if kept:
        group.changes[fingerprint] = kept
    else:
        group.changes.pop(fingerprint, None)
        if status == AlertStatus.RESOLVED.value:
            group.last_status.pop(fingerprint, None)
    return len(kept) > flapping.changes


def start_flapping(
    incident: Incident, alert: Alert, flapping: Flapping, changes: int
) -> IncidentEvent | None:
    """Mark the incident flapping because of `alert`, or extend its flapping.

    Returns the flapping event when the incident was stable until now.
    """
    incident.last_change_at = alert.at
    incident.hold_down_s = flapping.hold_down.total_seconds()
    incident.pause_s = flapping.pause.total_seconds()
    if alert.fingerprint not in incident.flapping:
        incident.flapping = [*incident.flapping, alert.fingerprint]
    if incident.flapping_since is not None:
        return None
    incident.flapping_since = alert.at
    details = {
        "fingerprint": alert.fingerprint,
        "changes": changes,
        "window_s": flapping.window.total_seconds(),
        "stable_at": _stable_at(incident).isoformat(),
        "reason": f"changed state {changes} times within "
        f"{flapping.window.total_seconds():g}s; notifications held until stable",
    }
    return incident.append(EventKind.FLAPPING, alert.at, ACTOR, details)


def note_flapping_change(incident: Incident, at: datetime) -> None:
    """Restart the hold-down of a flapping incident after one of its alerts changed."""
    if incident.flapping_since is not None:
        incident.last_change_at = at


def _stable_at(incident: Incident) -> datetime:
    assert incident.flapping_since is not None
    last_change = incident.last_change_at or incident.flapping_since
    return max(
        last_change + timedelta(seconds=incident.hold_down_s),
        incident.flapping_since + timedelta(seconds=incident.pause_s),
    )


def note_group_change(
    incident: Incident, alert: Alert, group_interval_s: float | None
) -> list[IncidentEvent]:
    """Queue an alert joining or leaving a notified incident for the next update.

    An incident still in its group wait notifies the change with its first
    notification, and a flapping one notifies nothing until it is stable, so neither
    queues anything.
    """
    if group_interval_s is None or incident.state is IncidentState.RESOLVED:
        return []
    if incident.level < 0:
        return []
    if incident.flapping_since is not None:
        return []
    incident.group_interval_s = group_interval_s
    change = {
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "at": alert.at.isoformat(),
    }
    incident.pending_changes = [*incident.pending_changes, change]
    return due_update(incident, alert.at)


def _update_due_at(incident: Incident) -> datetime:
    base = incident.last_update_at
    if base is None:
        opened = incident.escalation_base or incident.opened_at
        base = opened + timedelta(seconds=incident.level_delays_s[0])
    return base + timedelta(seconds=incident.group_interval_s)


def due_update(incident: Incident, at: datetime) -> list[IncidentEvent]:
    """Send the queued changes as one group update once the group interval passed."""
    if not incident.pending_changes or incident.state is IncidentState.RESOLVED:
        incident.pending_changes = []
        return []
    due_at = _update_due_at(incident)
    if at < due_at:
        return []
    changes = incident.pending_changes
    incident.pending_changes = []
    # Sent when it was due, or when its first change came if that was later:
    # a replay that applies it late still records when it went out.
    first_change = datetime.fromisoformat(changes[0]["at"])
    stamp = max(due_at, first_change)
    incident.last_update_at = stamp
    details: dict[str, Any] = {
        "added": [c["fingerprint"] for c in changes if c["status"] == "firing"],
        "resolved": [c["fingerprint"] for c in changes if c["status"] == "resolved"],
        "firing": len(incident.firing),
    }
    return [incident.append(EventKind.GROUP_UPDATED, stamp, ACTOR, details)]


def due_stable(incident: Incident, at: datetime) -> bool:
    """Return whether a flapping incident has been stable long enough by `at`."""
    return incident.flapping_since is not None and at >= _stable_at(incident)


def stabilize(incident: Incident) -> IncidentEvent:
    """End the flapping of an incident and return the stabilized event."""
    stable_at = _stable_at(incident)
    details = {
        "flapping_since": incident.flapping_since.isoformat()
        if incident.flapping_since
        else None,
        "fingerprints": incident.flapping,
        "firing": len(incident.firing),
    }
    incident.flapping_since = None
    incident.last_change_at = None
    incident.flapping = []
    return incident.append(EventKind.STABILIZED, stable_at, ACTOR, details)


def next_check_at(incident: Incident) -> datetime | None:
    """Return when the incident next has something due: an update or stability."""
    if incident.state is IncidentState.RESOLVED:
        return None
    candidates = []
    if incident.flapping_since is not None:
        candidates.append(_stable_at(incident))
    elif incident.pending_changes:
        candidates.append(_update_due_at(incident))
    return min(candidates) if candidates else None

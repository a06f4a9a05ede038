"""A Markdown postmortem draft rendered from one stored incident and its timeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from schemas.analytics import Targets
from streams.analytics.metrics import AFFECTED_USERS_LABEL, FALSE_POSITIVE

TO_WRITE = "_To be written._"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _minutes(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "n/a"
    return f"{(end - start).total_seconds() / 60:.1f} min"


def _cell(value: Any) -> str:
    """Return text that fits in one Markdown table cell."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _versus(seconds: float | None, target_s: float) -> str:
    if seconds is None:
        return ""
    verdict = "within" if seconds <= target_s else "over"
    return f" ({verdict} the {target_s / 60:.0f} min target)"


def _resolution(timeline: list[dict[str, Any]]) -> str | None:
    for event in timeline:
        if event.get("kind") == "resolved":
            resolution = event.get("details", {}).get("resolution")
            return str(resolution) if resolution else None
    return None


def _users(labels: dict[str, str]) -> int:
    try:
        return max(0, int(labels.get(AFFECTED_USERS_LABEL, "1")))
    except ValueError:
        return 1


def _header(incident: dict[str, Any], timeline: list[dict[str, Any]]) -> list[str]:
    labels = incident.get("labels", {})
    resolution = _resolution(timeline)
    lines = [
        f"# Postmortem: {incident['title']} ({incident['incident_id']})",
        "",
        "Draft generated from the incident timeline. Edit every section.",
        "",
        "## Summary",
        "",
        f"- Service: {incident['service']}",
        f"- Severity: {incident['severity']}",
        f"- Rule: {incident['rule']}",
        f"- State: {incident['state']}",
        f"- Opened: {incident['opened_at']}",
        f"- Resolved: {incident.get('resolved_at') or 'not resolved'}",
    ]
    if resolution is not None:
        label = "false positive" if resolution == FALSE_POSITIVE else resolution
        lines.append(f"- Resolution: {label}")
    if incident.get("recurrence_of"):
        lines.append(f"- Recurrence of: {incident['recurrence_of']}")
    if labels:
        pairs = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        lines.append(f"- Labels: {pairs}")
    return lines


def render_postmortem(incident: dict[str, Any], targets: Targets | None = None) -> str:
    """Render the draft: summary, impact, detection, response times, timeline,
    runbook runs, notes, and blank root cause and follow-up sections."""
    targets = targets or Targets()
    timeline: list[dict[str, Any]] = incident.get("timeline", [])
    labels: dict[str, str] = incident.get("labels", {})
    opened = _time(incident.get("opened_at"))
    started = _time(incident.get("started_at"))
    acknowledged = _time(incident.get("acknowledged_at"))
    resolved = _time(incident.get("resolved_at"))
    lines = _header(incident, timeline)

    users = _users(labels)
    weight = targets.weight(str(incident["severity"]))
    lines += ["", "## Impact", ""]
    lines.append(f"- Duration: {_minutes(opened, resolved)}")
    lines.append(f"- Affected users: {users}")
    if opened is not None and resolved is not None:
        hours = (resolved - opened).total_seconds() / 3600
        score = weight * hours * users
        lines.append(
            f"- Impact score: {score:.2f} (severity weight {weight:g} * "
            f"{hours:.2f} h * {users} users)"
        )

    lines += ["", "## Detection", ""]
    lines.append(f"- Impact began: {incident.get('started_at')}")
    lines.append(f"- Detected (incident opened): {incident.get('opened_at')}")
    lines.append(f"- Time to detect: {_minutes(started, opened)}")

    lines += ["", "## Response times", ""]
    tta = (acknowledged - opened).total_seconds() if acknowledged and opened else None
    ttr = (resolved - opened).total_seconds() if resolved and opened else None
    if tta is None:
        lines.append("- Time to acknowledge: never acknowledged")
    else:
        versus = _versus(tta, targets.mtta.total_seconds())
        lines.append(
            f"- Time to acknowledge: {tta / 60:.1f} min by "
            f"{incident.get('acknowledged_by')}{versus}"
        )
    if ttr is None:
        lines.append("- Time to resolve: not resolved")
    else:
        versus = _versus(ttr, targets.mttr.total_seconds())
        lines.append(
            f"- Time to resolve: {ttr / 60:.1f} min by "
            f"{incident.get('resolved_by')}{versus}"
        )
    escalations = sum(1 for e in timeline if e.get("kind") == "escalated")
    notifications = sum(1 for e in timeline if e.get("kind") == "notified")
    lines.append(f"- Escalations: {escalations}; notifications sent: {notifications}")

    lines += ["", "## Timeline", "", "| time | event | actor | details |"]
    lines.append("|---|---|---|---|")
    for event in timeline:
        details = event.get("details") or {}
        lines.append(
            f"| {_cell(event.get('at', ''))} | {_cell(event.get('kind', ''))} "
            f"| {_cell(event.get('actor', ''))} "
            f"| {_cell(details) if details else ''} |"
        )

    lines += ["", "## Runbook runs", ""]
    runs = [e for e in timeline if e.get("kind") == "runbook_finished"]
    if not runs:
        lines.append("No runbook ran.")
    for run in runs:
        details = run.get("details", {})
        mode = "dry run" if details.get("dry_run") else "live"
        lines.append(
            f"- {run.get('at')}: {details.get('runbook')} {details.get('status')} "
            f"({mode}, {len(details.get('steps', []))} steps)"
        )

    lines += ["", "## Notes", ""]
    notes = incident.get("notes", [])
    if not notes:
        lines.append("No notes.")
    for note in notes:
        lines.append(f"- {note.get('at')} {note.get('actor')}: {note.get('note')}")

    lines += ["", "## Root cause", "", TO_WRITE, "", "## Follow-ups", "", "- [ ] "]
    return "\n".join(lines) + "\n"

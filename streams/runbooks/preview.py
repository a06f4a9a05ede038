"""Preview of a runbook for one incident: would it run, and with what inputs.

Nothing is executed and no secret is read: secret fields render redacted.
"""

from __future__ import annotations

from typing import Any

from schemas.records import EventKind, IncidentEvent
from schemas.runbooks import ApprovalAction, Runbook, ShellAction, Step
from streams.runbooks.engine import target_of, trigger_mismatches
from streams.runbooks.render import (
    REDACTED,
    TemplateError,
    render_action,
    template_fields,
)


def incident_event_from(data: dict[str, Any], transition: str) -> IncidentEvent:
    """Build the incident event a preview starts from.

    `data` is an incident-events record, or an incident as the web view
    returns it (`GET /incidents/ID`), which is read as the `transition`
    of that incident. Raises pydantic's ValidationError on missing fields.
    """
    if "kind" in data and "seq" in data:
        return IncidentEvent.model_validate(data)
    fields = {
        key: data.get(key)
        for key in (
            "incident_id",
            "group_key",
            "state",
            "service",
            "severity",
            "title",
            "rule",
            "labels",
            "opened_at",
            "started_at",
        )
    }
    return IncidentEvent.model_validate(
        {
            **fields,
            "seq": max(int(data.get("seq") or 1), 1),
            "kind": EventKind(transition),
            "at": data.get("opened_at"),
            "actor": "runbook test",
            "level": data.get("level", 0),
        }
    )


def _preview_step(
    step: Step, fields: dict[str, str], allowlist: list[str]
) -> dict[str, Any]:
    # An approval step waits for its time to live, not for the step timeout.
    timeout = (
        step.action.ttl if isinstance(step.action, ApprovalAction) else step.timeout
    )
    entry: dict[str, Any] = {
        "step": step.name,
        "action": step.action.type,
        "timeout_s": timeout.total_seconds(),
        "retries": step.retries,
    }
    try:
        entry["input"] = render_action(step.action, fields)
    except TemplateError as exc:
        entry["error"] = str(exc)
    action = step.action
    if isinstance(action, ShellAction) and action.argv[0] not in allowlist:
        entry["error"] = f"executable {action.argv[0]!r} is not in shell_allowlist"
    return entry


def preview(
    runbook: Runbook, event: IncidentEvent, allowlist: list[str]
) -> dict[str, Any]:
    """Return whether `runbook` runs for `event` and every step as rendered."""
    fields = template_fields(event, runbook.name)
    fields.update({f"secrets.{name}": REDACTED for name in runbook.secrets})
    steps = [_preview_step(step, fields, allowlist) for step in runbook.steps]
    rollback = [_preview_step(step, fields, allowlist) for step in runbook.rollback]
    verify = None
    if runbook.verify is not None:
        verify = _preview_step(runbook.verify.step, fields, allowlist)
    mismatches = trigger_mismatches(runbook, event)
    errors = [
        s for s in [*steps, *rollback, *([verify] if verify else [])] if "error" in s
    ]
    return {
        "runbook": runbook.name,
        "incident_id": event.incident_id,
        "matches": not mismatches,
        "mismatches": mismatches,
        "would_run": not mismatches and not errors,
        "dry_run": runbook.dry_run,
        "target": target_of(runbook.safety, event.labels),
        "steps": steps,
        "rollback": rollback,
        "verify": verify,
    }

"""Response-time arithmetic: samples from events, window sums, and their means."""

from __future__ import annotations

from typing import Any

from schemas.records import EventKind, IncidentEvent, ResponseSample

EMPTY_WINDOW: dict[str, float] = {
    "opened": 0,
    "acknowledged": 0,
    "acknowledge_total_s": 0.0,
    "resolved": 0,
    "resolve_total_s": 0.0,
    "resolved_unacknowledged": 0,
}

WINDOWS_S = {"hourly": 3600, "daily": 86400}


def sample_for(event: IncidentEvent) -> ResponseSample | None:
    """Return the response sample an incident event contributes, if any.

    Time to acknowledge is the first acknowledgement minus the opened time;
    time to resolve is the resolve minus the opened time.
    """
    kinds = {
        EventKind.OPENED: "opened",
        EventKind.ACKNOWLEDGED: "acknowledged",
        EventKind.RESOLVED: "resolved",
    }
    kind = kinds.get(event.kind)
    if kind is None:
        return None
    # An acknowledgement after an ack timeout is not the first one.
    if kind == "acknowledged" and event.details.get("again"):
        return None
    seconds = None
    if kind != "opened":
        seconds = (event.at - event.opened_at).total_seconds()
    return ResponseSample(
        incident_id=event.incident_id,
        service=event.service,
        severity=event.severity,
        opened_at=event.opened_at,
        kind=kind,
        seconds=seconds,
        acknowledged=bool(event.details.get("acknowledged", False)),
    )


def add_sample(window: dict[str, float], sample: ResponseSample) -> dict[str, float]:
    """Return the window sums with one more sample counted."""
    totals = {**EMPTY_WINDOW, **window}
    if sample.kind == "opened":
        totals["opened"] += 1
    elif sample.kind == "acknowledged":
        totals["acknowledged"] += 1
        totals["acknowledge_total_s"] += sample.seconds or 0.0
    else:
        totals["resolved"] += 1
        totals["resolve_total_s"] += sample.seconds or 0.0
        if not sample.acknowledged:
            totals["resolved_unacknowledged"] += 1
    return totals


def summarize(totals: dict[str, float]) -> dict[str, Any]:
    """Return counts with MTTA and MTTR in seconds, null where nothing counted."""
    totals = {**EMPTY_WINDOW, **totals}
    acknowledged = totals.get("acknowledged", 0)
    resolved = totals.get("resolved", 0)
    return {
        "opened": int(totals.get("opened", 0)),
        "acknowledged": int(acknowledged),
        "resolved": int(resolved),
        "resolved_unacknowledged": int(totals.get("resolved_unacknowledged", 0)),
        "mtta_s": totals["acknowledge_total_s"] / acknowledged
        if acknowledged
        else None,
        "mttr_s": totals["resolve_total_s"] / resolved if resolved else None,
    }


def window_rows(
    items: Any, window: str, service: str | None = None
) -> list[dict[str, Any]]:
    """Flatten a windowed table's `((key, (start, end)), totals)` items into rows."""
    rows = []
    for stored_key, totals in items:
        key, (start, end) = stored_key
        if service is not None and key != service:
            continue
        rows.append(
            {
                "service": key,
                "window": window,
                "window_start": start,
                "window_end": end,
                **summarize(totals),
            }
        )
    return sorted(rows, key=lambda row: (row["service"], row["window_start"]))

"""Response metrics: samples from timeline events, window aggregates, summaries.

A window aggregate is a JSON-ready dict of counts, sums and serialised
DDSketches. Aggregates of two windows or two partitions merge exactly with
`merge_windows`, because counts and sums add, critical spans join, and
DDSketch merges bin by bin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.analytics import Targets
from schemas.records import EventKind, IncidentEvent, ResponseSample, Severity
from streams.analytics import sketches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSpec:
    """A window of the analytics tables: tumbling when `step_s` equals `size_s`."""

    size_s: int
    step_s: int


WINDOWS = {
    "hourly": WindowSpec(3600, 3600),
    "daily": WindowSpec(86400, 86400),
    "weekly": WindowSpec(7 * 86400, 86400),
}
WINDOWS_S = {name: spec.size_s for name, spec in WINDOWS.items()}

# Time to detect, to acknowledge and to resolve.
MEASURES = ("ttd", "tta", "ttr")
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95}
COUNTS = (
    "opened",
    "acknowledged",
    "resolved",
    "resolved_unacknowledged",
    "recurrences",
    "false_positives",
    "escalations",
    "notifications",
    "tta_within_target",
    "ttr_within_target",
)
SUMS = ("impact_score",)
# Downtime samples place a critical incident's span in every hourly window
# it covers, which also reaches every daily and weekly window. An incident
# longer than 31 days places only its newest 31 days of hours.
DOWNTIME_STEP_S = 3600
MAX_DOWNTIME_PLACEMENTS = 31 * 24

FALSE_POSITIVE = "false_positive"
AFFECTED_USERS_LABEL = "affected_users"


def empty_window() -> dict[str, Any]:
    window: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    window.update(dict.fromkeys(SUMS, 0.0))
    # Critical spans as merged, sorted [start, end] pairs of epoch seconds.
    window["critical_spans"] = []
    for measure in MEASURES:
        window[measure] = {"count": 0, "sum": 0.0, "sketch": None}
    return window


EMPTY_WINDOW = empty_window()


def dimensions(service: str, severity: str) -> list[str]:
    """Return the table keys a sample of this service and severity updates."""
    return ["all", f"service:{service}", f"severity:{severity}"]


def affected_users(event: IncidentEvent) -> int:
    """Return the `affected_users` label as a count, 1 when missing or invalid."""
    raw = event.labels.get(AFFECTED_USERS_LABEL)
    if raw is None:
        return 1
    try:
        users = int(raw)
    except ValueError:
        users = -1
    if users < 0:
        log.warning(
            "invalid affected_users label %r on incident_id=%s: expected a "
            "non-negative integer; counting 1",
            raw,
            event.incident_id,
        )
        return 1
    return users


def sample_for(
    event: IncidentEvent, targets: Targets | None = None
) -> ResponseSample | None:
    """Return the response sample an incident event contributes, if any.

    Time to detect is the opened time minus the start of impact; time to
    acknowledge is the acknowledgement minus the opened time; time to resolve
    is the resolve minus the opened time. The impact score of a resolve is
    severity weight * duration in hours * affected users. Callers pass only
    the first acknowledgement and the first resolve of an incident.
    """
    targets = targets or Targets()
    kinds = {
        EventKind.OPENED: "opened",
        EventKind.ACKNOWLEDGED: "acknowledged",
        EventKind.RESOLVED: "resolved",
        EventKind.ESCALATED: "escalated",
        EventKind.NOTIFIED: "notified",
    }
    kind = kinds.get(event.kind)
    if kind is None:
        return None
    # An acknowledgement after an ack timeout is not the first one.
    if kind == "acknowledged" and event.details.get("again"):
        return None
    fields: dict[str, Any] = {}
    if kind == "opened":
        detect_s = (event.opened_at - event.started_at).total_seconds()
        fields["seconds"] = max(0.0, detect_s)
        fields["recurrence"] = bool(event.details.get("recurrence_of"))
    elif kind in {"acknowledged", "resolved"}:
        fields["seconds"] = (event.at - event.opened_at).total_seconds()
    if kind == "resolved":
        duration_s = fields["seconds"]
        weight = targets.weight(event.severity.value)
        fields["impact"] = weight * duration_s / 3600 * affected_users(event)
        fields["false_positive"] = event.details.get("resolution") == FALSE_POSITIVE
    return ResponseSample(
        incident_id=event.incident_id,
        service=event.service,
        severity=event.severity,
        opened_at=event.opened_at,
        kind=kind,
        acknowledged=bool(event.details.get("acknowledged", False)),
        at=event.at,
        sample_id=event.idempotency_key,
        **fields,
    )


def downtime_samples(event: IncidentEvent) -> list[ResponseSample]:
    """Return the downtime samples of a critical incident's resolve.

    One sample goes to the hourly window of the opened time and one to each
    later hour the incident lasted into, each with the whole span.
    """
    if event.kind is not EventKind.RESOLVED or event.severity is not Severity.CRITICAL:
        return []
    opened_s = event.opened_at.timestamp()
    end_s = event.at.timestamp()
    if end_s <= opened_s:
        return []
    first_hour = opened_s // DOWNTIME_STEP_S * DOWNTIME_STEP_S
    hours = range(int(first_hour), int(end_s), DOWNTIME_STEP_S)
    placements = [max(opened_s, float(h)) for h in hours][-MAX_DOWNTIME_PLACEMENTS:]
    return [
        ResponseSample(
            incident_id=event.incident_id,
            service=event.service,
            severity=event.severity,
            opened_at=event.opened_at,
            kind="downtime",
            at=event.at,
            span_end=event.at,
            window_at=datetime.fromtimestamp(placed, UTC),
            sample_id=f"{event.idempotency_key}:downtime:{int(placed)}",
        )
        for placed in placements
    ]


def merge_spans(spans: list[list[float]]) -> list[list[float]]:
    """Return `spans` sorted, with overlapping and touching spans joined."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def covered_s(spans: list[list[float]], start: float, end: float) -> float:
    """Return the seconds of [start, end] that merged `spans` cover."""
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


def _add_measure(window: dict[str, Any], measure: str, seconds: float) -> None:
    current = window[measure]
    window[measure] = {
        "count": current["count"] + 1,
        "sum": current["sum"] + seconds,
        "sketch": sketches.add(current["sketch"], seconds),
    }


def add_sample(
    window: dict[str, Any], sample: ResponseSample, targets: Targets | None = None
) -> dict[str, Any]:
    """Return the window aggregate with one more sample counted."""
    targets = targets or Targets()
    totals = {**empty_window(), **window}
    seconds = sample.seconds
    if sample.kind == "opened":
        totals["opened"] += 1
        totals["recurrences"] += int(sample.recurrence)
        if seconds is not None:
            _add_measure(totals, "ttd", seconds)
    elif sample.kind == "acknowledged" and seconds is not None:
        totals["acknowledged"] += 1
        _add_measure(totals, "tta", seconds)
        within = seconds <= targets.mtta.total_seconds()
        totals["tta_within_target"] += int(within)
    elif sample.kind == "resolved" and seconds is not None:
        totals["resolved"] += 1
        _add_measure(totals, "ttr", seconds)
        within = seconds <= targets.mttr.total_seconds()
        totals["ttr_within_target"] += int(within)
        totals["resolved_unacknowledged"] += int(not sample.acknowledged)
        totals["false_positives"] += int(sample.false_positive)
        totals["impact_score"] += sample.impact
    elif sample.kind == "downtime" and sample.span_end is not None:
        span = [sample.opened_at.timestamp(), sample.span_end.timestamp()]
        totals["critical_spans"] = merge_spans([*totals["critical_spans"], span])
    elif sample.kind == "escalated":
        totals["escalations"] += 1
    elif sample.kind == "notified":
        totals["notifications"] += 1
    return totals


def merge_windows(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Return the aggregate of the samples of both windows."""
    a = {**empty_window(), **first}
    b = {**empty_window(), **second}
    merged: dict[str, Any] = {name: a[name] + b[name] for name in (*COUNTS, *SUMS)}
    merged["critical_spans"] = merge_spans(a["critical_spans"] + b["critical_spans"])
    for measure in MEASURES:
        merged[measure] = {
            "count": a[measure]["count"] + b[measure]["count"],
            "sum": a[measure]["sum"] + b[measure]["sum"],
            "sketch": sketches.merge(a[measure]["sketch"], b[measure]["sketch"]),
        }
    return merged


def summarize_measure(measure: dict[str, Any]) -> dict[str, Any]:
    """Return count, exact mean and sketch percentiles in seconds, null if empty."""
    count = int(measure["count"])
    summary: dict[str, Any] = {"count": count, "mean_s": None}
    summary.update({f"{name}_s": None for name in QUANTILES})
    if count == 0:
        return summary
    summary["mean_s"] = measure["sum"] / count
    for name, value in sketches.quantiles(measure["sketch"], QUANTILES).items():
        summary[f"{name}_s"] = value
    return summary


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def summarize(
    totals: dict[str, Any], size_s: float = 3600, window_start: float | None = None
) -> dict[str, Any]:
    """Return a window's metrics; means, rates and shares are null when empty.

    Availability is one minus the share of the window during which at least
    one critical incident was open, counted within the window that starts at
    `window_start` (the whole spans when it is None). It is null for a
    window without incidents.
    """
    totals = {**empty_window(), **totals}
    opened = int(totals["opened"])
    acknowledged = int(totals["acknowledged"])
    resolved = int(totals["resolved"])
    measures = {m: summarize_measure(totals[m]) for m in MEASURES}
    availability = None
    spans = totals["critical_spans"]
    if opened or spans:
        if window_start is None:
            down_s = covered_s(spans, float("-inf"), float("inf"))
        else:
            down_s = covered_s(spans, window_start, window_start + size_s)
        availability = max(0.0, 1.0 - down_s / size_s)
    return {
        "opened": opened,
        "acknowledged": acknowledged,
        "resolved": resolved,
        "unacknowledged": max(0, opened - acknowledged),
        "resolved_unacknowledged": int(totals["resolved_unacknowledged"]),
        "mtta_s": measures["tta"]["mean_s"],
        "mttr_s": measures["ttr"]["mean_s"],
        "mttd_s": measures["ttd"]["mean_s"],
        **measures,
        "sla": {
            "tta": _share(totals["tta_within_target"], acknowledged),
            "ttr": _share(totals["ttr_within_target"], resolved),
        },
        "availability": availability,
        "recurrence_rate": _share(totals["recurrences"], opened),
        "false_positive_rate": _share(totals["false_positives"], resolved),
        "recurrences": int(totals["recurrences"]),
        "false_positives": int(totals["false_positives"]),
        "escalations": int(totals["escalations"]),
        "notifications": int(totals["notifications"]),
        "impact_score": float(totals["impact_score"]),
    }


def split_dimension(dimension: str) -> tuple[str, str | None]:
    """Return the kind (`all`, `service`, `severity`) and name of a table key."""
    kind, _, name = dimension.partition(":")
    return kind, (name or None)


def rate_targets_met(
    summary: dict[str, Any], targets: Targets
) -> dict[str, bool | None]:
    """Return whether each rate is at or under its target, None when it is null."""
    met: dict[str, bool | None] = {}
    for name in ("recurrence_rate", "false_positive_rate"):
        rate = summary[name]
        met[name] = None if rate is None else rate <= getattr(targets, name)
    return met


def window_rows(
    items: Any,
    window: str,
    dimension: str | None = None,
    kind: str | None = None,
    targets: Targets | None = None,
) -> list[dict[str, Any]]:
    """Flatten a windowed table's `((key, (start, end)), totals)` items into rows.

    `dimension` keeps one key; `kind` keeps the keys of one kind. Each row's
    `rate_targets_met` compares its rates with `targets` (the defaults when
    None).
    """
    targets = targets or Targets()
    size_s = WINDOWS[window].size_s
    rows = []
    for stored_key, totals in items:
        key, (start, end) = stored_key
        if dimension is not None and key != dimension:
            continue
        key_kind, name = split_dimension(key)
        if kind is not None and key_kind != kind:
            continue
        row: dict[str, Any] = {
            "dimension": key,
            "window": window,
            "window_start": start,
            "window_end": end,
            **summarize(totals or {}, size_s, start),
        }
        row["rate_targets_met"] = rate_targets_met(row, targets)
        if key_kind in {"service", "severity"}:
            row[key_kind] = name
        rows.append(row)
    return sorted(rows, key=lambda row: (row["dimension"], row["window_start"]))

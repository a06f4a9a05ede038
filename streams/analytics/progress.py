"""Progress of each incident's events into the analytics tables."""

from __future__ import annotations

from typing import Any

from schemas.analytics import Targets
from schemas.records import EventKind, IncidentEvent, ResponseSample
from streams.analytics.metrics import downtime_samples, sample_for


def next_samples(
    progress: dict[str, Any] | None, event: IncidentEvent, targets: Targets
) -> tuple[dict[str, Any], list[ResponseSample]]:
    """Return the incident's new progress and the samples its event adds.

    An event at or below the last counted `seq` is a redelivery and adds
    nothing. Only the first acknowledgement and the first resolve count, as
    in PagerDuty's analytics, so a reopened incident keeps its first times.
    """
    state = {"seq": 0, "acknowledged": False, "resolved": False, **(progress or {})}
    if event.seq <= state["seq"]:
        return state, []
    state["seq"] = event.seq
    if event.kind is EventKind.ACKNOWLEDGED:
        if state["acknowledged"]:
            return state, []
        state["acknowledged"] = True
    if event.kind is EventKind.RESOLVED:
        if state["resolved"]:
            return state, []
        state["resolved"] = True
    sample = sample_for(event, targets)
    if sample is None:
        return state, []
    return state, [sample, *downtime_samples(event)]

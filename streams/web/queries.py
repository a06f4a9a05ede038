"""Incident list filters and request bodies of the web view, validated."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.records import IncidentState, Severity

MAX_PAGE = 500


class IncidentFilter(BaseModel):
    """Query parameters of the incident list."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="incident query")

    service: str | None = None
    state: IncidentState | None = None
    severity: Severity | None = None
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0)

    def keep(self, incident: dict[str, Any]) -> bool:
        if self.service is not None and incident.get("service") != self.service:
            return False
        if self.state is not None and incident.get("state") != self.state:
            return False
        return self.severity is None or incident.get("severity") == self.severity


class CommandBody(BaseModel):
    """Body of an acknowledge or resolve request."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="request body")

    actor: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    note: str = Field(
        default="", max_length=2000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
    )
    resolution: Literal["fixed", "false_positive"] | None = Field(
        default=None,
        description="why a resolve closed the incident; false_positive counts "
        "it in the false-positive rate",
    )


def summary(incident: dict[str, Any]) -> dict[str, Any]:
    """Return an incident without its timeline, for lists."""
    return {k: v for k, v in incident.items() if k not in {"timeline", "seen_commands"}}


def filter_incidents(
    incidents: list[dict[str, Any]], query: IncidentFilter
) -> dict[str, Any]:
    """Filter, sort newest first and page a list of stored incidents."""
    kept = sorted(
        (summary(i) for i in incidents if query.keep(i)),
        key=lambda i: (i["opened_at"], i["incident_id"]),
        reverse=True,
    )
    page = kept[query.offset : query.offset + query.limit]
    return {"total": len(kept), "offset": query.offset, "incidents": page}


def merge_listings(
    local: list[dict[str, Any]], parts: list[dict[str, Any]], query: IncidentFilter
) -> dict[str, Any]:
    """Merge this worker's incidents with other workers' first pages, then page.

    Each part contains a worker's first `offset + limit` matches, which is all
    a page of the merged list can contain.
    """
    first_pages = query.model_copy(
        update={"offset": 0, "limit": query.offset + query.limit}
    )
    everything = filter_incidents(local, first_pages)
    total = everything["total"]
    merged = list(everything["incidents"])
    for part in parts:
        total += int(part.get("total", 0))
        merged.extend(part.get("incidents", []))
    merged.sort(key=lambda i: (i["opened_at"], i["incident_id"]), reverse=True)
    page = merged[query.offset : query.offset + query.limit]
    return {"total": total, "offset": query.offset, "incidents": page}

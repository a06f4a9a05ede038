"""Alerts raised when a service's MTTA or MTTR passes its alert level."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas.records import Alert, AlertStatus, Severity, stable_hash
from streams.correlate.identity import group_key_for

if TYPE_CHECKING:
    from schemas.config import Config

SOURCE = "analytics"
# The daily window is the one checked: an hourly mean of one slow incident
# would page too eagerly, and a weekly one too late.
CHECKED_WINDOW = "daily"
ALERT_NAMES = {"mtta": "MTTABreach", "mttr": "MTTRBreach"}


def is_target_alert(incident: dict[str, Any]) -> bool:
    """Return whether a stored incident was opened by a response target alert."""
    labels = incident.get("labels", {})
    return bool(labels.get("alertname") in ALERT_NAMES.values() and "measure" in labels)


def breach_changes(
    summary: dict[str, Any], config: Config, raised: dict[str, str]
) -> dict[str, AlertStatus]:
    """Return the measures whose alert starts firing or resolves.

    `raised` maps a measure to the status last sent for this window, so a
    breach fires once and resolves once the mean drops back to its level.
    """
    levels = {
        "mtta": config.targets.mtta_alert.total_seconds(),
        "mttr": config.targets.mttr_alert.total_seconds(),
    }
    changes: dict[str, AlertStatus] = {}
    for measure, level in levels.items():
        mean = summary.get(f"{measure}_s")
        if mean is None:
            continue
        firing = raised.get(measure) == AlertStatus.FIRING
        if mean > level and not firing:
            changes[measure] = AlertStatus.FIRING
        elif mean <= level and firing:
            changes[measure] = AlertStatus.RESOLVED
    return changes


def breach_alert(
    config: Config,
    service: str,
    measure: str,
    window_start: float,
    status: AlertStatus,
    mean_s: float,
    at: datetime,
) -> Alert:
    """Build the alert of one service's breach in one daily window."""
    level = getattr(config.targets, f"{measure}_alert").total_seconds()
    start = datetime.fromtimestamp(window_start, UTC)
    labels = {
        "alertname": ALERT_NAMES[measure],
        "service": service,
        "measure": measure,
        "window": CHECKED_WINDOW,
    }
    fingerprint = stable_hash(SOURCE, sorted(labels.items()), window_start)
    summary = (
        f"{measure.upper()} of {service} is {mean_s / 60:.1f} min, above the "
        f"alert level of {level / 60:.1f} min (daily window from "
        f"{start.isoformat()})"
    )
    return Alert(
        event_id=stable_hash(fingerprint, status.value, at.isoformat()),
        fingerprint=fingerprint,
        group_key=group_key_for(config, labels, fingerprint),
        rule=f"{measure}_alert",
        status=status,
        severity=Severity.HIGH,
        labels=labels,
        annotations={"summary": summary},
        starts_at=at,
        ends_at=at if status is AlertStatus.RESOLVED else None,
        at=at,
        auto_resolve=True,
        source=SOURCE,
    )

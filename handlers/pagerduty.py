"""PagerDuty receiver: Events API v2 trigger, acknowledge and resolve."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pagerduty
from pydantic import SecretStr

from handlers.base import DeliveryError, parse_retry_after, retriable_status
from schemas.records import EventKind, Notification, Severity

log = logging.getLogger(__name__)

# Events API v2 limits: the summary is cut at 1024 characters.
SUMMARY_MAX = 1024

PAGERDUTY_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
    Severity.INFO: "info",
}

ACTIONS = {
    EventKind.OPENED: "trigger",
    EventKind.ESCALATED: "trigger",
    EventKind.RELEASED: "trigger",
    EventKind.REOPENED: "trigger",
    EventKind.ACKNOWLEDGED: "acknowledge",
    EventKind.RESOLVED: "resolve",
    # A trigger on the same dedup_key returns an acknowledged alert to triggered.
    EventKind.ACK_TIMED_OUT: "trigger",
}


def trigger_payload(notification: Notification) -> dict[str, Any]:
    event = notification.event
    summary = event.title
    if len(summary) > SUMMARY_MAX:
        log.warning(
            "pagerduty summary cut incident_id=%s length=%d",
            event.incident_id,
            len(summary),
        )
        summary = summary[: SUMMARY_MAX - 1] + "…"
    return {
        "summary": summary,
        "source": event.service,
        "severity": PAGERDUTY_SEVERITY[event.severity],
        "timestamp": event.opened_at.isoformat(),
        "component": event.labels.get("metric") or event.rule,
        "custom_details": {"labels": event.labels, "rule": event.rule},
    }


class PagerDutyReceiver:
    """Mirror an incident as a PagerDuty alert whose dedup_key is the incident id."""

    kind = "pagerduty"

    def __init__(
        self, name: str, routing_key: SecretStr, base_url: str, timeout_s: float
    ) -> None:
        self.name = name
        client = pagerduty.EventsApiV2Client(
            routing_key.get_secret_value(), base_url=base_url
        )
        # The client retries 5xx and 429 itself, 429 without limit. Keep one
        # extra try for 429 (a value of 0 would mean "without limit") and none
        # for anything else, so the notify stage's retry policy decides.
        client.retry = {429: 1}
        client.max_network_attempts = 0
        client.sleep_timer = 0.5
        # The client declares an int timeout in seconds.
        client.timeout = max(1, round(timeout_s))
        self._client = client

    def __repr__(self) -> str:
        return f"PagerDutyReceiver(name={self.name!r})"

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        action = ACTIONS.get(notification.event.kind)
        if action is None:
            return state
        incident_id = notification.event.incident_id
        await asyncio.to_thread(self._send, action, incident_id, notification)
        return {"dedup_key": incident_id, "last_action": action}

    def _send(self, action: str, dedup_key: str, notification: Notification) -> None:
        try:
            if action == "trigger":
                self._client.send_event(
                    "trigger",
                    dedup_key=dedup_key,
                    payload=trigger_payload(notification),
                )
            else:
                self._client.send_event(action, dedup_key=dedup_key)
        except pagerduty.HttpError as exc:
            response = exc.response
            status = response.status_code if response is not None else 0
            retry_after = response.headers.get("Retry-After") if response else None
            raise DeliveryError(
                f"pagerduty rejected {action} for incident {dedup_key}: HTTP {status}",
                retriable=status == 0 or retriable_status(status),
                retry_after_s=parse_retry_after(retry_after),
            ) from None
        except pagerduty.Error as exc:
            raise DeliveryError(
                f"pagerduty {action} for incident {dedup_key} failed: {exc}",
                retriable=True,
            ) from None

"""PagerDuty receiver: Events API v2 trigger, acknowledge and resolve."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import pagerduty
from pydantic import SecretStr

from handlers.base import DeliveryError, parse_retry_after, retriable_status
from schemas.records import EventKind, Notification, Severity

log = logging.getLogger(__name__)

# Events API v2 limits: a summary of at most 1024 characters and an event of
# at most 512 KB, read here as 512 * 1024 bytes of JSON.
SUMMARY_MAX = 1024
EVENT_MAX_BYTES = 512 * 1024
# Bytes kept free for the routing key, which the client adds to the event.
ROUTING_KEY_ALLOWANCE = 100
# Hex digits of the SHA-256 digest that name a routing key in state and errors.
KEY_ID_LENGTH = 12

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


def fit_event(event: dict[str, Any], incident_id: str) -> dict[str, Any]:
    """Return the event, without its custom details if it is over EVENT_MAX_BYTES.

    Raises a permanent DeliveryError if the event is still too large.
    """
    size = _json_size(event) + ROUTING_KEY_ALLOWANCE
    if size <= EVENT_MAX_BYTES:
        return event
    payload = dict(event.get("payload") or {})
    payload["custom_details"] = {
        "truncated": f"custom details dropped: the event was {size} bytes, "
        f"over the {EVENT_MAX_BYTES} byte limit"
    }
    smaller = {**event, "payload": payload}
    log.warning(
        "pagerduty event over the size limit, custom details dropped "
        "incident_id=%s bytes=%d limit=%d",
        incident_id,
        size,
        EVENT_MAX_BYTES,
    )
    if _json_size(smaller) + ROUTING_KEY_ALLOWANCE > EVENT_MAX_BYTES:
        raise DeliveryError(
            f"pagerduty event for incident {incident_id} is over "
            f"{EVENT_MAX_BYTES} bytes even without custom details",
            retriable=False,
        )
    return smaller


def routing_key_id(routing_key: str) -> str:
    """Return a short SHA-256 digest that names a routing key without revealing it."""
    digest = hashlib.sha256(routing_key.encode("utf-8")).hexdigest()
    return digest[:KEY_ID_LENGTH]


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


class _SingleAttemptClient(pagerduty.EventsApiV2Client):
    """An Events API client that makes one request per call and never retries.

    The library retries 429 without limit, or at least once for any count
    in its `retry` table, so a value there cannot turn it off. Raising from
    `postprocess`, which it calls on every response before its retry logic,
    ends the call at the first error status.
    """

    def postprocess(self, response: Any) -> None:
        if not response.is_success:
            raise pagerduty.HttpError(
                f"HTTP {response.status_code} from the Events API", response
            )


class PagerDutyReceiver:
    """Mirror an incident as a PagerDuty alert whose dedup_key is the incident id.

    The state of each incident records the id of the routing key that
    triggered its alert (`routing_key_id`, from `routing_key_id()`). Until
    the alert is resolved, every later event goes to that key: if the
    receiver's key has changed since, the event fails for good instead of
    reaching another service.
    """

    kind = "pagerduty"

    def __init__(
        self, name: str, routing_key: SecretStr, base_url: str, timeout_s: float
    ) -> None:
        self.name = name
        client = _SingleAttemptClient(routing_key.get_secret_value(), base_url=base_url)
        # No retries inside the client: the notify stage's retry policy is
        # the only one, for error statuses and network errors alike.
        client.retry = {}
        client.max_network_attempts = 0
        # The client declares an int timeout in seconds.
        client.timeout = max(1, round(timeout_s))
        self._client = client
        self._key_id = routing_key_id(routing_key.get_secret_value())

    def __repr__(self) -> str:
        return f"PagerDutyReceiver(name={self.name!r})"

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        action = ACTIONS.get(notification.event.kind)
        if action is None:
            return state
        incident_id = notification.event.incident_id
        key_id = self._check_routing_key(action, incident_id, state)
        await asyncio.to_thread(self._send, action, incident_id, notification)
        new_state = {"dedup_key": incident_id, "last_action": action}
        if key_id is not None:
            new_state["routing_key_id"] = key_id
        return new_state

    def _check_routing_key(
        self, action: str, incident_id: str, state: dict[str, Any]
    ) -> str | None:
        """Return the id of the routing key the incident's alert must use.

        A trigger of an alert that is not open (never triggered, or
        resolved) opens it with the receiver's key. Any other event goes
        to the key that opened it, and raises a permanent DeliveryError if
        that key is no longer the receiver's. State written before keys
        were recorded has no id, so its events use the receiver's key.
        """
        recorded = state.get("routing_key_id")
        alert_open = state.get("last_action") in {"trigger", "acknowledge"}
        if action == "trigger" and not alert_open:
            return self._key_id
        if recorded is None or recorded == self._key_id:
            return recorded
        raise DeliveryError(
            f"pagerduty {action} for incident {incident_id} not sent: its alert "
            f"was triggered with routing key id {recorded} of receiver "
            f"{self.name}, which now has routing key id {self._key_id}. "
            f"Update the alert in PagerDuty, or restore the previous key",
            retriable=False,
        )

    def _send(self, action: str, dedup_key: str, notification: Notification) -> None:
        try:
            if action == "trigger":
                event = fit_event(
                    {
                        "event_action": "trigger",
                        "dedup_key": dedup_key,
                        "payload": trigger_payload(notification),
                    },
                    dedup_key,
                )
                self._client.send_event(
                    "trigger", dedup_key=dedup_key, payload=event["payload"]
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
                outcome_unknown=status == 0 or status >= 500,
            ) from None
        except pagerduty.Error as exc:
            raise DeliveryError(
                f"pagerduty {action} for incident {dedup_key} failed: {exc}",
                retriable=True,
                outcome_unknown=True,
            ) from None

"""Fake PagerDuty Events API v2 serving alert events on POST /v2/enqueue.

Validation and alert de-duplication follow PagerDuty's Events API v2 docs
("Send an Alert Event" and "Events API v2 Overview" in PagerDuty/developer-docs).
pagerduty.EventsApiV2Client accepts only https:// base URLs, so give the fake a
TlsCertificate and pass `verify=certificate.client_context()` to the client. A
client built without `verify` trusts the certificate when SSL_CERT_FILE names
its cert_path, because httpx2 reads that variable unless trust_env is False.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from http import HTTPStatus
from typing import Any, Literal, TypeGuard

from aiohttp import web

from .server import FakeServer, TlsCertificate

logger = logging.getLogger(__name__)

AlertStatus = Literal["triggered", "acknowledged", "resolved"]

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_EVENT_BYTES = 512 * 1024
"""The docs limit payloads to "512 KB", which the fake reads as 512 * 1024 bytes."""
MAX_DEDUP_KEY_CHARS = 255
MAX_SUMMARY_CHARS = 1024


class FakePagerDuty(FakeServer):
    """Fake Events API v2 that validates events and tracks alert status.

    Any non-empty routing key is accepted, although real keys are 32 characters.
    Alerts are kept per routing key, because PagerDuty applies acknowledge and
    resolve events only to an open alert opened through the same routing key.
    """

    def __init__(self, *, tls: TlsCertificate | None = None) -> None:
        super().__init__(tls=tls)
        self._events: list[dict[str, Any]] = []
        self._alerts: dict[tuple[str, str], AlertStatus] = {}

    @property
    def events(self) -> list[dict[str, Any]]:
        """Copies of accepted event bodies, oldest first.

        Each body's `dedup_key` is the key the response returned, so a trigger
        sent without one shows the generated key. Accepted events include
        acknowledge and resolve events that PagerDuty drops.
        """
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def alerts(self) -> dict[str, AlertStatus]:
        """Current status by dedup_key, over all routing keys.

        If two routing keys share a dedup_key, this view keeps only one of the
        two, so use `alerts_for` instead.
        """
        with self._lock:
            return {
                dedup_key: status for (_, dedup_key), status in self._alerts.items()
            }

    def alerts_for(self, routing_key: str) -> dict[str, AlertStatus]:
        """Current status by dedup_key of the alerts opened through `routing_key`."""
        with self._lock:
            return {
                dedup_key: status
                for (key, dedup_key), status in self._alerts.items()
                if key == routing_key
            }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)

    def error_body(self, status: int) -> dict[str, Any]:
        """Body of an injected error.

        The docs name 429 "Request Limit Exceeded" but show no body for 429 or
        5xx responses, so these bodies are the fake's own.
        """
        if status == 429:
            message = "Request Limit Exceeded"
        else:
            message = HTTPStatus(status).phrase
        return {"status": "error", "message": message}

    async def _enqueue(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_EVENT_BYTES:
            return _invalid_event(
                [f"Event object is {len(raw)} bytes, over the {MAX_EVENT_BYTES} limit"]
            )
        try:
            event = json.loads(raw)
        except ValueError:
            return _invalid_event(["Event object is not valid JSON"])
        if not isinstance(event, dict):
            return _invalid_event(["Event object must be a JSON object"])

        errors = validate_event(event)
        if errors:
            return _invalid_event(errors)

        routing_key: str = event["routing_key"]
        action: str = event["event_action"]
        dedup_key: str = event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            accepted = copy.deepcopy(event)
            accepted["dedup_key"] = dedup_key
            self._events.append(accepted)
            self._apply(routing_key, action, dedup_key)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status=202,
        )

    def _apply(self, routing_key: str, action: str, dedup_key: str) -> None:
        """Move the alert to its next status. The caller must hold the lock.

        A trigger for an open alert adds to that alert, and a trigger for a
        resolved or unknown key opens a new alert. Acknowledge and resolve apply
        only to an open alert, and PagerDuty drops them otherwise.
        """
        key = (routing_key, dedup_key)
        current = self._alerts.get(key)
        is_open = current in ("triggered", "acknowledged")
        if action == "trigger" and not is_open:
            self._alerts[key] = "triggered"
        elif action == "acknowledge" and is_open:
            self._alerts[key] = "acknowledged"
        elif action == "resolve" and is_open:
            self._alerts[key] = "resolved"


def validate_event(event: dict[str, Any]) -> list[str]:
    """Return one message per rule of the Events API v2 that `event` breaks."""
    errors: list[str] = []
    if not _is_nonempty_string(event.get("routing_key")):
        errors.append("'routing_key' is missing or empty")

    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(
            f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}, not {action!r}"
        )

    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY_CHARS:
        errors.append(
            f"'dedup_key' is {len(dedup_key)} characters, over the "
            f"{MAX_DEDUP_KEY_CHARS} limit"
        )
    elif action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required for {action} events")

    if action == "trigger":
        errors.extend(_validate_payload(event.get("payload")))
        errors.extend(_validate_context_list(event, "images", "src"))
        errors.extend(_validate_context_list(event, "links", "href"))
    return errors


def _validate_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger events and must be an object"]
    errors: list[str] = []
    summary = payload.get("summary")
    if not _is_nonempty_string(summary):
        errors.append("'payload.summary' is missing or empty")
    elif len(summary) > MAX_SUMMARY_CHARS:
        errors.append(
            f"'payload.summary' is {len(summary)} characters, over the "
            f"{MAX_SUMMARY_CHARS} limit"
        )
    if not _is_nonempty_string(payload.get("source")):
        errors.append("'payload.source' is missing or empty")
    severity = payload.get("severity")
    if severity not in SEVERITIES:
        errors.append(
            f"'payload.severity' must be one of {', '.join(SEVERITIES)}, "
            f"not {severity!r}"
        )
    return errors


def _validate_context_list(
    event: dict[str, Any], name: str, required_field: str
) -> list[str]:
    """Check `images` or `links`: a list of objects that each have the field."""
    items = event.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        return [f"'{name}' must be an array of objects"]
    errors: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not _is_nonempty_string(
            item.get(required_field)
        ):
            errors.append(f"'{name}[{index}].{required_field}' is missing or empty")
    return errors


def _is_nonempty_string(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value.strip() != ""


def _invalid_event(errors: list[str]) -> web.Response:
    logger.info("FakePagerDuty rejected an event: %s", " | ".join(errors))
    return web.json_response(
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        },
        status=400,
    )

"""HTTP intake of external alerts: Alertmanager webhooks and a generic JSON form.

`POST /alerts/alertmanager` takes an Alertmanager webhook payload (version 4)
and `POST /alerts` the generic form of `schemas.intake.GenericPayload`. Every
alert becomes one `Alert` on the alerts topic, keyed by its group key, so
correlate handles it like a detected alert. A payload is accepted or rejected
whole: one invalid alert rejects it with 400, and nothing is published.

NOTE: the intake has no authentication, like the rest of the web view, so the
web view must listen only where trusted senders reach it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web as aiohttp_web
from aiokafka.errors import KafkaError
from faust import web
from pydantic import ValidationError

from schemas.intake import ExternalAlert, Intake, parse_alertmanager, parse_generic
from schemas.records import Alert, stable_hash
from streams import topics
from streams.correlate.identity import alert_identity
from streams.deadletter import describe_validation_error
from streams.keys import encode_key

if TYPE_CHECKING:
    from schemas.config import Config
    from streams.app import Pipeline

log = logging.getLogger(__name__)

STAGE = "intake"
MAX_BODY_BYTES = 1024 * 1024
# How long a request waits for the broker to acknowledge its alerts. A sender
# that gets 503 retries, and correlate drops the copies by event id.
PUBLISH_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5


def alert_record(external: ExternalAlert, config: Config | None = None) -> Alert:
    """Build the alerts-topic record of an external alert.

    The identity hashes the source and the labels as sent, never the
    annotations. The event id hashes the fingerprint, status and start, so
    Alertmanager's repeated notifications of one alert carry one id.
    """
    sender_group = None
    if external.source == "alertmanager":
        sender_group = external.annotations.get("alertmanager_group_key")
    fingerprint, group_key = alert_identity(
        external.source, external.labels, config, sender_group
    )
    starts_at_utc = external.starts_at.astimezone(UTC).isoformat()
    return Alert(
        event_id=stable_hash(fingerprint, external.status.value, starts_at_utc),
        fingerprint=fingerprint,
        group_key=group_key,
        rule=external.rule,
        status=external.status,
        severity=external.severity,
        labels=with_service(external.labels),
        annotations=external.annotations,
        starts_at=external.starts_at,
        ends_at=external.ends_at,
        at=external.at,
        auto_resolve=True,
        source=external.source,
    )


def with_service(labels: dict[str, str]) -> dict[str, str]:
    """Add a `service` label from Prometheus' `job` label when `service` is missing."""
    if "service" in labels or "job" not in labels:
        return labels
    return {**labels, "service": labels["job"]}


def accepted_body(records: list[Alert], warnings: list[str]) -> dict[str, Any]:
    """Build the 202 response body: what was published for each alert."""
    alerts = [
        {
            "event_id": record.event_id,
            "fingerprint": record.fingerprint,
            "group_key": record.group_key,
            "status": record.status.value,
            "rule": record.rule,
            "severity": record.severity.value,
        }
        for record in records
    ]
    return {"accepted": len(records), "alerts": alerts, "warnings": warnings}


async def read_body(request: web.Request) -> bytes | None:
    """Read the request body, or return None once it exceeds MAX_BODY_BYTES.

    A declared Content-Length over the limit is rejected before reading. A
    chunked body is read until one byte past the limit, so an oversized body
    is never held whole.
    """
    # faust's aiohttp driver passes aiohttp's own request to the views.
    http_request = cast(aiohttp_web.Request, request)
    declared = http_request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        return None
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        chunk = await http_request.content.read(MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            return bytes(body)
        body.extend(chunk)
    return None


async def publish_alerts(pipeline: Pipeline, records: list[Alert]) -> None:
    """Publish the records and wait until the broker has acknowledged each one.

    Raises TimeoutError after PUBLISH_TIMEOUT_S, or the producer's KafkaError.
    """
    topic = pipeline.topic(topics.ALERTS)
    async with asyncio.timeout(PUBLISH_TIMEOUT_S):
        pending = [
            await topic.send(key=encode_key(record.group_key), value=record.to_bytes())
            for record in records
        ]
        await asyncio.gather(*pending)


@dataclass(frozen=True)
class IntakeRoute:
    """One intake path, the source it records and the parser of its bodies."""

    path: str
    parse: Callable[[bytes], Intake]

    @property
    def source(self) -> str:
        return f"POST {self.path}"


ALERTMANAGER = IntakeRoute("/alerts/alertmanager", parse_alertmanager)
GENERIC = IntakeRoute("/alerts", parse_generic)


async def accept(
    pipeline: Pipeline, view: web.View, request: web.Request, route: IntakeRoute
) -> web.Response:
    """Validate one request body and publish its alerts, or reject it whole."""
    raw = await read_body(request)
    if raw is None:
        return await reject_oversized(pipeline, view, route)
    try:
        intake = route.parse(raw)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        await pipeline.dead_letters.send_raw(STAGE, route.source, raw, message)
        return view.json({"error": message}, status=400)

    config = pipeline.config
    records = [alert_record(external, config) for external in intake.alerts]
    try:
        await publish_alerts(pipeline, records)
    except (TimeoutError, KafkaError) as exc:
        return unavailable(view, route, len(records), exc)
    log.debug("external alerts accepted source=%s count=%d", route.source, len(records))
    return view.json(accepted_body(records, intake.warnings), status=202)


async def reject_oversized(
    pipeline: Pipeline, view: web.View, route: IntakeRoute
) -> web.Response:
    """Reply 413 and dead-letter the rejection, without the oversized body."""
    message = (
        f"request body larger than the limit of {MAX_BODY_BYTES} bytes. Send "
        "fewer alerts per request, for example with max_alerts in "
        "Alertmanager's webhook_config"
    )
    await pipeline.dead_letters.send_raw(
        STAGE, route.source, b"", message + ". The body was not kept."
    )
    return view.json({"error": message}, status=413)


def unavailable(
    view: web.View, route: IntakeRoute, count: int, exc: Exception
) -> web.Response:
    """Log a failed publish and reply 503, so that the sender retries."""
    log.warning(
        "publishing external alerts failed, responding 503 so the sender "
        "retries source=%s count=%d: %r",
        route.source,
        count,
        exc,
    )
    if isinstance(exc, TimeoutError):
        failure = f"timed out after {PUBLISH_TIMEOUT_S} s"
    else:
        failure = f"failed: {exc!r}"
    message = f"publishing to the alerts topic {failure}. Retry in {RETRY_AFTER_S} s"
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    return view.json({"error": message}, status=503, headers=headers)


def register(pipeline: Pipeline) -> None:
    """Register the two intake views on the pipeline's app."""
    app = pipeline.app

    @app.page(ALERTMANAGER.path)
    class AlertmanagerIntake(web.View):
        async def post(self, request: web.Request) -> web.Response:
            return await accept(pipeline, self, request, ALERTMANAGER)

    @app.page(GENERIC.path)
    class GenericIntake(web.View):
        async def post(self, request: web.Request) -> web.Response:
            return await accept(pipeline, self, request, GENERIC)

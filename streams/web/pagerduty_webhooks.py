"""PagerDuty Webhooks v3 in: acknowledge, resolve and reopen Tocsin incidents.

`POST /pagerduty/webhooks` receives one v3 event per request. The receiver
verifies `X-PagerDuty-Signature` and publishes an acknowledge, resolve or
reopen command to the incident's owning partition. It never writes a table.

A PagerDuty incident maps to a Tocsin incident through `event.data.incident_key`.
Tocsin triggers with `dedup_key` set to its incident id, and an incident that an
Events API v2 trigger opens takes the trigger's dedup key as its incident key
(PagerDuty's Event Management guide, support.pagerduty.com). The `incident` data
type of v3 webhooks carries `incident_key` (PagerDuty/developer-docs,
docs/webhooks/01-Overview.md). Older payloads lack it, so they are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from faust import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from schemas.records import Command, CommandKind, group_key_of
from streams import topics
from streams.deadletter import describe_validation_error

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/pagerduty/webhooks"
SOURCE = f"POST {WEBHOOK_PATH}"
STAGE = "pagerduty-webhooks"
SIGNATURE_HEADER = "X-PagerDuty-Signature"
WEBHOOK_ID_HEADER = "X-Webhook-Id"
SECRETS_VARIABLE = "TOCSIN_PAGERDUTY_WEBHOOK_SECRETS"
SIGNATURE_PREFIX = "v1="

COMMAND_KINDS = {
    "incident.acknowledged": CommandKind.ACKNOWLEDGE,
    "incident.resolved": CommandKind.RESOLVE,
    "incident.reopened": CommandKind.REOPEN,
}


class SigningSecrets:
    """The secrets of PagerDuty webhook subscriptions, from a comma-separated value.

    Several secrets are accepted at once, so a subscription's secret can be
    rotated without rejecting webhooks signed with the old one.
    """

    def __init__(self, value: SecretStr | None) -> None:
        text = value.get_secret_value() if value is not None else ""
        self._keys = tuple(
            part.strip().encode() for part in text.split(",") if part.strip()
        )

    def __repr__(self) -> str:
        return f"SigningSecrets(count={len(self._keys)})"

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, body: bytes, header: str | None) -> bool:
        """Return whether any `v1=` signature in `header` signs `body` with a secret.

        A v1 signature is the hex HMAC-SHA256 of the raw body. Values with
        another version or invalid hex are skipped.
        """
        signatures = parse_signatures(header)
        for key in self._keys:
            expected = hmac.new(key, body, hashlib.sha256).digest()
            for signature in signatures:
                if hmac.compare_digest(expected, signature):
                    return True
        return False


def parse_signatures(header: str | None) -> list[bytes]:
    """Return the decoded `v1=<hex>` values of an `X-PagerDuty-Signature` header."""
    signatures = []
    for part in (header or "").split(","):
        value = part.strip()
        if not value.startswith(SIGNATURE_PREFIX):
            continue
        try:
            signatures.append(bytes.fromhex(value.removeprefix(SIGNATURE_PREFIX)))
        except ValueError:
            continue
    return signatures


class Reference(BaseModel):
    """A PagerDuty object reference, such as the user in `event.agent`."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: str | None = None
    summary: str | None = None


class EventEnvelope(BaseModel):
    """The fields every v3 event has, whatever its `event_type`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    occurred_at: AwareDatetime
    agent: Reference | None = None


class WebhookEvent(EventEnvelope):
    """A v3 event of any type, whose `data` has a shape that depends on its type."""

    data: dict[str, Any] | None = None


class PagerDutyWebhook(BaseModel):
    """A PagerDuty Webhooks v3 payload: one event, whatever its type."""

    model_config = ConfigDict(extra="ignore")

    event: WebhookEvent


class IncidentData(BaseModel):
    """The incident in `event.data`. Older payloads may lack `incident_key`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    type: Literal["incident"] = "incident"
    incident_key: str | None = None
    html_url: str | None = None


class IncidentWebhookEvent(EventEnvelope):
    """A v3 event whose `data` is an incident."""

    data: IncidentData


class PagerDutyIncidentWebhook(BaseModel):
    """A v3 payload whose event is about an incident."""

    model_config = ConfigDict(extra="ignore")

    event: IncidentWebhookEvent


def tocsin_incident_id(incident: IncidentData) -> str | None:
    """Return the Tocsin incident id a PagerDuty incident carries, if it has one.

    NOTE: the incident key is the dedup key of the alert that opened the
    PagerDuty incident. An alert that PagerDuty grouped or merged into another
    incident maps to that incident's key, which may not be a Tocsin id.
    """
    key = incident.incident_key
    if not key:
        return None
    try:
        group_key_of(key)
    except ValueError:
        return None
    return key


def actor_of(agent: Reference | None) -> str:
    """Name who acted in PagerDuty: the user's name and id, else `PagerDuty`."""
    if agent is None or not agent.summary:
        return "PagerDuty"
    if agent.id:
        return f"{agent.summary} ({agent.id})"
    return agent.summary


def command_of(
    event: IncidentWebhookEvent, incident_id: str, webhook_id: str | None
) -> Command:
    """Build the command that an incident event requests.

    The command id derives from `X-Webhook-Id` and the event id, which stay
    the same on every delivery attempt, so correlate drops a redelivery.
    """
    identity = [webhook_id, event.id] if webhook_id else [event.id]
    details: dict[str, Any] = {
        "pagerduty_incident_id": event.data.id,
        "pagerduty_event_type": event.event_type,
    }
    if event.agent is not None and event.agent.id:
        details["pagerduty_user_id"] = event.agent.id
    if event.data.html_url:
        details["pagerduty_url"] = event.data.html_url
    return Command(
        command_id=":".join(["pagerduty", *identity]),
        kind=COMMAND_KINDS[event.event_type],
        incident_id=incident_id,
        actor=actor_of(event.agent),
        source="pagerduty",
        at=event.occurred_at,
        details=details,
    )


@dataclass(frozen=True)
class Reply:
    """The HTTP status and JSON body to send back to PagerDuty."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


PublishCommand = Callable[[str, Command], Awaitable[None]]
SendDeadLetter = Callable[[bytes, str], Awaitable[None]]


class WebhookReceiver:
    """Turn verified PagerDuty webhooks into commands on the command topic."""

    def __init__(
        self,
        secrets: SigningSecrets,
        publish: PublishCommand,
        dead_letter: SendDeadLetter,
    ) -> None:
        self.secrets = secrets
        self.publish = publish
        self.dead_letter = dead_letter
        self.rejected = 0

    def __repr__(self) -> str:
        return f"WebhookReceiver(secrets={self.secrets!r}, rejected={self.rejected})"

    async def handle(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Verify one webhook request and publish the command that it requests."""
        if not self.secrets:
            self.rejected += 1
            log.warning(
                "pagerduty webhook rejected: %s is not set (rejected=%d)",
                SECRETS_VARIABLE,
                self.rejected,
            )
            message = (
                f"PagerDuty webhooks are disabled because {SECRETS_VARIABLE} is "
                "not set: set it to the webhook subscription's signing secret"
            )
            return Reply(503, {"error": message})
        webhook_id = headers.get(WEBHOOK_ID_HEADER)
        if not self.secrets.verify(body, headers.get(SIGNATURE_HEADER)):
            self.rejected += 1
            log.warning(
                "pagerduty webhook rejected: missing or invalid %s "
                "webhook_id=%s (rejected=%d)",
                SIGNATURE_HEADER,
                webhook_id,
                self.rejected,
            )
            message = (
                f"missing or invalid {SIGNATURE_HEADER}: no v1 signature matches "
                f"a secret in {SECRETS_VARIABLE}"
            )
            return Reply(401, {"error": message})
        try:
            event_type = PagerDutyWebhook.model_validate_json(body).event.event_type
            if event_type not in COMMAND_KINDS:
                log.info(
                    "pagerduty webhook ignored: event type %s webhook_id=%s",
                    event_type,
                    webhook_id,
                )
                return Reply(200, {"ignored": f"event type {event_type}"})
            event = PagerDutyIncidentWebhook.model_validate_json(body).event
        except ValidationError as exc:
            error = describe_validation_error(exc)
            await self.dead_letter(body, error)
            return Reply(400, {"error": error})
        return await self._apply(event, webhook_id)

    async def _apply(
        self, event: IncidentWebhookEvent, webhook_id: str | None
    ) -> Reply:
        incident_id = tocsin_incident_id(event.data)
        if incident_id is None:
            log.info(
                "pagerduty webhook ignored: incident %s has no Tocsin incident key "
                "(incident_key=%r) event_type=%s webhook_id=%s",
                event.data.id,
                event.data.incident_key,
                event.event_type,
                webhook_id,
            )
            reason = f"PagerDuty incident {event.data.id} is not a Tocsin incident"
            return Reply(202, {"ignored": reason})
        if webhook_id is None:
            log.warning(
                "pagerduty webhook without %s event_id=%s: redeliveries are "
                "dropped by event id only",
                WEBHOOK_ID_HEADER,
                event.id,
            )
        command = command_of(event, incident_id, webhook_id)
        await self.publish(group_key_of(incident_id), command)
        log.info(
            "pagerduty command accepted kind=%s incident_id=%s actor=%r "
            "webhook_id=%s event_id=%s",
            command.kind,
            incident_id,
            command.actor,
            webhook_id,
            event.id,
        )
        return Reply(202, {"accepted": command.model_dump(mode="json")})


def register(pipeline: Pipeline) -> None:
    """Register `POST /pagerduty/webhooks` on the pipeline's app."""

    async def publish(group_key: str, command: Command) -> None:
        await pipeline.publish(topics.COMMANDS, group_key, command)

    async def dead_letter(body: bytes, error: str) -> None:
        # The body carries no secret: the signature travels in a header.
        await pipeline.dead_letters.send_raw(STAGE, SOURCE, body, error)

    secrets = SigningSecrets(pipeline.settings.pagerduty_webhook_secrets)
    receiver = WebhookReceiver(secrets, publish, dead_letter)
    if not secrets:
        log.info("pagerduty webhooks disabled: %s is not set", SECRETS_VARIABLE)

    @pipeline.app.page(WEBHOOK_PATH)
    class PagerDutyWebhooks(web.View):
        async def post(self, request: web.Request) -> web.Response:
            reply = await receiver.handle(await request.read(), request.headers)
            return self.json(reply.body, status=reply.status)

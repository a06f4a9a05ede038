"""PagerDuty Webhooks v3 in: signatures, payload mapping and replies, no broker."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from vendor_requests import pagerduty_signature

from schemas.records import Command, CommandKind
from streams.web.pagerduty_webhooks import (
    SECRETS_VARIABLE,
    PagerDutyIncidentWebhook,
    Reference,
    Reply,
    SigningSecrets,
    WebhookReceiver,
    actor_of,
    command_of,
    parse_signatures,
    tocsin_incident_id,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = (
    REPO.parent
    / "shared"
    / "data"
    / "webhook_samples"
    / "go-pagerduty"
    / "webhookv3_incident.priority_updated.json"
)
SECRET = "whsec-unit-test-current-0123456789"
OLD_SECRET = "whsec-unit-test-previous-9876543210"
WEBHOOK_ID = "f6e5d4c3-b2a1-4f00-9e8d-7c6b5a493827"
INCIDENT_ID = "g1-1"
EVENT_ID = "01BWDWL3NYY7LUFPZCC28QUCMK"


def sample() -> dict[str, Any]:
    if not SAMPLE.is_file():
        pytest.skip(f"PagerDuty webhook sample not found at {SAMPLE}")
    payload: dict[str, Any] = json.loads(SAMPLE.read_text())
    return payload


def incident_payload(
    event_type: str = "incident.acknowledged", incident_key: str | None = INCIDENT_ID
) -> dict[str, Any]:
    """Return the real sample adapted to `event_type` for a Tocsin incident."""
    payload = copy.deepcopy(sample())
    event = payload["event"]
    event["event_type"] = event_type
    event["data"]["status"] = event_type.removeprefix("incident.")
    if incident_key is not None:
        event["data"]["incident_key"] = incident_key
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return pagerduty_signature(body, secret)


def secrets(*values: str) -> SigningSecrets:
    return SigningSecrets(SecretStr(",".join(values)))


class Recorder:
    """A receiver whose publish and dead-letter calls are recorded, not sent."""

    def __init__(self, signing: SigningSecrets) -> None:
        self.published: list[tuple[str, Command]] = []
        self.dead_letters: list[tuple[bytes, str]] = []
        self.receiver = WebhookReceiver(signing, self._publish, self._dead_letter)

    async def _publish(self, key: str, command: Command) -> None:
        self.published.append((key, command))

    async def _dead_letter(self, body: bytes, error: str) -> None:
        self.dead_letters.append((body, error))

    def post(
        self, body: bytes, signature: str | None, webhook_id: str | None = WEBHOOK_ID
    ) -> Reply:
        headers = {}
        if signature is not None:
            headers["X-PagerDuty-Signature"] = signature
        if webhook_id is not None:
            headers["X-Webhook-Id"] = webhook_id
        return asyncio.run(self.receiver.handle(body, headers))


def parse_incident(payload: dict[str, Any]) -> PagerDutyIncidentWebhook:
    return PagerDutyIncidentWebhook.model_validate_json(encode(payload))


# Signatures


def test_signature_one_secret_valid() -> None:
    body = encode(incident_payload())
    assert secrets(SECRET).verify(body, sign(body))


def test_signature_rotation_accepts_both_secrets() -> None:
    body = encode(incident_payload())
    rotating = secrets(OLD_SECRET, SECRET)
    assert rotating.verify(body, sign(body, OLD_SECRET))
    assert rotating.verify(body, sign(body, SECRET))


def test_signature_rotation_rejects_other_secret() -> None:
    body = encode(incident_payload())
    assert not secrets(OLD_SECRET, SECRET).verify(body, sign(body, "whsec-other"))


def test_signature_any_v1_value_matches() -> None:
    body = encode(incident_payload())
    wrong = sign(body, "whsec-other")
    right = sign(body)
    assert secrets(SECRET).verify(body, f"{wrong},{right}")
    assert secrets(SECRET).verify(body, f"{right}, {wrong}")


def test_signature_tampered_body_rejected() -> None:
    body = encode(incident_payload())
    tampered = body.replace(b"Tenex Engineer", b"Mallory")
    assert tampered != body
    assert not secrets(SECRET).verify(tampered, sign(body))


def test_signature_missing_header_rejected() -> None:
    body = encode(incident_payload())
    assert not secrets(SECRET).verify(body, None)
    assert not secrets(SECRET).verify(body, "")


def test_signature_other_version_ignored() -> None:
    body = encode(incident_payload())
    digest = sign(body).removeprefix("v1=")
    assert not secrets(SECRET).verify(body, f"v0={digest}")
    assert not secrets(SECRET).verify(body, digest)


def test_signature_invalid_hex_skipped() -> None:
    body = encode(incident_payload())
    assert parse_signatures("v1=zz,v1=0a0b") == [b"\x0a\x0b"]
    assert secrets(SECRET).verify(body, f"v1=not-hex,{sign(body)}")


def test_secrets_split_on_commas() -> None:
    assert len(secrets(" a ", "", "b ")) == 2
    assert len(SigningSecrets(SecretStr(" , "))) == 0
    assert len(SigningSecrets(None)) == 0


def test_secrets_repr_hides_values() -> None:
    text = repr(secrets(OLD_SECRET, SECRET))
    assert SECRET not in text
    assert OLD_SECRET not in text
    assert text == "SigningSecrets(count=2)"


# Mapping a payload to a command


def test_sample_acknowledged_maps_to_command() -> None:
    event = parse_incident(incident_payload()).event
    command = command_of(event, INCIDENT_ID, WEBHOOK_ID)
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert command.incident_id == INCIDENT_ID
    assert command.source == "pagerduty"
    assert command.command_id == f"pagerduty:{WEBHOOK_ID}:{EVENT_ID}"
    assert command.details["pagerduty_incident_id"] == "PGR0VU2"
    assert command.details["pagerduty_user_id"] == "PLH1HKV"


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("incident.acknowledged", CommandKind.ACKNOWLEDGE),
        ("incident.resolved", CommandKind.RESOLVE),
        ("incident.reopened", CommandKind.REOPEN),
    ],
)
def test_event_type_picks_command_kind(event_type: str, kind: CommandKind) -> None:
    event = parse_incident(incident_payload(event_type)).event
    assert command_of(event, INCIDENT_ID, WEBHOOK_ID).kind is kind


def test_actor_is_pagerduty_user() -> None:
    event = parse_incident(incident_payload()).event
    assert actor_of(event.agent) == "Tenex Engineer (PLH1HKV)"
    assert command_of(event, INCIDENT_ID, WEBHOOK_ID).actor == (
        "Tenex Engineer (PLH1HKV)"
    )


def test_actor_without_user() -> None:
    assert actor_of(None) == "PagerDuty"
    assert actor_of(Reference(id="PSERVICE", type="service_reference")) == "PagerDuty"
    assert actor_of(Reference(summary="API Service")) == "API Service"


def test_actor_null_agent_in_payload() -> None:
    payload = incident_payload("incident.resolved")
    payload["event"]["agent"] = None
    event = parse_incident(payload).event
    assert command_of(event, INCIDENT_ID, WEBHOOK_ID).actor == "PagerDuty"


def test_time_is_occurred_at() -> None:
    event = parse_incident(incident_payload()).event
    at = command_of(event, INCIDENT_ID, WEBHOOK_ID).at
    assert at == datetime(2021, 4, 26, 17, 36, 27, 458000, tzinfo=UTC)
    assert at.utcoffset() is not None


def test_time_with_offset_kept() -> None:
    payload = incident_payload()
    payload["event"]["occurred_at"] = "2021-04-26T19:36:27+02:00"
    event = parse_incident(payload).event
    at = command_of(event, INCIDENT_ID, WEBHOOK_ID).at
    assert at == datetime(2021, 4, 26, 17, 36, 27, tzinfo=UTC)


def test_time_without_zone_invalid() -> None:
    payload = incident_payload()
    payload["event"]["occurred_at"] = "2021-04-26T17:36:27"
    with pytest.raises(ValidationError) as excinfo:
        parse_incident(payload)
    locations = [error["loc"] for error in excinfo.value.errors()]
    assert ("event", "occurred_at") in locations


def test_incident_key_is_tocsin_id() -> None:
    data = parse_incident(incident_payload()).event.data
    assert tocsin_incident_id(data) == INCIDENT_ID


@pytest.mark.parametrize(
    "incident_key",
    [None, "", "d3640fbd41094207a1c11e58e46b1662", "-1", "g1-x"],
)
def test_incident_key_not_tocsin(incident_key: str | None) -> None:
    payload = incident_payload(incident_key=None)
    if incident_key is not None:
        payload["event"]["data"]["incident_key"] = incident_key
    data = parse_incident(payload).event.data
    assert tocsin_incident_id(data) is None


def test_command_id_without_webhook_id() -> None:
    event = parse_incident(incident_payload()).event
    assert command_of(event, INCIDENT_ID, None).command_id == f"pagerduty:{EVENT_ID}"


# Replies of the receiver


def test_acknowledged_published_to_group() -> None:
    recorder = Recorder(secrets(SECRET))
    body = encode(incident_payload())
    reply = recorder.post(body, sign(body))
    assert reply.status == 202
    assert reply.body["accepted"]["incident_id"] == INCIDENT_ID
    assert len(recorder.published) == 1
    key, command = recorder.published[0]
    assert key == "g1"
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert command.actor == "Tenex Engineer (PLH1HKV)"
    assert recorder.dead_letters == []


def test_redelivery_gets_same_command_id() -> None:
    recorder = Recorder(secrets(SECRET))
    body = encode(incident_payload())
    first = recorder.post(body, sign(body))
    second = recorder.post(body, sign(body))
    assert first.status == second.status == 202
    ids = [command.command_id for _, command in recorder.published]
    assert ids == [f"pagerduty:{WEBHOOK_ID}:{EVENT_ID}"] * 2


def test_no_secrets_returns_503() -> None:
    recorder = Recorder(SigningSecrets(None))
    body = encode(incident_payload())
    reply = recorder.post(body, sign(body))
    assert reply.status == 503
    assert SECRETS_VARIABLE in reply.body["error"]
    assert recorder.published == []
    assert recorder.dead_letters == []


def test_bad_signature_returns_401() -> None:
    recorder = Recorder(secrets(SECRET))
    body = encode(incident_payload())
    reply = recorder.post(body, sign(body, "whsec-other"))
    assert reply.status == 401
    assert "X-PagerDuty-Signature" in reply.body["error"]
    assert recorder.published == []
    assert recorder.dead_letters == []


def test_missing_signature_returns_401() -> None:
    recorder = Recorder(secrets(SECRET))
    reply = recorder.post(encode(incident_payload()), None)
    assert reply.status == 401
    assert recorder.published == []


def test_unsigned_invalid_body_not_dead_lettered() -> None:
    recorder = Recorder(secrets(SECRET))
    reply = recorder.post(b"{not json", "v1=00")
    assert reply.status == 401
    assert recorder.dead_letters == []


def test_other_event_type_ignored() -> None:
    recorder = Recorder(secrets(SECRET))
    body = encode(sample())
    reply = recorder.post(body, sign(body))
    assert reply.status == 200
    assert "incident.priority_updated" in reply.body["ignored"]
    assert recorder.published == []


def test_other_event_type_any_data_ignored() -> None:
    recorder = Recorder(secrets(SECRET))
    payload = incident_payload("pagey.ping")
    payload["event"]["data"] = {"message": "Hello from your friend Pagey!"}
    body = encode(payload)
    assert recorder.post(body, sign(body)).status == 200
    assert recorder.published == []


def test_unmapped_incident_ignored(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(secrets(SECRET))
    body = encode(incident_payload(incident_key="d3640fbd41094207a1c11e58e46b1662"))
    with caplog.at_level(logging.INFO):
        reply = recorder.post(body, sign(body))
    assert reply.status == 202
    assert "PGR0VU2" in reply.body["ignored"]
    assert recorder.published == []
    assert "has no Tocsin incident key" in caplog.text
    assert "PGR0VU2" in caplog.text


def test_invalid_json_dead_lettered() -> None:
    recorder = Recorder(secrets(SECRET))
    body = b'{"event": '
    reply = recorder.post(body, sign(body))
    assert reply.status == 400
    assert "Invalid JSON" in reply.body["error"]
    assert recorder.dead_letters == [(body, reply.body["error"])]
    assert recorder.published == []


def test_missing_incident_id_names_field() -> None:
    recorder = Recorder(secrets(SECRET))
    payload = incident_payload()
    del payload["event"]["data"]["id"]
    body = encode(payload)
    reply = recorder.post(body, sign(body))
    assert reply.status == 400
    assert "event.data.id" in reply.body["error"]
    assert len(recorder.dead_letters) == 1
    assert recorder.dead_letters[0][0] == body
    assert "event.data.id" in recorder.dead_letters[0][1]


def test_naive_time_names_field_and_value() -> None:
    recorder = Recorder(secrets(SECRET))
    payload = incident_payload()
    payload["event"]["occurred_at"] = "2021-04-26T17:36:27"
    body = encode(payload)
    reply = recorder.post(body, sign(body))
    assert reply.status == 400
    assert "event.occurred_at" in reply.body["error"]
    assert "'2021-04-26T17:36:27'" in reply.body["error"]
    assert len(recorder.dead_letters) == 1


def test_wrong_data_type_names_field() -> None:
    recorder = Recorder(secrets(SECRET))
    payload = incident_payload()
    payload["event"]["data"]["type"] = "incident_note"
    body = encode(payload)
    reply = recorder.post(body, sign(body))
    assert reply.status == 400
    assert "event.data.type" in reply.body["error"]
    assert "'incident_note'" in reply.body["error"]


def test_secrets_never_logged_or_returned(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(secrets(OLD_SECRET, SECRET))
    good = encode(incident_payload())
    invalid = b"{not json"
    replies = []
    with caplog.at_level(logging.DEBUG):
        replies.append(recorder.post(good, sign(good)))
        replies.append(recorder.post(good, sign(good, "whsec-other")))
        replies.append(recorder.post(good, None))
        replies.append(recorder.post(invalid, sign(invalid)))
        replies.append(
            asyncio.run(Recorder(SigningSecrets(None)).receiver.handle(good, {}))
        )
    assert [reply.status for reply in replies] == [202, 401, 401, 400, 503]
    texts = [caplog.text, repr(recorder.receiver)]
    texts += [json.dumps(reply.body) for reply in replies]
    texts += [error for _, error in recorder.dead_letters]
    for text in texts:
        assert SECRET not in text
        assert OLD_SECRET not in text

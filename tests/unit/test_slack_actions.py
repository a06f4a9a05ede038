"""Slack request verification and the mapping of button presses to commands."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import Any

import pytest
from factories import INCIDENT_ID, T0
from pydantic import SecretStr
from vendor_requests import slack_signature_headers

from schemas.records import Command, CommandKind
from streams.web.slack_actions import (
    REDACTED,
    InvalidPayload,
    Rejection,
    Reply,
    RequestVerifier,
    SlackActions,
    commands_from_body,
    redact_body,
)

SECRET = "unit-test-signing-secret"
LEGACY_TOKEN = "legacy-verification-token-123"
RESPONSE_URL = "https://hooks.slack.invalid/actions/T0/1/secret-part"
# Wall time of every test request, in Unix seconds.
NOW_S = 1_714_564_800


def wall() -> float:
    return float(NOW_S)


def sign(body: bytes, timestamp: int = NOW_S, secret: str = SECRET) -> dict[str, str]:
    return slack_signature_headers(body, secret, timestamp)


def make_payload(*actions: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "token": LEGACY_TOKEN,
        "response_url": RESPONSE_URL,
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice.l"},
        "container": {
            "type": "message",
            "message_ts": "1714564700.000100",
            "channel_id": "C0ONCALL",
            "is_ephemeral": False,
        },
        "channel": {"id": "C0ONCALL", "name": "oncall"},
        "actions": list(actions) or [make_action()],
    }
    payload.update(overrides)
    return payload


def make_action(
    action_id: str = "tocsin_acknowledge",
    value: str | None = INCIDENT_ID,
    action_ts: str = "1714564790.000200",
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "block_id": "tocsin_actions",
        "action_ts": action_ts,
    }
    if value is not None:
        action["value"] = value
    return action


def form(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urllib.parse.urlencode({"payload": text}).encode()


def commands(payload: dict[str, Any] | str) -> list[Command]:
    return commands_from_body(form(payload), T0)


def invalid_payload_message(payload: dict[str, Any] | str) -> str:
    with pytest.raises(InvalidPayload) as excinfo:
        commands(payload)
    return str(excinfo.value)


# Verification


@pytest.fixture
def verifier() -> RequestVerifier:
    return RequestVerifier(SecretStr(SECRET), wall)


def test_verifier_accepts_signed_request(verifier: RequestVerifier) -> None:
    body = form(make_payload())
    assert verifier.check(body, sign(body)) is None


def test_verifier_reads_headers_in_any_case(verifier: RequestVerifier) -> None:
    body = form(make_payload())
    headers = {name.lower(): value for name, value in sign(body).items()}
    assert verifier.check(body, headers) is None


def test_verifier_rejects_wrong_secret(verifier: RequestVerifier) -> None:
    body = form(make_payload())
    headers = sign(body, secret="another-secret")
    assert verifier.check(body, headers) is Rejection.INVALID_SIGNATURE


def test_verifier_rejects_tampered_body(verifier: RequestVerifier) -> None:
    body = form(make_payload())
    tampered = form(make_payload(make_action("tocsin_resolve")))
    assert verifier.check(tampered, sign(body)) is Rejection.INVALID_SIGNATURE


def test_verifier_rejects_other_timestamp(verifier: RequestVerifier) -> None:
    body = form(make_payload())
    headers = sign(body)
    headers["X-Slack-Request-Timestamp"] = str(NOW_S - 1)
    assert verifier.check(body, headers) is Rejection.INVALID_SIGNATURE


@pytest.mark.parametrize("age_s", [600, 301, -301, -600])
def test_verifier_rejects_stale_timestamp(
    verifier: RequestVerifier, age_s: int
) -> None:
    body = form(make_payload())
    headers = sign(body, timestamp=NOW_S - age_s)
    assert verifier.check(body, headers) is Rejection.STALE_TIMESTAMP


@pytest.mark.parametrize("age_s", [300, 299, -300])
def test_verifier_accepts_five_minutes_skew(
    verifier: RequestVerifier, age_s: int
) -> None:
    body = form(make_payload())
    assert verifier.check(body, sign(body, timestamp=NOW_S - age_s)) is None


def test_verifier_uses_injected_wall_time() -> None:
    body = form(make_payload())
    headers = sign(body)
    later = RequestVerifier(SecretStr(SECRET), lambda: float(NOW_S + 600))
    assert later.check(body, headers) is Rejection.STALE_TIMESTAMP


@pytest.mark.parametrize(
    "missing", ["X-Slack-Signature", "X-Slack-Request-Timestamp", "both"]
)
def test_verifier_rejects_missing_headers(
    verifier: RequestVerifier, missing: str
) -> None:
    body = form(make_payload())
    headers = sign(body)
    if missing == "both":
        headers.clear()
    else:
        del headers[missing]
    assert verifier.check(body, headers) is Rejection.MISSING_HEADERS


@pytest.mark.parametrize(
    "timestamp", ["soon", "1714564800.5", "-1714564800", " 1", "9" * 400]
)
def test_verifier_rejects_invalid_timestamp(
    verifier: RequestVerifier, timestamp: str
) -> None:
    body = form(make_payload())
    headers = sign(body)
    headers["X-Slack-Request-Timestamp"] = timestamp
    assert verifier.check(body, headers) is Rejection.INVALID_TIMESTAMP


def test_verifier_rejects_non_utf8_body(verifier: RequestVerifier) -> None:
    body = b"payload=\xff\xfe"
    assert verifier.check(body, sign(body)) is Rejection.INVALID_SIGNATURE


def test_verifier_repr_hides_secret(verifier: RequestVerifier) -> None:
    assert SECRET not in repr(verifier)


# Mapping presses to commands


def test_acknowledge_press_maps_to_command() -> None:
    [command] = commands(make_payload())
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert command.incident_id == INCIDENT_ID
    assert command.actor == "alice (U0ALICE)"
    assert command.source == "slack"
    assert command.at == T0
    assert command.command_id.startswith("slack-")
    assert command.details == {
        "slack_user_id": "U0ALICE",
        "channel_id": "C0ONCALL",
        "message_ts": "1714564700.000100",
        "action_ts": "1714564790.000200",
    }


def test_resolve_press_maps_to_command() -> None:
    [command] = commands(make_payload(make_action("tocsin_resolve")))
    assert command.kind is CommandKind.RESOLVE
    assert command.incident_id == INCIDENT_ID


def test_same_press_gets_same_command_id() -> None:
    [first] = commands(make_payload())
    [again] = commands(make_payload())
    assert first.command_id == again.command_id


def test_other_presses_get_other_command_ids() -> None:
    [first] = commands(make_payload())
    [later] = commands(make_payload(make_action(action_ts="1714564795.000300")))
    [resolve] = commands(make_payload(make_action("tocsin_resolve")))
    assert len({first.command_id, later.command_id, resolve.command_id}) == 3


@pytest.mark.parametrize(
    ("user", "actor"),
    [
        ({"id": "U1", "username": "bob", "name": "Bob B"}, "bob (U1)"),
        ({"id": "U1", "name": "Bob B"}, "Bob B (U1)"),
        ({"id": "U1"}, "U1"),
    ],
)
def test_actor_names_slack_user(user: dict[str, str], actor: str) -> None:
    [command] = commands(make_payload(user=user))
    assert command.actor == actor


def test_unknown_actions_are_ignored() -> None:
    payload = make_payload(
        make_action("someone_elses_button"),
        make_action("tocsin_resolve", action_ts="1714564791.000100"),
    )
    [command] = commands(payload)
    assert command.kind is CommandKind.RESOLVE


def test_other_interaction_types_are_ignored() -> None:
    assert commands(make_payload(type="view_submission")) == []


def test_press_without_container_maps_to_command() -> None:
    payload = make_payload()
    del payload["container"]
    [command] = commands(payload)
    assert command.details == {
        "slack_user_id": "U0ALICE",
        "action_ts": "1714564790.000200",
    }


# Invalid payloads


def test_invalid_incident_id_names_field_and_value() -> None:
    payload = make_payload(make_action(), make_action(value="not-an-id"))
    message = invalid_payload_message(payload)
    assert "actions.1.value" in message
    assert "'not-an-id'" in message


def test_missing_value_names_field() -> None:
    message = invalid_payload_message(make_payload(make_action(value=None)))
    assert "actions.0.value" in message


def test_payload_without_user_names_field() -> None:
    payload = make_payload()
    del payload["user"]
    message = invalid_payload_message(payload)
    assert "user: Field required" in message
    assert LEGACY_TOKEN not in message
    assert RESPONSE_URL not in message


def test_action_without_action_ts_names_field() -> None:
    action = make_action()
    del action["action_ts"]
    message = invalid_payload_message(make_payload(action))
    assert "actions.0.action_ts" in message


def test_payload_not_json_is_invalid() -> None:
    message = invalid_payload_message('{"type": "block_actions", "token": "abc"')
    assert "payload: not JSON" in message
    assert '"token"' in message
    assert "abc" not in message


def test_payload_not_object_is_invalid() -> None:
    assert "JSON object" in invalid_payload_message("[1, 2]")


def test_missing_payload_field_is_invalid() -> None:
    with pytest.raises(InvalidPayload, match="payload: expected it once, found 0"):
        commands_from_body(b"token=abc&other=1", T0)


def test_payload_without_type_is_invalid() -> None:
    payload = make_payload()
    del payload["type"]
    assert "payload field type" in invalid_payload_message(payload)


# Redaction


def test_redact_body_replaces_secret_fields() -> None:
    payload = make_payload(
        function_data={"bot_access_token": "xwfp-workflow-token"},
    )
    body = form(payload) + b"&token=" + LEGACY_TOKEN.encode()
    fields = urllib.parse.parse_qs(redact_body(body).decode())
    redacted = json.loads(fields["payload"][0])
    assert redacted["token"] == REDACTED
    assert redacted["response_url"] == REDACTED
    assert redacted["function_data"]["bot_access_token"] == REDACTED
    assert fields["token"] == [REDACTED]
    assert redacted["user"] == payload["user"]
    assert redacted["actions"] == payload["actions"]


def test_redact_body_strips_token_from_broken_json() -> None:
    body = form('{"type": "block_actions", "token": "abc-123", "user": ')
    redacted = urllib.parse.unquote_plus(redact_body(body).decode())
    assert "abc-123" not in redacted
    assert '"user"' in redacted


# The request handler


class Sent:
    """Commands and dead letters a handler under test produced."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Command]] = []
        self.dead_letters: list[tuple[bytes, str]] = []

    async def publish(self, group_key: str, command: Command) -> None:
        self.commands.append((group_key, command))

    async def dead_letter(self, raw: bytes, error: str) -> None:
        self.dead_letters.append((raw, error))


def handler(sent: Sent, secret: str | None = SECRET) -> SlackActions:
    signing_secret = None if secret is None else SecretStr(secret)
    return SlackActions(
        signing_secret, sent.publish, sent.dead_letter, lambda: T0, wall
    )


def handle(actions: SlackActions, body: bytes, headers: dict[str, str]) -> Reply:
    return asyncio.run(actions.handle(body, headers))


def test_handler_publishes_press_by_group_key() -> None:
    sent = Sent()
    body = form(make_payload())
    reply = handle(handler(sent), body, sign(body))
    assert reply == Reply(200)
    [(group_key, command)] = sent.commands
    assert group_key == "g1"
    assert command.incident_id == INCIDENT_ID
    assert sent.dead_letters == []


@pytest.mark.parametrize("secret", [None, "   "])
def test_handler_without_secret_returns_503(secret: str | None) -> None:
    sent = Sent()
    actions = handler(sent, secret)
    body = form(make_payload())
    reply = handle(actions, body, sign(body))
    assert reply.status == 503
    assert reply.body is not None
    assert "TOCSIN_SLACK_SIGNING_SECRET" in reply.body["error"]
    assert sent.commands == []
    assert not actions.configured


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": str(NOW_S), "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(NOW_S - 600), "X-Slack-Signature": "v0="},
    ],
    ids=["missing", "invalid", "stale"],
)
def test_handler_rejects_unsigned_with_401(headers: dict[str, str]) -> None:
    sent = Sent()
    body = form(make_payload())
    reply = handle(handler(sent), body, headers)
    assert reply.status == 401
    assert reply.body is not None
    assert reply.body["error"]
    assert sent.commands == []
    assert sent.dead_letters == []


def test_handler_stale_signed_request_gets_401() -> None:
    sent = Sent()
    body = form(make_payload())
    reply = handle(handler(sent), body, sign(body, timestamp=NOW_S - 600))
    assert reply.status == 401
    assert reply.body is not None
    assert "more than 300 s" in reply.body["error"]
    assert sent.commands == []


def test_handler_dead_letters_invalid_payload_redacted() -> None:
    sent = Sent()
    body = form(make_payload(make_action(value="bad")))
    reply = handle(handler(sent), body, sign(body))
    assert reply.status == 400
    assert reply.body is not None
    assert "actions.0.value" in reply.body["error"]
    assert sent.commands == []
    [(raw, error)] = sent.dead_letters
    assert error == reply.body["error"]
    stored = urllib.parse.unquote_plus(raw.decode())
    assert LEGACY_TOKEN not in stored
    assert RESPONSE_URL not in stored
    assert "bad" in stored


def test_handler_publishes_nothing_if_one_press_invalid() -> None:
    sent = Sent()
    body = form(make_payload(make_action(), make_action(value="bad")))
    reply = handle(handler(sent), body, sign(body))
    assert reply.status == 400
    assert sent.commands == []


def test_handler_ignores_unknown_action_with_200() -> None:
    sent = Sent()
    body = form(make_payload(make_action("someone_elses_button")))
    reply = handle(handler(sent), body, sign(body))
    assert reply == Reply(200)
    assert sent.commands == []
    assert sent.dead_letters == []


def test_handler_never_shows_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sent = Sent()
    actions = handler(sent)
    body = form(make_payload(make_action(value="bad")))
    replies = [
        handle(actions, body, sign(body)),
        handle(actions, body, sign(body, secret="wrong")),
        handle(actions, body, {}),
    ]
    outputs = [repr(actions), caplog.text, *(json.dumps(r.body) for r in replies)]
    outputs += [raw.decode() + error for raw, error in sent.dead_letters]
    for text in outputs:
        assert SECRET not in text


def test_handler_logs_rejections_once_per_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    actions = handler(Sent())
    body = form(make_payload())
    with caplog.at_level(logging.WARNING, logger="streams.web.slack_actions"):
        for _ in range(5):
            handle(actions, body, {})
    assert len(caplog.records) == 1
    assert actions.rejected[Rejection.MISSING_HEADERS] == 5

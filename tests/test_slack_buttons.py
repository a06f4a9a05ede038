"""Slack button presses against a real worker: signed presses change incidents."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from harness import Worker, WorkerFactory, wait_for
from vendor_requests import (
    cpu_rule_config,
    incident,
    open_incident,
    post,
    read_dead_letters,
    slack_signature_headers,
)

SIGNING_SECRET = "integration-test-signing-secret"
LEGACY_TOKEN = "legacy-verification-token-xyz"
OPENED_AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def open_notified_incident(workers: WorkerFactory) -> tuple[Worker, str]:
    """Start a worker that verifies Slack requests and open one incident on it."""
    config = workers.write_config(cpu_rule_config())
    worker = workers.start(config, {"TOCSIN_SLACK_SIGNING_SECRET": SIGNING_SECRET})
    incident_id = open_incident(worker, OPENED_AT, 30)

    # The console receiver records its notification of the opening on the
    # timeline. After that the timeline does not change until a command arrives.
    def notified() -> bool:
        kinds = [event["kind"] for event in incident(worker, incident_id)["timeline"]]
        return "notified" in kinds

    wait_for(notified, 20, "opening notified")
    return worker, incident_id


def press_body(
    action_id: str, incident_id: str, user: str, action_ts: str = "1709294400.000100"
) -> bytes:
    """Return a form body like the one Slack posts when a button is pressed."""
    payload = {
        "type": "block_actions",
        "token": LEGACY_TOKEN,
        "user": {"id": f"U0{user.upper()}", "username": user, "name": user},
        "api_app_id": "A0TOCSIN",
        "container": {
            "type": "message",
            "message_ts": "1709294300.000200",
            "channel_id": "C0ONCALL",
            "is_ephemeral": False,
        },
        "channel": {"id": "C0ONCALL", "name": "oncall"},
        "message": {"type": "message", "ts": "1709294300.000200", "text": "cpu"},
        "response_url": "https://hooks.slack.invalid/actions/T0/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "tocsin_actions",
                "value": incident_id,
                "action_ts": action_ts,
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(
    body: bytes, secret: str = SIGNING_SECRET, age_s: float = 0.0
) -> dict[str, str]:
    return slack_signature_headers(body, secret, int(time.time() - age_s))


def post_press(
    worker: Worker, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """POST a body to /slack/actions and return the status and response body."""
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    return post(worker, "/slack/actions", body, form)


def events_of(found: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in found["timeline"] if event["kind"] == kind]


def test_signed_press_acknowledges_forged_ones_rejected(
    workers: WorkerFactory,
) -> None:
    worker, incident_id = open_notified_incident(workers)
    before = incident(worker, incident_id)["timeline"]

    forged = press_body("tocsin_resolve", incident_id, "mallory")
    status, reply = post_press(worker, forged, signed_headers(forged, "not-the-secret"))
    assert status == 401
    assert "X-Slack-Signature" in json.loads(reply)["error"]

    status, reply = post_press(worker, forged, signed_headers(forged, age_s=600))
    assert status == 401
    assert "more than 300 s" in json.loads(reply)["error"]

    status, _ = post_press(worker, forged, {})
    assert status == 401

    tampered = press_body("tocsin_resolve", incident_id, "mallory", "1709294499.1")
    status, _ = post_press(worker, tampered, signed_headers(forged))
    assert status == 401

    assert incident(worker, incident_id)["timeline"] == before
    assert incident(worker, incident_id)["state"] == "open"

    press = press_body("tocsin_acknowledge", incident_id, "alice")
    status, reply = post_press(worker, press, signed_headers(press))
    assert status == 200
    assert reply == b""
    wait_for(
        lambda: incident(worker, incident_id)["state"] == "acknowledged",
        20,
        "acknowledged from Slack",
    )
    acknowledged = incident(worker, incident_id)
    assert acknowledged["acknowledged_by"] == "alice (U0ALICE) via slack"
    # The rejected presses were resolves for the same incident, so they would
    # have reached correlate's partition before the acknowledgement.
    kinds = [event["kind"] for event in acknowledged["timeline"]]
    assert "resolved" not in kinds
    assert kinds.count("acknowledged") == 1
    event = events_of(acknowledged, "acknowledged")[0]
    assert event["actor"] == "alice (U0ALICE) via slack"

    # A second delivery of the same press has the same action_ts, so correlate
    # drops it and only the acknowledgement and the resolve are applied.
    status, _ = post_press(worker, press, signed_headers(press))
    assert status == 200
    resolve = press_body("tocsin_resolve", incident_id, "alice", "1709294460.000300")
    status, _ = post_press(worker, resolve, signed_headers(resolve))
    assert status == 200
    wait_for(
        lambda: incident(worker, incident_id)["state"] == "resolved",
        20,
        "resolved from Slack",
    )
    seen = incident(worker, incident_id)["seen_commands"]
    assert len([command for command in seen if command.startswith("slack-")]) == 2


def test_resolve_press_resolves_invalid_one_dead_lettered(
    workers: WorkerFactory,
) -> None:
    worker, incident_id = open_notified_incident(workers)

    invalid = press_body("tocsin_resolve", "not-an-id", "bob")
    status, reply = post_press(worker, invalid, signed_headers(invalid))
    assert status == 400
    error = json.loads(reply)["error"]
    assert "actions.0.value" in error
    assert "'not-an-id'" in error

    records = asyncio.run(read_dead_letters(worker, "POST /slack/actions"))
    assert len(records) == 1
    assert records[0]["error"] == error
    stored = base64.b64decode(records[0]["value"]).decode()
    assert LEGACY_TOKEN not in urllib.parse.unquote_plus(stored)
    assert "hooks.slack.invalid" not in urllib.parse.unquote_plus(stored)
    assert "not-an-id" in urllib.parse.unquote_plus(stored)
    assert incident(worker, incident_id)["state"] == "open"

    press = press_body("tocsin_resolve", incident_id, "bob")
    status, _ = post_press(worker, press, signed_headers(press))
    assert status == 200
    wait_for(
        lambda: incident(worker, incident_id)["state"] == "resolved",
        20,
        "resolved from Slack",
    )
    resolved = incident(worker, incident_id)
    assert resolved["resolved_by"] == "bob (U0BOB) via slack"
    assert resolved["acknowledged_by"] is None
    events = events_of(resolved, "resolved")
    assert len(events) == 1
    assert events[0]["actor"] == "bob (U0BOB) via slack"
    assert events[0]["details"]["how"] == "by a person"


def test_rejected_presses_leave_slack_message(
    workers: WorkerFactory, vendors: Any
) -> None:
    slack, _, env = vendors
    config = workers.write_config(
        cpu_rule_config(
            policies={
                "default": {"levels": [{"delay": "0s", "targets": ["slack-oncall"]}]}
            },
            receivers={"slack-oncall": {"type": "slack", "channel": "#oncall"}},
        )
    )
    worker = workers.start(
        config, {**env, "TOCSIN_SLACK_SIGNING_SECRET": SIGNING_SECRET}
    )
    incident_id = open_incident(worker, OPENED_AT, 30)
    wait_for(lambda: slack.messages, 30, "incident posted to Slack")
    posted = slack.messages[0]

    for name, headers in [
        ("bad signature", lambda body: signed_headers(body, "not-the-secret")),
        ("ten minutes old", lambda body: signed_headers(body, age_s=600)),
    ]:
        for action in ("tocsin_acknowledge", "tocsin_resolve"):
            forged = press_body(action, incident_id, "mallory")
            status, _ = post_press(worker, forged, headers(forged))
            assert status == 401, (name, action)

    # A valid press after the rejected ones reaches the same partition last,
    # so once it is applied the rejected ones would have been too.
    press = press_body("tocsin_acknowledge", incident_id, "alice")
    status, _ = post_press(worker, press, signed_headers(press))
    assert status == 200
    wait_for(lambda: len(slack.messages) >= 3, 30, "acknowledgement shown in Slack")
    found = incident(worker, incident_id)
    assert found["state"] == "acknowledged"
    assert found["acknowledged_by"] == "alice (U0ALICE) via slack"
    kinds = [event["kind"] for event in found["timeline"]]
    assert "resolved" not in kinds
    assert kinds.count("acknowledged") == 1
    assert "mallory" not in json.dumps(found)
    methods = [m["method"] for m in slack.messages]
    assert methods == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert slack.messages[1]["ts"] == posted["ts"]
    assert "mallory" not in json.dumps(slack.messages)

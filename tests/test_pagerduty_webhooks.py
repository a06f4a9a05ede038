"""PagerDuty Webhooks v3 into a real worker: acknowledge, resolve, redelivery.

An acknowledgement from PagerDuty also updates the Slack message, cancels
the pending escalation and counts towards MTTA with the PagerDuty user.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.slack import FakeSlack
from harness import Worker, WorkerFactory, wait_for
from vendor_requests import (
    cpu_rule_config,
    incident,
    pagerduty_signature,
    read_dead_letters,
)
from vendor_requests import open_incident as open_cpu_incident
from vendor_requests import post as post_to_worker

SAMPLE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "webhook_samples"
    / "go-pagerduty"
    / "webhookv3_incident.priority_updated.json"
)
SECRET = "whsec-integration-current-0123456789"
OLD_SECRET = "whsec-integration-previous-9876543210"
ACTOR = "Tenex Engineer (PLH1HKV) via pagerduty"
OPENED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STEP_S = 30
TIMEOUT_S = 20


@pytest.fixture
def worker(workers: WorkerFactory) -> Worker:
    config = workers.write_config(cpu_rule_config())
    secrets = f"{OLD_SECRET},{SECRET}"
    return workers.start(config, {"TOCSIN_PAGERDUTY_WEBHOOK_SECRETS": secrets})


def open_incident(worker: Worker) -> str:
    """Publish one breaching CPU sample and return the incident it opens."""
    return open_cpu_incident(worker, OPENED_AT, TIMEOUT_S)


def webhook(event_type: str, incident_key: str, event_id: str, step: int) -> bytes:
    """Return the real sample as `event_type` for `incident_key`, `step` steps in."""
    if not SAMPLE.is_file():
        pytest.skip(f"PagerDuty webhook sample not found at {SAMPLE}")
    payload = copy.deepcopy(json.loads(SAMPLE.read_text()))
    event = payload["event"]
    event["id"] = event_id
    event["event_type"] = event_type
    occurred_at = OPENED_AT + timedelta(seconds=STEP_S * step)
    event["occurred_at"] = occurred_at.isoformat().replace("+00:00", "Z")
    event["data"]["status"] = event_type.removeprefix("incident.")
    event["data"]["incident_key"] = incident_key
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return pagerduty_signature(body, secret)


def post(
    worker: Worker, body: bytes, signature: str | None, webhook_id: str
) -> tuple[int, dict[str, Any]]:
    """POST a webhook to the worker and return the status and decoded body."""
    headers = {"Content-Type": "application/json", "X-Webhook-Id": webhook_id}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    status, reply = post_to_worker(worker, "/pagerduty/webhooks", body, headers)
    return status, json.loads(reply)


def wait_state(worker: Worker, incident_id: str, state: str, resolves: int = 1) -> Any:
    """Wait until the incident is in `state` with `resolves` resolved events."""

    def reached() -> Any:
        found = incident(worker, incident_id)
        count = sum(e["kind"] == "resolved" for e in found["timeline"])
        if found["state"] == state and (state != "resolved" or count == resolves):
            return found
        return None

    return wait_for(reached, TIMEOUT_S, f"incident {incident_id} {state}")


def lifecycle(found: dict[str, Any]) -> list[str]:
    kinds = ("opened", "acknowledged", "resolved", "reopened")
    return [e["kind"] for e in found["timeline"] if e["kind"] in kinds]


def test_acknowledge_applied_once(worker: Worker) -> None:
    incident_id = open_incident(worker)
    acknowledge = webhook("incident.acknowledged", incident_id, "E-ACK", 1)

    status, reply = post(worker, acknowledge, sign(acknowledge), "W-ACK")
    assert status == 202, reply
    acknowledged = wait_state(worker, incident_id, "acknowledged")
    assert acknowledged["acknowledged_by"] == ACTOR
    opened = datetime.fromisoformat(acknowledged["opened_at"])
    at = datetime.fromisoformat(acknowledged["acknowledged_at"])
    assert (at - opened).total_seconds() == STEP_S

    status, _ = post(worker, acknowledge, sign(acknowledge), "W-ACK")
    assert status == 202
    resolve = webhook("incident.resolved", incident_id, "E-RES-1", 2)
    assert post(worker, resolve, sign(resolve), "W-RES-1")[0] == 202
    wait_state(worker, incident_id, "resolved")
    reopen = webhook("incident.reopened", incident_id, "E-REOPEN", 3)
    assert post(worker, reopen, sign(reopen), "W-REOPEN")[0] == 202
    wait_state(worker, incident_id, "open")

    # Redelivered after the reopen, the acknowledgement would apply again if
    # its command id were not remembered. Commands of one incident are applied
    # in order, so once the second resolve shows, the redelivery was dropped.
    assert post(worker, acknowledge, sign(acknowledge), "W-ACK")[0] == 202
    resolve_again = webhook("incident.resolved", incident_id, "E-RES-2", 4)
    assert post(worker, resolve_again, sign(resolve_again), "W-RES-2")[0] == 202
    final = wait_state(worker, incident_id, "resolved", resolves=2)

    assert lifecycle(final) == [
        "opened",
        "acknowledged",
        "resolved",
        "reopened",
        "resolved",
    ]
    acknowledgements = [e for e in final["timeline"] if e["kind"] == "acknowledged"]
    assert acknowledgements[0]["actor"] == ACTOR
    assert final["resolved_by"] == ACTOR
    assert final["acknowledged_at"] is None


def test_bad_signature_changes_nothing(worker: Worker) -> None:
    incident_id = open_incident(worker)
    resolve = webhook("incident.resolved", incident_id, "E-RES", 2)

    status, reply = post(worker, resolve, sign(resolve, "whsec-wrong"), "W-BAD")
    assert status == 401
    assert "X-PagerDuty-Signature" in reply["error"]
    assert SECRET not in json.dumps(reply)
    assert post(worker, resolve, None, "W-UNSIGNED")[0] == 401

    not_json = b'{"event": '
    status, reply = post(worker, not_json, sign(not_json), "W-JSON")
    assert status == 400
    assert "Invalid JSON" in reply["error"]
    priority = SAMPLE.read_bytes()
    status, reply = post(worker, priority, sign(priority), "W-PRIORITY")
    assert status == 200, reply
    foreign = webhook(
        "incident.acknowledged", "d3640fbd41094207a1c11e58e46b1662", "E", 1
    )
    status, reply = post(worker, foreign, sign(foreign), "W-FOREIGN")
    assert status == 202
    assert "ignored" in reply

    # Signed with the previous secret, as during a rotation. Had the rejected
    # resolve above been published, it would be applied before this.
    acknowledge = webhook("incident.acknowledged", incident_id, "E-ACK", 1)
    status, _ = post(worker, acknowledge, sign(acknowledge, OLD_SECRET), "W-ACK")
    assert status == 202
    acknowledged = wait_state(worker, incident_id, "acknowledged")
    assert acknowledged["resolved_at"] is None
    assert lifecycle(acknowledged) == ["opened", "acknowledged"]

    both = f"{sign(resolve, 'whsec-wrong')},{sign(resolve)}"
    assert post(worker, resolve, both, "W-RES")[0] == 202
    resolved = wait_state(worker, incident_id, "resolved")
    assert resolved["resolved_by"] == ACTOR
    assert lifecycle(resolved) == ["opened", "acknowledged", "resolved"]

    letters = asyncio.run(
        read_dead_letters(worker, "POST /pagerduty/webhooks", TIMEOUT_S)
    )
    assert len(letters) == 1
    assert letters[0]["stage"] == "pagerduty-webhooks"
    assert letters[0]["topic"] == "POST /pagerduty/webhooks"
    assert base64.b64decode(letters[0]["value"]) == not_json
    assert "Invalid JSON" in letters[0]["error"]


def test_webhook_ack_updates_slack_and_cancels_escalation(
    workers: WorkerFactory,
    vendors: tuple[FakeSlack, FakePagerDuty, dict[str, str]],
) -> None:
    slack, pagerduty, vendor_env = vendors
    config = workers.write_config(
        cpu_rule_config(
            policies={
                "default": {
                    "levels": [
                        {"delay": "0s", "targets": ["slack", "pagerduty"]},
                        {"delay": "5m", "targets": ["secondary"]},
                    ]
                }
            },
            receivers={
                "slack": {"type": "slack", "channel": "#oncall"},
                "pagerduty": {"type": "pagerduty"},
                "secondary": {"type": "console"},
            },
        )
    )
    # One partition: the later alert moves the incident's partition clock.
    env = {
        **vendor_env,
        "TOCSIN_PAGERDUTY_WEBHOOK_SECRETS": SECRET,
        "TOCSIN_TOPIC_PARTITIONS": "1",
    }
    worker = workers.start(config, env)
    incident_id = open_incident(worker)

    def posted() -> Any:
        return [
            m
            for m in slack.messages
            if m["method"] == "chat.postMessage" and m["thread_ts"] is None
        ]

    [message] = wait_for(posted, TIMEOUT_S, "slack message posted")
    wait_for(lambda: pagerduty.alerts.get(incident_id), TIMEOUT_S, "alert triggered")

    acknowledge = webhook("incident.acknowledged", incident_id, "E-ACK", 1)
    assert post(worker, acknowledge, sign(acknowledge), "W-ACK")[0] == 202
    wait_state(worker, incident_id, "acknowledged")

    def updated() -> Any:
        current = slack.message(message["channel"], message["ts"])
        if current is None or current["method"] != "chat.update":
            return None
        return current if "acknowledged" in json.dumps(current["blocks"]) else None

    current = wait_for(updated, TIMEOUT_S, "slack message updated")
    assert "tocsin_acknowledge" not in json.dumps(current["blocks"])

    # Level 2 was due at 5 minutes, and this alert moves the partition past it.
    later = OPENED_AT + timedelta(minutes=10)
    worker.post(
        "/alerts",
        {
            "alerts": [
                {"labels": {"alertname": "Clock"}, "starts_at": later.isoformat()}
            ]
        },
    )

    def clock_paged() -> Any:
        for summary in worker.incidents():
            found = incident(worker, summary["incident_id"])
            if found["labels"].get("alertname") == "Clock" and any(
                e["kind"] == "notified" for e in found["timeline"]
            ):
                return found
        return None

    wait_for(clock_paged, TIMEOUT_S, "later alert paged")
    final = incident(worker, incident_id)
    assert [e for e in final["timeline"] if e["kind"] == "escalated"] == []
    receivers = {
        e["details"]["receiver"] for e in final["timeline"] if e["kind"] == "notified"
    }
    assert "secondary" not in receivers
    assert final["acknowledged_by"] == ACTOR

    def mtta_row() -> Any:
        query = (
            f"/metrics/response?window=hourly&service=api&at={OPENED_AT.timestamp()}"
        )
        [row] = worker.get(query)["rows"]
        return row if row["acknowledged"] == 1 else None

    row = wait_for(mtta_row, TIMEOUT_S, "MTTA recorded")
    assert row["mtta_s"] == STEP_S
    actions = [
        e["event_action"] for e in pagerduty.events if e["dedup_key"] == incident_id
    ]
    assert actions == ["trigger", "acknowledge"]

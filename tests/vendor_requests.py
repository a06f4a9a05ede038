"""Requests as Slack and PagerDuty send them, and the worker they are sent to.

Signs bodies the way Slack (v0 signing secret) and PagerDuty Webhooks v3 do,
posts them to a worker on 127.0.0.1, opens an incident for them to act on,
and reads back what the worker dead-lettered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from harness import Worker, publish_metrics, wait_for

from schemas.records import MetricBatch, MetricSample
from streams import topics

# An opener without proxies, so requests to the worker stay on 127.0.0.1
# even where HTTP_PROXY is set.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# A CPU sample above this opens an incident under `cpu_rule_config`.
CPU_THRESHOLD = 90


def slack_signature_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Return the headers Slack sends with `body`: its timestamp and v0 signature."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
    }


def pagerduty_signature(body: bytes, secret: str) -> str:
    """Return the `X-PagerDuty-Signature` value of `body` signed with `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def cpu_rule_config(**sections: Any) -> dict[str, Any]:
    """Return a configuration with one CPU rule, plus the given top-level sections."""
    rule = {
        "name": "cpu_high",
        "match": {"metric": "cpu_utilization"},
        "threshold": CPU_THRESHOLD,
        "severity": "high",
    }
    return {"rules": {"metrics": [rule]}, **sections}


def open_incident(worker: Worker, at: datetime, timeout_s: float) -> str:
    """Publish one CPU sample above the rule's threshold and return the incident's id.

    The worker must run a configuration from `cpu_rule_config`.
    """
    batch = MetricBatch(
        series="api/cpu",
        labels={"service": "api", "metric": "cpu_utilization"},
        samples=[MetricSample(at=at, value=CPU_THRESHOLD + 7.0)],
    )
    publish_metrics(worker, batch)
    opened = wait_for(
        lambda: (found := worker.incidents()) and found[0], timeout_s, "opened"
    )
    return str(opened["incident_id"])


def incident(worker: Worker, incident_id: str) -> dict[str, Any]:
    found: dict[str, Any] = worker.get(f"/incidents/{incident_id}")
    return found


def post(
    worker: Worker, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """POST `body` to the worker's `path` and return the status and response body."""
    request = urllib.request.Request(
        worker.url + path, data=body, headers=headers, method="POST"
    )
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def read_dead_letters(
    worker: Worker, source: str, timeout_s: float = 15.0
) -> list[dict[str, Any]]:
    """Return the worker's dead letters from `source`, such as `POST /slack/actions`.

    Reads the dead-letter topic from its start until a record from `source`
    arrives or `timeout_s` passes, so the list is empty only after the timeout.
    """
    consumer = AIOKafkaConsumer(
        worker.prefix + topics.DEAD_LETTER.name,
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found.extend(json.loads(message.value) for message in messages)
            if any(record["topic"] == source for record in found):
                break
        return [record for record in found if record["topic"] == source]
    finally:
        await consumer.stop()

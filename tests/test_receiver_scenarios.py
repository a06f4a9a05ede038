"""Receivers through the broker: retries that page once, and deliveries that give up."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from aiokafka import AIOKafkaConsumer
from harness import Worker, WorkerFactory, wait_for
from scenario import ROUTING_KEY
from test_pagerduty_webhooks import open_incident

from streams import topics


def receiver_config(targets: list[str]) -> dict[str, Any]:
    return {
        "rules": {
            "metrics": [
                {
                    "name": "cpu_high",
                    "match": {"metric": "cpu_utilization"},
                    "threshold": 90,
                    "severity": "high",
                }
            ]
        },
        "policies": {"default": {"levels": [{"delay": "0s", "targets": targets}]}},
        "receivers": {
            "pagerduty-primary": {"type": "pagerduty"},
            "slack-oncall": {"type": "slack", "channel": "#oncall"},
        },
    }


def timeline(worker: Worker, incident_id: str) -> list[dict[str, Any]]:
    found: dict[str, Any] = worker.get(f"/incidents/{incident_id}")
    events: list[dict[str, Any]] = found["timeline"]
    return events


async def read_topic(
    worker: Worker, name: str, count: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Read `name` from the start until `count` records arrived or time ran out."""
    consumer = AIOKafkaConsumer(
        worker.prefix + name,
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found.extend(json.loads(message.value) for message in messages)
    finally:
        await consumer.stop()
    return found


def test_pagerduty_500_three_times_pages_once(
    workers: WorkerFactory, vendors: Any
) -> None:
    _, pagerduty, env = vendors
    pagerduty.fail_next(500, count=3)
    config = workers.write_config(receiver_config(["pagerduty-primary"]))
    worker = workers.start(config, env)

    incident_id = open_incident(worker)
    wait_for(
        lambda: pagerduty.alerts_for(ROUTING_KEY), 60, "alert created after retries"
    )

    def notified() -> list[dict[str, Any]]:
        events = timeline(worker, incident_id)
        return [event for event in events if event["kind"] == "notified"]

    wait_for(notified, 30, "notified on the timeline")
    assert pagerduty.alerts_for(ROUTING_KEY) == {incident_id: "triggered"}
    statuses = [request.status for request in pagerduty.requests]
    assert statuses == [500, 500, 500, 202]
    triggers = [e for e in pagerduty.events if e["event_action"] == "trigger"]
    assert len(triggers) == 1
    assert triggers[0]["dedup_key"] == incident_id

    attempts = asyncio.run(read_topic(worker, topics.DELIVERIES.name, 4))
    ours = [a for a in attempts if a["receiver"] == "pagerduty-primary"]
    assert [a["attempt"] for a in ours] == [1, 2, 3, 4]
    assert [a["status"] for a in ours] == ["failed", "failed", "failed", "delivered"]
    assert all("HTTP 500" in a["error"] for a in ours[:3])
    assert ROUTING_KEY not in json.dumps(ours)

    kinds = [event["kind"] for event in timeline(worker, incident_id)]
    assert kinds.count("notified") == 1
    assert "notify_failed" not in kinds


def test_delivery_giving_up_dead_lettered(workers: WorkerFactory, vendors: Any) -> None:
    _, pagerduty, env = vendors
    pagerduty.fail_next(400)
    config = workers.write_config(receiver_config(["pagerduty-primary"]))
    worker = workers.start(config, env)

    incident_id = open_incident(worker)

    def failed() -> list[dict[str, Any]]:
        events = timeline(worker, incident_id)
        return [event for event in events if event["kind"] == "notify_failed"]

    events = wait_for(failed, 60, "notify_failed on the timeline")
    assert len(events) == 1
    assert events[0]["details"]["receiver"] == "pagerduty-primary"
    assert "HTTP 400" in events[0]["details"]["error"]
    assert pagerduty.alerts_for(ROUTING_KEY) == {}
    assert [request.status for request in pagerduty.requests] == [400]

    dead = asyncio.run(read_topic(worker, topics.NOTIFICATIONS_DEAD.name, 1))
    assert len(dead) == 1
    assert dead[0]["notification"]["event"]["incident_id"] == incident_id
    assert "HTTP 400" in dead[0]["error"]
    assert ROUTING_KEY not in json.dumps(dead)


def test_escalation_to_pagerduty_updates_slack(
    workers: WorkerFactory, vendors: Any
) -> None:
    slack, pagerduty, env = vendors
    config_data = receiver_config(["slack-oncall"])
    # The incident opened in the past, so the live clock finds its second
    # level due at once.
    config_data["policies"]["default"]["levels"].append(
        {"delay": "2s", "targets": ["pagerduty-primary"]}
    )
    config = workers.write_config(config_data)
    worker = workers.start(config, {**env, "TOCSIN_CLOCK": "live"})

    incident_id = open_incident(worker)

    def slack_notified() -> list[str]:
        return [
            event["details"]["transition"]
            for event in timeline(worker, incident_id)
            if event["kind"] == "notified"
            and event["details"]["receiver"] == "slack-oncall"
        ]

    wait_for(lambda: slack_notified() == ["opened", "escalated"], 60, "slack updated")
    assert pagerduty.alerts_for(ROUTING_KEY) == {incident_id: "triggered"}
    roots = [m for m in slack.messages if m["thread_ts"] is None]
    root_posts = [m for m in roots if m["method"] == "chat.postMessage"]
    assert len(root_posts) == 1
    ts = root_posts[0]["ts"]
    updates = [m for m in roots if m["method"] == "chat.update"]
    assert [m["ts"] for m in updates] == [ts]
    replies = [m for m in slack.messages if m["thread_ts"] == ts]
    assert len(replies) == 1
    assert (replies[0]["text"] or "").startswith("escalated by")
    escalated = next(
        e for e in timeline(worker, incident_id) if e["kind"] == "escalated"
    )
    key = f"{incident_id}:{escalated['seq']}:slack-oncall"
    assert replies[0]["metadata"] is not None
    assert replies[0]["metadata"]["event_payload"] == {"key": key}


def test_slack_lost_response_posts_once(workers: WorkerFactory, vendors: Any) -> None:
    slack, _, env = vendors
    slack.drop_after_next()
    config = workers.write_config(receiver_config(["slack-oncall"]))
    worker = workers.start(config, env)

    incident_id = open_incident(worker)

    def notified() -> bool:
        kinds = [event["kind"] for event in timeline(worker, incident_id)]
        return "notified" in kinds

    wait_for(notified, 60, "notified after the lost response")
    roots = [m for m in slack.messages if m["thread_ts"] is None]
    assert len(roots) == 1
    paths = [request.path for request in slack.requests]
    assert paths[0] == "/api/chat.postMessage"
    assert "/api/conversations.history" in paths
    assert paths.count("/api/chat.postMessage") == 1


def test_ack_cancels_page_waiting_to_retry(
    workers: WorkerFactory, vendors: Any
) -> None:
    _, pagerduty, env = vendors
    # The first trigger gets a 429 with Retry-After 5 s, and the ack comes first.
    pagerduty.fail_next(429, count=1, retry_after_s=5)
    config = workers.write_config(receiver_config(["pagerduty-primary"]))
    worker = workers.start(config, env)

    incident_id = open_incident(worker)
    wait_for(lambda: pagerduty.requests, 30, "first trigger attempt")
    worker.post(f"/incidents/{incident_id}/acknowledge", {"actor": "ivy"})

    def cancelled() -> list[dict[str, Any]]:
        attempts = asyncio.run(read_topic(worker, topics.DELIVERIES.name, 2, 5.0))
        return [a for a in attempts if a["status"] == "skipped"]

    skipped = wait_for(cancelled, 60, "pending trigger cancelled")
    assert skipped[0]["error"].startswith("cancelled: incident acknowledged")
    assert "by ivy" in skipped[0]["error"]

    def notified() -> list[str]:
        events = timeline(worker, incident_id)
        return [e["details"]["transition"] for e in events if e["kind"] == "notified"]

    wait_for(lambda: notified() == ["acknowledged"], 30, "ack delivered")
    triggers = [e for e in pagerduty.events if e["event_action"] == "trigger"]
    assert triggers == []
    assert pagerduty.alerts_for(ROUTING_KEY) == {}


def test_slack_post_during_crash_posts_once(
    workers: WorkerFactory, vendors: Any
) -> None:
    slack, _, env = vendors
    # The post lands at once but its response never comes before the crash,
    # and the worker's timeout is longer than the test waits.
    slack.delay_after_next(120)
    config = workers.write_config(receiver_config(["slack-oncall"]))
    first = workers.start(config, {**env, "TOCSIN_HTTP_TIMEOUT_S": "300"})
    incident_id = open_incident(first)
    wait_for(lambda: slack.messages, 30, "message posted")
    first.stop(signal.SIGKILL)

    second = workers.start(config, env, name="second")

    def notified() -> bool:
        kinds = [event["kind"] for event in timeline(second, incident_id)]
        return "notified" in kinds

    wait_for(notified, 60, "notified by the second worker")
    roots = [m for m in slack.messages if m["thread_ts"] is None]
    assert len(roots) == 1
    paths = [request.path for request in slack.requests]
    assert paths.count("/api/chat.postMessage") == 1
    assert "/api/conversations.history" in paths
    assert "delivery restarted after an interrupted attempt" in second.log_tail(400)

"""External alerts over HTTP on a real broker: incidents open once and resolve."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import urllib.parse
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import Worker, WorkerFactory, group_caught_up, wait_for

from streams import topics

STARTS_AT = "2024-05-01T12:00:00Z"
ENDS_AT = "2024-05-01T12:20:00Z"
GO_ZERO = "0001-01-01T00:00:00Z"
CONFIG = {
    "policies": {"default": {"levels": [{"delay": "0s", "targets": ["console"]}]}},
    "receivers": {"console": {"type": "console"}},
}


def am_alert(instance: str, **overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "DiskFull",
            "instance": instance,
            "job": "node",
            "severity": "warning",
        },
        "annotations": {"summary": f"Disk above 80 % on {instance}"},
        "startsAt": STARTS_AT,
        "endsAt": GO_ZERO,
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": f"fp-{instance}",
    }
    alert.update(overrides)
    return alert


def am_payload(alerts: list[dict[str, Any]], status: str = "firing") -> bytes:
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tocsin",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": alerts,
    }
    return json.dumps(payload).encode()


def post_raw(
    worker: Worker, path: str, body: bytes, chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    """POST `body` as it is and return the status and the decoded JSON response."""
    address = urllib.parse.urlsplit(worker.url)
    connection = http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=15
    )
    try:
        headers = {"Content-Type": "application/json"}
        if chunked:
            chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
            connection.request(
                "POST", path, body=chunks, headers=headers, encode_chunked=True
            )
        else:
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


async def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Read every record now on `topic`, up to the end offsets seen at the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(20):
            for tp in partitions:
                while await consumer.position(tp) < ends[tp]:
                    records = await consumer.getmany(tp, timeout_ms=500)
                    found.extend(json.loads(r.value) for r in records.get(tp, []))
    finally:
        await consumer.stop()
    return found


def topic_records(worker: Worker, spec: topics.TopicSpec) -> list[dict[str, Any]]:
    bootstrap = worker.env["TOCSIN_BOOTSTRAP_SERVERS"]
    return asyncio.run(read_topic(bootstrap, worker.prefix + spec.name))


def wait_incidents(worker: Worker, count: int, state: str) -> list[dict[str, Any]]:
    def reached() -> list[dict[str, Any]] | None:
        found = [i for i in worker.incidents() if i["state"] == state]
        return found if len(found) >= count else None

    found: list[dict[str, Any]] = wait_for(reached, 15, f"{count} incidents {state}")
    return found


def one_incident(worker: Worker, alert_count: int) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = worker.incidents()
        if len(found) == 1 and found[0]["alert_count"] == alert_count:
            return found[0]
        return None

    incident: dict[str, Any] = wait_for(reached, 15, f"{alert_count} alerts")
    return incident


def test_alertmanager_group_opens_one_incident(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(CONFIG))
    body = am_payload([am_alert("db-1"), am_alert("db-2"), am_alert("db-3")])

    status, accepted = post_raw(worker, "/alerts/alertmanager", body)
    assert status == 202, accepted
    assert accepted["accepted"] == 3
    assert accepted["warnings"] == []
    group_keys = {a["group_key"] for a in accepted["alerts"]}
    assert len(group_keys) == 1
    assert len({a["fingerprint"] for a in accepted["alerts"]}) == 3

    incident = one_incident(worker, 3)
    assert incident["group_key"] in group_keys
    assert incident["rule"] == "DiskFull"
    assert incident["severity"] == "medium"
    assert incident["service"] == "node"
    assert incident["title"] == "Disk above 80 % on db-1"
    assert len(incident["firing"]) == 3

    # Alertmanager resends the same notification every repeat_interval.
    status, repeated = post_raw(worker, "/alerts/alertmanager", body)
    assert status == 202, repeated
    assert repeated["alerts"] == accepted["alerts"]
    wait_for(
        lambda: asyncio.run(group_caught_up(worker, [topics.ALERTS])),
        15,
        "repeat consumed",
    )

    again = worker.incidents()
    assert [i["incident_id"] for i in again] == [incident["incident_id"]]
    assert again[0]["alert_count"] == 3
    events = topic_records(worker, topics.INCIDENT_EVENTS)
    assert len([e for e in events if e["kind"] == "opened"]) == 1
    assert len([e for e in events if e["kind"] == "alert_added"]) == 2
    alerts = topic_records(worker, topics.ALERTS)
    assert len(alerts) == 6
    assert len({a["event_id"] for a in alerts}) == 3


def test_alertmanager_group_open_until_all_resolve(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(CONFIG))
    firing = [am_alert("db-1"), am_alert("db-2"), am_alert("db-3")]
    status, accepted = post_raw(worker, "/alerts/alertmanager", am_payload(firing))
    assert status == 202, accepted
    incident_id = one_incident(worker, 3)["incident_id"]

    resolved = am_alert("db-1", status="resolved", endsAt=ENDS_AT)
    body = am_payload([resolved, am_alert("db-2"), am_alert("db-3")])
    status, result = post_raw(worker, "/alerts/alertmanager", body)
    assert status == 202, result
    wait_for(
        lambda: len(worker.get(f"/incidents/{incident_id}")["firing"]) == 2,
        15,
        "db-1 cleared",
    )
    assert worker.get(f"/incidents/{incident_id}")["state"] == "open"

    last_end = "2024-05-01T12:30:00Z"
    all_resolved = [
        am_alert(host, status="resolved", endsAt=last_end)
        for host in ("db-1", "db-2", "db-3")
    ]
    status, result = post_raw(
        worker, "/alerts/alertmanager", am_payload(all_resolved, status="resolved")
    )
    assert status == 202, result

    closed = wait_incidents(worker, 1, "resolved")
    assert [i["incident_id"] for i in closed] == [incident_id]
    assert closed[0]["resolved_at"] == last_end
    assert closed[0]["opened_at"] == STARTS_AT


def test_invalid_payload_rejected_dead_lettered(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(CONFIG))
    naive = am_alert("db-3", startsAt="2024-05-01T12:00:00")
    invalid = am_payload([am_alert("db-1"), am_alert("db-2"), naive])
    not_json = b'{"alerts": [ '

    status, rejected = post_raw(worker, "/alerts/alertmanager", invalid)
    assert status == 400
    assert "alerts.2.startsAt" in rejected["error"]
    assert "timezone" in rejected["error"]
    assert "'2024-05-01T12:00:00'" in rejected["error"]

    status, rejected = post_raw(worker, "/alerts", not_json)
    assert status == 400
    assert "Invalid JSON" in rejected["error"]

    oversized = b" " * (1024 * 1024 + 1)
    status, rejected = post_raw(worker, "/alerts", oversized)
    assert status == 413
    assert "1048576 bytes" in rejected["error"]
    status, rejected = post_raw(worker, "/alerts", oversized, chunked=True)
    assert status == 413

    letters = wait_for(
        lambda: (
            (found := topic_records(worker, topics.DEAD_LETTER))
            and len(found) >= 4
            and found
        ),
        15,
        "four dead letters",
    )
    by_source: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_source.setdefault(letter["topic"], []).append(letter)
    assert all(letter["stage"] == "intake" for letter in letters)
    [am_letter] = by_source["POST /alerts/alertmanager"]
    assert base64.b64decode(am_letter["value"]) == invalid
    assert "alerts.2.startsAt" in am_letter["error"]
    generic_letters = by_source["POST /alerts"]
    assert len(generic_letters) == 3
    values = [base64.b64decode(letter["value"]) for letter in generic_letters]
    assert not_json in values
    assert values.count(b"") == 2
    assert sum("1048576 bytes" in letter["error"] for letter in generic_letters) == 2

    # Nothing of the rejected payload reached the alerts topic.
    assert topic_records(worker, topics.ALERTS) == []
    assert worker.incidents() == []


def test_generic_form_opens_and_resolves(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(CONFIG))
    alert = {
        "labels": {"alertname": "QueueBacklog", "service": "billing"},
        "annotations": {"summary": "Queue above 10k"},
        "status": "firing",
        "starts_at": STARTS_AT,
        "severity": "page",
    }
    body = json.dumps({"alerts": [alert]}).encode()
    status, accepted = post_raw(worker, "/alerts", body)
    assert status == 202, accepted
    assert accepted["accepted"] == 1
    assert accepted["alerts"][0]["severity"] == "critical"

    [incident] = wait_incidents(worker, 1, "open")
    assert incident["service"] == "billing"
    assert incident["severity"] == "critical"
    assert incident["title"] == "Queue above 10k"
    assert incident["group_key"] == accepted["alerts"][0]["group_key"]

    resolved = {**alert, "status": "resolved", "ends_at": ENDS_AT}
    body = json.dumps({"alerts": [resolved]}).encode()
    status, result = post_raw(worker, "/alerts", body)
    assert status == 202, result

    [closed] = wait_incidents(worker, 1, "resolved")
    assert closed["incident_id"] == incident["incident_id"]
    assert closed["resolved_at"] == ENDS_AT


def test_stale_firing_after_resolve_ignored(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(CONFIG))
    alert = {
        "labels": {"alertname": "DiskFull", "service": "storage"},
        "status": "firing",
        "starts_at": STARTS_AT,
    }
    resolved = {**alert, "status": "resolved", "ends_at": ENDS_AT}
    for payload in (alert, resolved):
        status, result = post_raw(
            worker, "/alerts", json.dumps({"alerts": [payload]}).encode()
        )
        assert status == 202, result
    [closed] = wait_incidents(worker, 1, "resolved")

    # A lagging sender repeats the firing alert it sent before the resolve,
    # which is dropped as a redelivery, then reports it firing from a time
    # before the resolve, which is stale.
    lagging = {**alert, "starts_at": "2024-05-01T12:10:00Z"}
    for payload in (alert, lagging):
        body = json.dumps({"alerts": [payload]}).encode()
        status, result = post_raw(worker, "/alerts", body)
        assert status == 202, result

    def stale_recorded() -> list[dict[str, Any]]:
        shown = worker.get(f"/incidents/{closed['incident_id']}")
        return [
            e
            for e in shown["timeline"]
            if e["kind"] == "suppressed" and e["details"].get("reason") == "stale"
        ]

    [stale] = wait_for(stale_recorded, 15, "stale alert recorded")
    assert stale["details"]["alert_at"] == "2024-05-01T12:10:00+00:00"
    assert [i["state"] for i in worker.incidents()] == ["resolved"]

    # The same alert firing again after its resolve is a new episode.
    later = {**alert, "starts_at": "2024-05-01T13:00:00Z"}
    status, result = post_raw(
        worker, "/alerts", json.dumps({"alerts": [later]}).encode()
    )
    assert status == 202, result
    [recurrence] = wait_incidents(worker, 1, "open")
    assert recurrence["incident_id"] != closed["incident_id"]
    assert recurrence["recurrence_of"] == closed["incident_id"]

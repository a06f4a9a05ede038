"""Redelivered and invalid records on a real broker: nothing doubles, nothing stops."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from harness import Worker, WorkerFactory, group_caught_up, group_partitions, wait_for
from scenario import LABELS, SERIES, expected_incidents, pipeline_config, read_series

from schemas.records import MetricBatch, MetricSample
from streams import topics
from streams.keys import encode_key
from tocsin.replay import replay_metrics

SOURCE_TOPICS = [
    topics.METRICS,
    topics.LOGS,
    topics.ALERTS,
    topics.COMMANDS,
    topics.INCIDENT_EVENTS,
    topics.NOTIFICATIONS,
    topics.RESPONSE_SAMPLES,
]


async def rewind_group(worker: Worker) -> int:
    """Commit offset 0 for every source partition of the worker's group."""
    consumer, partitions = await group_partitions(worker, SOURCE_TOPICS)
    try:
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
        return len(partitions)
    finally:
        await consumer.stop()


def test_redelivered_records_open_and_page_nothing_twice(
    workers: WorkerFactory, nab: Path, vendors: Any
) -> None:
    slack, pagerduty, env = vendors
    path = nab / "data" / SERIES
    expected = expected_incidents(read_series(path))
    config = workers.write_config(pipeline_config())
    worker = workers.start(config, env)
    bootstrap = worker.env["TOCSIN_BOOTSTRAP_SERVERS"]
    asyncio.run(replay_metrics(bootstrap, worker.prefix, path, LABELS, progress=False))
    wait_for(
        lambda: len({e["dedup_key"] for e in pagerduty.events}) == len(expected),
        60,
        "every incident paged",
    )
    wait_for(
        lambda: asyncio.run(group_caught_up(worker, SOURCE_TOPICS)),
        60,
        "first pass consumed",
    )
    before = sorted(i["incident_id"] for i in worker.incidents())
    slack_posts = len(slack.messages)
    pagerduty_events = len(pagerduty.events)

    worker.stop()
    assert asyncio.run(rewind_group(worker)) >= len(SOURCE_TOPICS)
    again = workers.start(config, env, name="worker")
    wait_for(
        lambda: asyncio.run(group_caught_up(again, SOURCE_TOPICS)),
        90,
        "redelivery consumed",
    )

    assert sorted(i["incident_id"] for i in again.incidents()) == before
    assert len(slack.messages) == slack_posts
    assert len(pagerduty.events) == pagerduty_events
    triggers = [
        e["dedup_key"] for e in pagerduty.events if e["event_action"] == "trigger"
    ]
    assert len(triggers) == len(set(triggers)) == len(expected)


def test_invalid_record_dead_lettered_next_processed(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {
            "rules": {
                "metrics": [
                    {
                        "name": "cpu_high",
                        "match": {"metric": "cpu_utilization"},
                        "threshold": 90,
                        "severity": "high",
                    }
                ]
            }
        }
    )
    worker = workers.start(config)
    bootstrap = worker.env["TOCSIN_BOOTSTRAP_SERVERS"]
    topic = worker.prefix + topics.METRICS.name
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    not_json = b"{not json"
    missing_samples = json.dumps({"series": "web-1", "labels": {}}).encode()
    wrong_value = json.dumps(
        {
            "series": "web-1",
            "labels": {"service": "web"},
            "samples": [{"at": at.isoformat(), "value": "high"}],
        }
    ).encode()
    valid = MetricBatch(
        series="web-1",
        labels={"service": "web", "metric": "cpu_utilization"},
        samples=[
            MetricSample(at=at + timedelta(minutes=m), value=95) for m in range(3)
        ],
    )

    async def send_all() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for value in (not_json, missing_samples, wrong_value, valid.to_bytes()):
                await producer.send_and_wait(topic, value, key=encode_key("web-1"))
        finally:
            await producer.stop()

    asyncio.run(send_all())
    incident = wait_for(
        lambda: (found := worker.incidents()) and found[0], 60, "incident opened"
    )
    assert incident["service"] == "web"
    assert incident["rule"] == "cpu_high"

    letters = asyncio.run(
        read_all(bootstrap, worker.prefix + topics.DEAD_LETTER.name, 3)
    )
    assert [base64.b64decode(d["value"]) for d in letters] == [
        not_json,
        missing_samples,
        wrong_value,
    ]
    assert all(d["stage"] == "detect" and d["topic"] == topic for d in letters)
    assert "Invalid JSON" in letters[0]["error"]
    assert "samples: Field required" in letters[1]["error"]
    assert "samples.0.value" in letters[2]["error"]
    assert "'high'" in letters[2]["error"]

    exposition = urllib.request.urlopen(worker.url + "/metrics", timeout=10).read()
    text = exposition.decode()
    assert 'tocsin_dead_lettered_total{stage="detect"} 3.0' in text
    assert 'tocsin_records_in_total{topic="telemetry.metrics"} 4.0' in text
    assert 'tocsin_incident_events_total{kind="opened"} 1.0' in text


async def read_all(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend(json.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return sorted(found, key=lambda d: d["offset"])

"""Rule types end to end on the broker: absence with ticks, change, burn rate, logs."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import Worker, WorkerFactory, wait_for
from test_delivery_guarantees import read_all

from schemas.records import LogBatch, LogLine, MetricBatch, MetricSample, Record
from streams import topics
from tocsin.replay import publish

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def send(worker: Worker, spec: topics.TopicSpec, key: str, records: list[Any]) -> None:
    asyncio.run(
        publish(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix + spec.name,
            key,
            iter(records),
            progress=False,
        )
    )


def batch(series: str, metric: str, points: list[tuple[float, float]]) -> Record:
    return MetricBatch(
        series=series,
        labels={"service": series, "metric": metric},
        samples=[
            MetricSample(at=T0 + timedelta(seconds=s), value=v) for s, v in points
        ],
    )


def by_rule(worker: Worker) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for incident in worker.incidents():
        found.setdefault(incident["rule"], []).append(incident)
    return found


def test_absence_fires_and_resolves_live(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {
            "rules": {
                "metrics": [
                    {
                        "name": "heartbeat_missing",
                        "type": "absence",
                        "match": {"metric": "heartbeat"},
                        "window": "3s",
                        "expect": ["ghost"],
                        "expect_labels": {"service": "ghost", "metric": "heartbeat"},
                        "auto_resolve": True,
                    }
                ]
            }
        }
    )
    worker = workers.start(config, {"TOCSIN_CLOCK": "live"})

    def beat() -> None:
        now = datetime.now(UTC)
        record = MetricBatch(
            series="api",
            labels={"service": "api", "metric": "heartbeat"},
            samples=[MetricSample(at=now, value=1.0)],
        )
        send(worker, topics.METRICS, "api", [record])

    beat()

    def services() -> dict[str, str]:
        return {i["service"]: i["state"] for i in worker.incidents()}

    # The expected series never reported, and api stopped after one beat.
    found = wait_for(lambda: len(s := services()) == 2 and s, 30, "both absent")
    assert found == {"ghost": "open", "api": "open"}
    beat()
    wait_for(lambda: services().get("api") == "resolved", 30, "api back")
    assert services()["ghost"] == "open"


def test_change_and_burn_rate_open_incidents(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {
            "rules": {
                "metrics": [
                    {
                        "name": "traffic_spike",
                        "type": "change",
                        "match": {"metric": "requests"},
                        "window": "5m",
                        "reference": "30m",
                        "ratio": 3,
                        "auto_resolve": True,
                    },
                    {
                        "name": "checkout_slo",
                        "type": "burn_rate",
                        "match": {"metric": "error_ratio"},
                        "objective": 0.999,
                        "auto_resolve": True,
                    },
                ]
            }
        }
    )
    worker = workers.start(config)
    traffic = [(m * 60, 100.0) for m in range(40)] + [(40 * 60, 2000.0)]
    traffic += [(m * 60, 100.0) for m in range(41, 60)]
    errors = [(m * 60, 0.0001) for m in range(30)]
    errors += [(m * 60, 0.05) for m in range(30, 40)]
    errors += [(m * 60, 0.0) for m in range(40, 120)]
    send(worker, topics.METRICS, "web", [batch("web", "requests", traffic)])
    send(worker, topics.METRICS, "checkout", [batch("checkout", "error_ratio", errors)])

    def both_resolved() -> Any:
        found = by_rule(worker)
        states = [i["state"] for items in found.values() for i in items]
        return found if len(found) == 2 and set(states) == {"resolved"} else None

    found = wait_for(both_resolved, 60, "spike and burn resolved")
    spike = found["traffic_spike"][0]
    burn = found["checkout_slo"][0]
    assert spike["opened_at"] == (T0 + timedelta(minutes=40)).isoformat().replace(
        "+00:00", "Z"
    )
    # 5 % errors from minute 30: the 6x pair (6 h and 30 m) first burns at
    # minute 34, when both means reach 0.0072 and 0.0084 against 0.001.
    assert burn["opened_at"] == (T0 + timedelta(minutes=34)).isoformat().replace(
        "+00:00", "Z"
    )
    assert len(found["traffic_spike"]) == 1
    assert len(found["checkout_slo"]) == 1


def test_late_sample_dead_lettered(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {"rules": {"metrics": [{"name": "hot", "threshold": 90}]}}
    )
    worker = workers.start(config)
    on_time = batch("db", "cpu", [(0, 10.0), (600, 95.0)])
    late = batch("db", "cpu", [(300, 99.0)])
    send(worker, topics.METRICS, "db", [on_time, late])

    letters = asyncio.run(
        read_all(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix + topics.DEAD_LETTER.name,
            1,
        )
    )
    assert "late samples of series 'db'" in letters[0]["error"]
    assert "allowed lateness is 0:00:00" in letters[0]["error"]
    kept = json.loads(base64.b64decode(letters[0]["value"]))
    assert [s["value"] for s in kept["samples"]] == [99.0]
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "incident")
    assert incident["opened_at"] == "2024-06-01T00:10:00Z"


def test_frequency_rule_counts_per_node(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {
            "rules": {
                "logs": [
                    {
                        "name": "link_errors",
                        "type": "frequency",
                        "regex": "link error",
                        "window": "1m",
                        "min_count": 3,
                        "group_by": ["node"],
                    }
                ]
            }
        }
    )
    worker = workers.start(config)

    def lines(node: str, offsets: list[int]) -> list[LogLine]:
        return [
            LogLine(
                at=T0 + timedelta(seconds=s),
                message=f"link error on port {s}",
                fields={"node": node},
            )
            for s in offsets
        ]

    record = LogBatch(
        source="switches",
        labels={"service": "network"},
        lines=lines("n1", [0, 10, 20]) + lines("n2", [0, 40, 80]) + lines("n1", [200]),
    )
    send(worker, topics.LOGS, "switches", [record])
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "incident")
    assert incident["labels"]["node"] == "n1"
    assert incident["opened_at"] == "2024-06-01T00:00:20Z"
    assert incident["started_at"] == "2024-06-01T00:00:00Z"
    assert len(worker.incidents()) == 1


def test_new_term_cardinality_and_anomaly_fire(workers: WorkerFactory) -> None:
    config = workers.write_config(
        {
            "rules": {
                "metrics": [
                    {
                        "name": "latency_odd",
                        "type": "anomaly",
                        "match": {"metric": "latency_ms"},
                    }
                ],
                "logs": [
                    {
                        "name": "new_user",
                        "type": "new_term",
                        "field": "user",
                        "lookback": "1h",
                    },
                    {
                        "name": "many_clients",
                        "type": "cardinality",
                        "field": "ip",
                        "window": "1m",
                        "threshold": 3,
                    },
                ],
            }
        }
    )
    worker = workers.start(config)
    # A steady latency with small wobble, then a jump far outside it.
    steady = [(m * 60, 100.0 + (m % 5)) for m in range(400)]
    send(worker, topics.METRICS, "api", [batch("api", "latency_ms", steady)])
    send(
        worker, topics.METRICS, "api", [batch("api", "latency_ms", [(400 * 60, 900.0)])]
    )

    def line(offset_s: int, **fields: str) -> LogLine:
        return LogLine(
            at=T0 + timedelta(seconds=offset_s), message="login", fields=fields
        )

    training = [line(s, user="alice", ip="10.0.0.1") for s in range(0, 3600, 600)]
    later = [line(3700, user="alice", ip="10.0.0.1"), line(3710, user="mallory")]
    burst = [line(4000 + s, ip=f"10.0.1.{s}") for s in range(5)]
    record = LogBatch(
        source="auth", labels={"service": "auth"}, lines=training + later + burst
    )
    send(worker, topics.LOGS, "auth", [record])

    found = wait_for(lambda: len(r := by_rule(worker)) == 3 and r, 60, "three rules")
    anomaly = found["latency_odd"][0]
    assert anomaly["opened_at"] == (T0 + timedelta(minutes=400)).isoformat().replace(
        "+00:00", "Z"
    )
    assert len(found["new_user"]) == 1
    assert found["new_user"][0]["opened_at"] == "2024-06-01T01:01:50Z"
    assert found["many_clients"][0]["opened_at"] == "2024-06-01T01:06:43Z"

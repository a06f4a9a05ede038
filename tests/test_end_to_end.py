"""The whole pipeline on a real broker, fed with a real NAB series."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import WorkerFactory, wait_for
from scenario import (
    ESCALATE_AFTER,
    LABELS,
    ROUTING_KEY,
    SERIES,
    expected_incidents,
    pipeline_config,
    read_series,
)

from schemas.records import MetricBatch, MetricSample
from tocsin.replay import publish, replay_metrics

# Seconds to wait for every incident's first Slack message and PagerDuty
# trigger, before wait_for's scaling.
DELIVERY_BOUND_S = 60


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_row(rows: list[dict[str, Any]], opened: datetime, size_s: int) -> Any:
    start = opened.timestamp() // size_s * size_s
    matching = [r for r in rows if r["window_start"] == start]
    assert len(matching) == 1, f"no single window at {start} in {rows}"
    return matching[0]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def test_replay_opens_notifies_and_measures(
    workers: WorkerFactory, nab: Path, vendors: Any
) -> None:
    slack, pagerduty, env = vendors
    path = nab / "data" / SERIES
    rows = read_series(path)
    expected = expected_incidents(rows)
    assert len(expected) >= 3, "the series should breach the test rules"
    worker = workers.start(workers.write_config(pipeline_config()), env)

    asyncio.run(
        replay_metrics(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix,
            path,
            LABELS,
            batch_size=100,
            progress=False,
        )
    )

    def all_opened() -> list[dict[str, Any]] | None:
        found = worker.incidents()
        return found if len(found) >= len(expected) else None

    incidents = wait_for(all_opened, 60, f"{len(expected)} incidents opened")
    incidents = sorted(incidents, key=lambda i: i["opened_at"])
    assert len(incidents) == len(expected)
    for incident, reference in zip(incidents, expected, strict=True):
        assert incident["rule"] == reference["rule"]
        assert parse(incident["opened_at"]) == reference["opened"]

    # Every incident got one Slack message and one PagerDuty trigger.
    ids = [i["incident_id"] for i in incidents]

    def top_level_posts() -> list[dict[str, Any]]:
        return [
            m
            for m in slack.messages
            if m["method"] == "chat.postMessage" and m["thread_ts"] is None
        ]

    def delivered() -> bool:
        triggered = {e["dedup_key"] for e in pagerduty.events}
        return triggered >= set(ids) and len(top_level_posts()) >= len(ids)

    # Slack calls to one channel are spaced a second apart, so the messages
    # of the later incidents wait behind those of the earlier ones.
    try:
        wait_for(delivered, DELIVERY_BOUND_S, "slack and pagerduty notified")
    except AssertionError as exc:
        missing = set(ids) - {e["dedup_key"] for e in pagerduty.events}
        raise AssertionError(
            f"{exc}: {len(top_level_posts())} of {len(ids)} Slack messages "
            f"posted, no PagerDuty trigger for {sorted(missing)}"
        ) from None
    assert len(top_level_posts()) == len(ids)
    triggers = [e for e in pagerduty.events if e["event_action"] == "trigger"]
    assert sorted(e["dedup_key"] for e in triggers) == sorted(ids)
    assert {e["routing_key"] for e in pagerduty.events} == {ROUTING_KEY}

    # Hot incidents resolve themselves when the temperature falls back.
    for incident, reference in zip(incidents, expected, strict=True):
        if reference.get("resolved") is not None:
            wait_for(
                lambda i=incident: (
                    worker.get(f"/incidents/{i['incident_id']}")["state"] == "resolved"
                ),
                30,
                f"{incident['incident_id']} resolved",
            )

    # Acknowledge the cold incident at the end of the series, then resolve it
    # half an hour of event time later.
    cold = next(i for i in incidents if i["rule"] == "room_cold")
    cold_id = cold["incident_id"]
    last_at = rows[-1][0]
    worker.post(f"/incidents/{cold_id}/acknowledge", {"actor": "alice"})
    wait_for(
        lambda: worker.get(f"/incidents/{cold_id}")["state"] == "acknowledged",
        30,
        "cold incident acknowledged",
    )
    tick = MetricBatch(
        series="clock",
        labels={"service": "clock", "metric": "heartbeat"},
        samples=[MetricSample(at=last_at + timedelta(minutes=30), value=1.0)],
    )
    asyncio.run(
        publish(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix + "telemetry.metrics",
            "clock",
            iter([tick]),
            progress=False,
        )
    )
    wait_for(
        lambda: parse(worker.get("/health")["clock"]) >= tick.samples[0].at,
        30,
        "pipeline clock at the heartbeat sample",
    )
    worker.post(f"/incidents/{cold_id}/resolve", {"actor": "bob"})
    detail = wait_for(
        lambda: (d := worker.get(f"/incidents/{cold_id}"))["state"] == "resolved" and d,
        30,
        "cold incident resolved",
    )
    opened = parse(detail["opened_at"])
    assert parse(detail["acknowledged_at"]) == last_at
    assert parse(detail["resolved_at"]) == last_at + timedelta(minutes=30)
    assert detail["acknowledged_by"] == "alice via http"
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "opened"
    assert "escalated" in kinds
    assert kinds.index("escalated") < kinds.index("acknowledged")
    escalated = next(e for e in detail["timeline"] if e["kind"] == "escalated")
    assert parse(escalated["at"]) == opened + ESCALATE_AFTER

    # The acknowledge and the resolve reached PagerDuty and updated Slack.
    wait_for(
        lambda: pagerduty.alerts.get(cold_id) == "resolved", 30, "pagerduty resolved"
    )
    assert [
        e["event_action"] for e in pagerduty.events if e["dedup_key"] == cold_id
    ] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]

    # MTTA and MTTR in the windowed tables, computed here from the reference.
    mtta_s = (last_at - opened).total_seconds()
    resolve_s = {
        i["opened"]: (i["resolved"] - i["opened"]).total_seconds()
        for i in expected
        if i.get("resolved") is not None
    }
    resolve_s[opened] = (last_at + timedelta(minutes=30) - opened).total_seconds()
    for window, size_s in (("hourly", 3600), ("daily", 86400)):

        def in_window(at: datetime, size: int = size_s) -> bool:
            return at.timestamp() // size == opened.timestamp() // size

        def metrics_ready(name: str = window, size_s: int = size_s) -> Any:
            rows = worker.get(f"/metrics/response?window={name}&service=machine-room")
            try:
                row = window_row(rows["rows"], opened, size_s)
            except AssertionError:
                return None
            return row if row["resolved"] and row["acknowledged"] else None

        row = wait_for(metrics_ready, 30, f"{window} metrics")
        expected_resolves = [s for at, s in resolve_s.items() if in_window(at)]
        assert row["opened"] == sum(1 for i in expected if in_window(i["opened"]))
        assert row["acknowledged"] == 1
        assert row["mtta_s"] == pytest.approx(mtta_s)
        assert row["mttr_s"] == pytest.approx(mean(expected_resolves))

    # A window with no incidents reports null, not zero.
    empty = worker.get(
        "/metrics/response?window=hourly&service=machine-room"
        f"&at={rows[0][0].timestamp()}"
    )
    assert empty["rows"][0]["opened"] == 0
    assert empty["rows"][0]["mtta_s"] is None
    assert empty["rows"][0]["mttr_s"] is None

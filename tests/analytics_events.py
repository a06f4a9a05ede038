"""Incidents with chosen times for the analytics tests, and their reference.

Alerts and commands go straight to the broker with explicit event times, so
each incident opens, is acknowledged and resolves at the time the test chooses. The
reference computes the metrics from the incidents' timelines with plain
loops, apart from the pipeline's sketches and windowed tables.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from harness import Worker, wait_for

from schemas.records import (
    Alert,
    AlertStatus,
    Command,
    CommandKind,
    Record,
    Severity,
    stable_hash,
)
from streams import topics
from streams.keys import encode_key

T0 = datetime(2024, 9, 2, tzinfo=UTC)
HOUR = 3600
DAY = 86400
WINDOWS = {"hourly": (HOUR, HOUR), "daily": (DAY, DAY), "weekly": (7 * DAY, DAY)}
MTTA_TARGET_S = 300
MTTR_TARGET_S = 3600
TIMEOUT_S = 60
# Incidents of response target alerts are left out of the metrics.
TARGET_ALERTS = {"MTTABreach", "MTTRBreach"}


def config() -> dict[str, Any]:
    return {
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "receivers": {"pager": {"type": "console"}},
    }


@dataclass(frozen=True)
class Planned:
    """One incident: its alert's times and its commands' times, in minutes."""

    name: str
    service: str
    severity: Severity
    started_min: float
    opened_min: float
    acknowledged_min: float | None = None
    resolved_min: float | None = None
    false_positive: bool = False

    @property
    def fingerprint(self) -> str:
        return stable_hash("analytics-test", self.name)

    @property
    def incident_id(self) -> str:
        return f"{self.fingerprint}-1"


def minutes(value: float) -> datetime:
    return T0 + timedelta(minutes=value)


def alert_for(planned: Planned) -> Alert:
    return Alert(
        event_id=stable_hash(planned.fingerprint, "firing"),
        fingerprint=planned.fingerprint,
        group_key=planned.fingerprint,
        rule=planned.name,
        status=AlertStatus.FIRING,
        severity=planned.severity,
        labels={"alertname": planned.name, "service": planned.service},
        annotations={"summary": f"{planned.name} on {planned.service}"},
        starts_at=minutes(planned.started_min),
        at=minutes(planned.opened_min),
        source="test",
    )


def commands_for(planned: Planned) -> list[Command]:
    found = []
    if planned.acknowledged_min is not None:
        found.append((CommandKind.ACKNOWLEDGE, planned.acknowledged_min, {}))
    if planned.resolved_min is not None:
        details = {"resolution": "false_positive"} if planned.false_positive else {}
        found.append((CommandKind.RESOLVE, planned.resolved_min, details))
    return [
        Command(
            command_id=str(uuid.uuid4()),
            kind=kind,
            incident_id=planned.incident_id,
            actor="tester",
            source="http",
            at=minutes(at_min),
            details=details,
        )
        for kind, at_min, details in sorted(found, key=lambda item: item[1])
    ]


async def _send(worker: Worker, spec: topics.TopicSpec, items: list[Any]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"].split(","),
        acks="all",
    )
    await producer.start()
    try:
        for key, record in items:
            assert isinstance(record, Record)
            await producer.send(
                worker.prefix + spec.name, record.to_bytes(), key=encode_key(key)
            )
        await producer.flush()
    finally:
        await producer.stop()


def create(worker: Worker, plan: list[Planned]) -> None:
    """Open every planned incident, then send its acknowledge and resolve."""
    alerts = [(p.fingerprint, alert_for(p)) for p in plan]
    asyncio.run(_send(worker, topics.ALERTS, alerts))
    expected_ids = {p.incident_id for p in plan}

    def all_open() -> bool:
        found = {i["incident_id"] for i in worker.incidents()}
        return expected_ids <= found

    wait_for(all_open, TIMEOUT_S, f"{len(expected_ids)} incidents opened")
    commands = [(p.fingerprint, c) for p in plan for c in commands_for(p)]
    asyncio.run(_send(worker, topics.COMMANDS, commands))

    def all_done() -> bool:
        for p in plan:
            incident = worker.get(f"/incidents/{p.incident_id}")
            if p.resolved_min is not None and incident["state"] != "resolved":
                return False
            if p.acknowledged_min is not None and not incident["acknowledged_at"]:
                return False
        return True

    wait_for(all_done, TIMEOUT_S, "commands applied")


# The reference: plain loops over the timelines.


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lower_rank(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[int(quantile * (len(ordered) - 1))]


def window_starts(opened: datetime, size_s: int, step_s: int) -> list[float]:
    """Return the start of each window of `size_s`, stepping `step_s`, with `opened`."""
    ts = opened.timestamp()
    latest = ts // step_s * step_s
    return [latest - k * step_s for k in range(size_s // step_s)]


def empty_entry() -> dict[str, Any]:
    return {
        "opened": 0,
        "tta": [],
        "ttr": [],
        "ttd": [],
        "unacknowledged": 0,
        "false_positives": 0,
        "notifications": 0,
        "critical_spans": [],
    }


def downtime_s(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Return the seconds of [start, end] during which any span was open."""
    covered = 0.0
    reached = start
    for span_start, span_end in sorted(spans):
        low = max(span_start, reached)
        high = min(span_end, end)
        if high > low:
            covered += high - low
            reached = high
    return covered


def reference_availability(entry: dict[str, Any], start: float, size_s: int) -> Any:
    if not entry["opened"] and not entry["critical_spans"]:
        return None
    return 1 - downtime_s(entry["critical_spans"], start, start + size_s) / size_s


def reference(
    timelines: list[list[dict[str, Any]]], window: str
) -> dict[tuple[str, float], dict[str, Any]]:
    """Compute each (dimension, window start)'s metrics from the timelines."""
    size_s, step_s = WINDOWS[window]
    grouped: dict[tuple[str, float], dict[str, Any]] = {}
    for timeline in timelines:
        first = timeline[0]
        if first["labels"].get("alertname") in TARGET_ALERTS:
            continue
        opened = parse(first["opened_at"])
        ack = next((e for e in timeline if e["kind"] == "acknowledged"), None)
        res = next((e for e in timeline if e["kind"] == "resolved"), None)
        tta = (parse(ack["at"]) - opened).total_seconds() if ack else None
        ttr = (parse(res["at"]) - opened).total_seconds() if res else None
        ttd = (opened - parse(first["started_at"])).total_seconds()
        keys = ["all", f"service:{first['service']}", f"severity:{first['severity']}"]
        if first["severity"] == "critical" and res is not None:
            # Every window that overlaps the critical span counts it.
            span = (opened.timestamp(), parse(res["at"]).timestamp())
            start = min(window_starts(opened, size_s, step_s))
            while start < span[1]:
                if start + size_s > span[0]:
                    for dimension in keys:
                        entry = grouped.setdefault((dimension, start), empty_entry())
                        entry["critical_spans"].append(span)
                start += step_s
        for dimension in keys:
            for start in window_starts(opened, size_s, step_s):
                entry = grouped.setdefault((dimension, start), empty_entry())
                entry["opened"] += 1
                entry["ttd"].append(ttd)
                if tta is None:
                    entry["unacknowledged"] += 1
                else:
                    entry["tta"].append(tta)
                if ttr is not None:
                    entry["ttr"].append(ttr)
                    resolution = res["details"].get("resolution") if res else None
                    entry["false_positives"] += int(resolution == "false_positive")
                entry["notifications"] += sum(
                    1 for e in timeline if e["kind"] == "notified"
                )
    return grouped

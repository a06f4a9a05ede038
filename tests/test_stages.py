"""Stages a NAB replay does not reach: log rules, live escalation, runbooks, CLI."""

from __future__ import annotations

import asyncio
import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from fakes.server import FakeServer
from harness import Worker, WorkerFactory, publish_metrics, wait_for

from schemas.records import MetricBatch, MetricSample
from tocsin.cli import main
from tocsin.replay import replay_logs

BGL = Path("loghub") / "BGL" / "BGL_2k.log_structured.csv"
TLB_PATTERN = "data TLB error interrupt"


class RunbookTarget(FakeServer):
    """An HTTP endpoint that runbooks restart services through; it returns 202."""

    def add_routes(self, app: web.Application) -> None:
        async def restart(request: web.Request) -> web.Response:
            return web.json_response({"accepted": True}, status=202)

        app.router.add_post("/services/{service}/restart", restart)


def timeline(worker: Worker, incident_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = worker.get(f"/incidents/{incident_id}")["timeline"]
    return events


def send_metric(worker: Worker, service: str, value: float, at: datetime) -> None:
    batch = MetricBatch(
        series=f"{service}/cpu",
        labels={"service": service, "metric": "cpu_utilization"},
        samples=[MetricSample(at=at, value=value)],
    )
    publish_metrics(worker, batch)


def cpu_rule(**extra: Any) -> dict[str, Any]:
    return {
        "name": "cpu_high",
        "match": {"metric": "cpu_utilization"},
        "threshold": 90,
        "severity": "high",
        **extra,
    }


def test_log_pattern_rule_opens_one_incident(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = data / BGL
    if not path.is_file():
        pytest.skip(f"Loghub BGL sample not found at {path}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    matching = [
        r
        for r in rows
        if re.search(TLB_PATTERN, r["Content"]) and r["Level"] == "FATAL"
    ]
    assert matching, "the sample should contain data TLB errors"
    config = workers.write_config(
        {
            "rules": {
                "logs": [
                    {
                        "name": "data_tlb_error",
                        "regex": TLB_PATTERN,
                        "levels": ["fatal"],
                        "severity": "critical",
                    }
                ]
            }
        }
    )
    worker = workers.start(config)
    asyncio.run(
        replay_logs(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix,
            path,
            {"service": "bgl", "source": "bgl"},
            progress=False,
        )
    )

    def counted() -> Any:
        found = worker.incidents()
        if found and found[0]["alert_count"] == len(matching):
            return found
        return None

    incidents = wait_for(counted, 60, f"{len(matching)} matching lines counted")
    assert len(incidents) == 1
    first = datetime.fromtimestamp(int(matching[0]["Timestamp"]), UTC)
    assert incidents[0]["opened_at"] == first.isoformat().replace("+00:00", "Z")
    assert incidents[0]["severity"] == "critical"


def test_live_escalation_stops_on_ack(
    workers: WorkerFactory,
) -> None:
    config = workers.write_config(
        {
            "rules": {"metrics": [cpu_rule()]},
            "policies": {
                "default": {
                    "levels": [
                        {"delay": "0s", "targets": ["first"]},
                        {"delay": "2s", "targets": ["second"]},
                        {"delay": "5s", "targets": ["third"]},
                    ]
                }
            },
            "receivers": {
                "first": {"type": "console"},
                "second": {"type": "console"},
                "third": {"type": "console"},
            },
        }
    )
    worker = workers.start(config, {"TOCSIN_CLOCK": "live"})
    send_metric(worker, "api", 97.0, datetime.now(UTC))
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]

    def escalated() -> Any:
        events = timeline(worker, incident_id)
        return [e for e in events if e["kind"] == "escalated"] or None

    first_escalation = wait_for(escalated, 20, "escalated to level 1")[0]
    opened = datetime.fromisoformat(incident["opened_at"])
    at = datetime.fromisoformat(first_escalation["at"])
    assert (at - opened).total_seconds() == 2.0
    assert first_escalation["level"] == 1

    runner = CliRunner()
    result = runner.invoke(
        main, ["ack", incident_id, "--actor", "carol", "--url", worker.url]
    )
    assert result.exit_code == 0, result.output
    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["state"] == "acknowledged",
        20,
        "acknowledged",
    )
    listing = runner.invoke(main, ["incidents", "--url", worker.url])
    assert incident_id in listing.output
    assert "acknowledged" in listing.output

    # Level 2 was due 5 s after opening; an acknowledged incident never gets it.
    wait_for(
        lambda: datetime.now(UTC).timestamp() > opened.timestamp() + 6.5,
        10,
        "level 2 deadline passed",
    )
    kinds = [e["kind"] for e in timeline(worker, incident_id)]
    assert kinds.count("escalated") == 1
    receivers = {
        e["details"]["receiver"]
        for e in timeline(worker, incident_id)
        if e["kind"] == "notified"
    }
    assert "third" not in receivers
    assert {"first", "second"} <= receivers


def test_runbook_runs_live_and_dry(workers: WorkerFactory) -> None:
    with RunbookTarget() as target:
        action = {
            "type": "http",
            "method": "POST",
            "url": target.url + "/services/{service}/restart",
            "body": {"incident": "{incident_id}"},
            "expected_status": 202,
        }
        config = workers.write_config(
            {
                "rules": {"metrics": [cpu_rule(labels={"runbook": "restart"})]},
                "runbooks": [
                    {
                        "name": "restart-live",
                        "owner": "web",
                        "trigger": {"labels": {"runbook": "restart"}},
                        "dry_run": False,
                        "steps": [{"name": "restart", "action": action}],
                    },
                    {
                        "name": "restart-dry",
                        "owner": "web",
                        "trigger": {"labels": {"runbook": "restart"}},
                        "steps": [{"name": "restart", "action": action}],
                    },
                ],
            }
        )
        worker = workers.start(config)
        send_metric(worker, "web api", 99.0, datetime(2024, 3, 1, tzinfo=UTC))

        def finished() -> Any:
            found = worker.incidents()
            if not found:
                return None
            events = timeline(worker, found[0]["incident_id"])
            runs = [e for e in events if e["kind"] == "runbook_finished"]
            return runs if len(runs) == 2 else None

        runs = {
            r["details"]["runbook"]: r["details"]
            for r in wait_for(finished, 30, "runs")
        }
        requests = target.requests
        target_url = target.url
    assert len(requests) == 1
    assert requests[0].path == "/services/web api/restart"
    rendered = runs["restart-live"]["steps"][0]["input"]["url"]
    assert rendered == target_url + "/services/web%20api/restart"
    assert requests[0].json()["incident"].endswith("-1")
    assert runs["restart-live"]["status"] == "succeeded"
    assert runs["restart-live"]["steps"][0]["http_status"] == 202
    assert runs["restart-dry"]["status"] == "rendered"
    assert runs["restart-dry"]["dry_run"] is True


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n"
        "  metrics:\n"
        "    - {name: a, threshold: high, for: 5 minutes}\n"
        "receivers:\n"
        "  pager: {type: sms}\n"
    )
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "rules.metrics.0.threshold" in result.output
    assert "'high'" in result.output
    assert "rules.metrics.0.for" in result.output
    assert "invalid duration '5 minutes'" in result.output
    assert "receivers.pager" in result.output


def test_config_check_accepts_the_default() -> None:
    result = CliRunner().invoke(main, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output

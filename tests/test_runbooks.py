"""Runbook runs end to end: a real worker, the test broker, real child processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fakes.server import FakeServer
from fakes.slack import FakeSlack
from harness import Worker, WorkerFactory, group_caught_up, publish_metrics, wait_for
from processes import alive
from test_slack_buttons import post_press, press_body, signed_headers

from schemas.records import MetricBatch, MetricSample
from streams import topics
from tocsin import client

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PYTHON = sys.executable
WAIT_S = 60
SECRET_TOKEN = "runbook-secret-token-value"


class ActionTarget(FakeServer):
    """An HTTP endpoint runbook steps call; every POST returns 202."""

    def add_routes(self, app: web.Application) -> None:
        async def accept(request: web.Request) -> web.Response:
            return web.json_response({"accepted": True}, status=202)

        app.router.add_post("/{path:.*}", accept)


@pytest.fixture
def target() -> Iterator[ActionTarget]:
    with ActionTarget() as server:
        yield server


def send_metric(
    worker: Worker, series: str, labels: dict[str, str], value: float, at: datetime
) -> None:
    """Publish one CPU sample; above 90 it opens an incident for `series`."""
    batch = MetricBatch(
        series=series,
        labels={"metric": "cpu_utilization", "service": "api", **labels},
        samples=[MetricSample(at=at, value=value)],
    )
    publish_metrics(worker, batch)


def base_config(runbook: dict[str, Any], **extra: Any) -> dict[str, Any]:
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
        "receivers": {"pager": {"type": "console"}, "owner": {"type": "console"}},
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "runbooks": [
            {
                "name": "restart",
                "owner": "web team",
                "owner_receivers": ["owner"],
                "trigger": {"labels": {"runbook": "restart"}},
                "dry_run": False,
                **runbook,
            }
        ],
        **extra,
    }


def runs(worker: Worker) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = worker.get("/runbooks/runs")["runs"]
    return found


def run_for(worker: Worker, series_labels: dict[str, str]) -> dict[str, Any] | None:
    """Return the run of the incident whose labels include `series_labels`."""
    for incident in worker.incidents():
        labels = incident.get("labels", {})
        if all(labels.get(k) == v for k, v in series_labels.items()):
            for run in runs(worker):
                if run["incident_id"] == incident["incident_id"]:
                    return run
    return None


def timeline(worker: Worker, incident_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = worker.get(f"/incidents/{incident_id}")["timeline"]
    return events


def finished_runs(worker: Worker, incident_id: str) -> list[dict[str, Any]]:
    return [
        event["details"]
        for event in timeline(worker, incident_id)
        if event["kind"] == "runbook_finished"
    ]


def kill_quietly(pid_file: Path) -> None:
    """Kill a process group a test started through a runbook, if it still runs."""
    if pid_file.is_file() and pid_file.read_text().strip():
        pid = int(pid_file.read_text())
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


# Hangs when its mode argument is "hang", with a child that would outlive it.
HANG_OR_EXIT = """
import os, subprocess, sys, time
mode, pid_dir = sys.argv[1], sys.argv[2]
if mode != "hang":
    sys.exit(0)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(pid_dir, "group.pid"), "w") as f:
    f.write(str(os.getpid()))
with open(os.path.join(pid_dir, "child.pid"), "w") as f:
    f.write(str(child.pid))
time.sleep(600)
"""


def test_hung_step_killed_by_pipeline_clock(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    step = {
        "name": "restart",
        "timeout": "60s",
        "action": {
            "type": "shell",
            "argv": [PYTHON, "-c", HANG_OR_EXIT, "{labels.mode}", str(tmp_path)],
        },
    }
    runbook = {"steps": [step], "safety": {"max_concurrent": 1}}
    config = workers.write_config(base_config(runbook, shell_allowlist=[PYTHON]))
    worker = workers.start(config)
    hung = {"runbook": "restart", "mode": "hang", "host": "h1"}
    quick = {"runbook": "restart", "mode": "exit", "host": "h2"}
    try:
        send_metric(worker, "h1/cpu", hung, 99.0, T0)
        wait_for(lambda: (tmp_path / "child.pid").is_file(), WAIT_S, "hung step")
        send_metric(worker, "h2/cpu", quick, 99.0, T0 + timedelta(seconds=10))
        wait_for(lambda: run_for(worker, quick), WAIT_S, "second run claimed")

        second = run_for(worker, quick)
        assert second is not None
        assert second["status"] == "queued"

        # The pipeline clock passes the first step's 60 s timeout.
        send_metric(worker, "clock/cpu", {}, 10.0, T0 + timedelta(seconds=61))

        def first_timed_out() -> Any:
            run = run_for(worker, hung)
            return run if run and run["status"] == "timed_out" else None

        first = wait_for(first_timed_out, WAIT_S, "first run timed out")
        child = int((tmp_path / "child.pid").read_text())
        wait_for(lambda: not alive(child), 10, "child of the hung step killed")

        def second_succeeded() -> Any:
            run = run_for(worker, quick)
            return run if run and run["status"] == "succeeded" else None

        wait_for(second_succeeded, WAIT_S, "second run not blocked")
        timed_out = [s for s in first["steps"] if s["status"] == "timed_out"]
        history = finished_runs(worker, first["incident_id"])
    finally:
        kill_quietly(tmp_path / "group.pid")
    assert len(timed_out) == 1
    assert timed_out[0]["stopped_by"] == "pipeline clock"
    assert "timed out after 60 s" in timed_out[0]["error"]
    assert [h["status"] for h in history] == ["timed_out"]


def test_redelivered_event_runs_once(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    step = {
        "name": "restart",
        "action": {
            "type": "http",
            "url": target.url + "/hosts/{labels.host}/restart",
            "headers": {"Authorization": "Bearer {secrets.token}"},
            "expected_status": 202,
        },
    }
    runbook = {"steps": [step], "secrets": {"token": "RUNBOOK_TEST_TOKEN"}}
    config = workers.write_config(base_config(runbook))
    worker = workers.start(config, {"RUNBOOK_TEST_TOKEN": SECRET_TOKEN})
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)

    def succeeded() -> Any:
        run = run_for(worker, labels)
        return run if run and run["status"] == "succeeded" else None

    run = wait_for(succeeded, WAIT_S, "first run")
    incident_id = run["incident_id"]
    opened = timeline(worker, incident_id)[0]
    assert opened["kind"] == "opened"

    async def redeliver() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"]
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                worker.prefix + topics.INCIDENT_EVENTS.name,
                json.dumps(opened).encode(),
                key=json.dumps(opened["group_key"]).encode(),
            )
        finally:
            await producer.stop()

    asyncio.run(redeliver())
    wait_for(
        lambda: asyncio.run(group_caught_up(worker, [topics.INCIDENT_EVENTS])),
        WAIT_S,
        "redelivered event processed",
    )
    incident_runs = [r for r in runs(worker) if r["incident_id"] == incident_id]
    finished = finished_runs(worker, incident_id)
    recorded = json.dumps([incident_runs, timeline(worker, incident_id)])
    assert len(incident_runs) == 1
    assert len(target.requests) == 1
    assert len(finished) == 1
    assert target.requests[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
    assert SECRET_TOKEN not in recorded
    assert "Bearer [redacted]" in recorded


def test_rate_limit_stops_and_notifies_once(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    step = {
        "name": "restart",
        "action": {
            "type": "http",
            "url": target.url + "/hosts/{labels.host}/restart",
            "expected_status": 202,
        },
    }
    runbook = {
        "steps": [step],
        "safety": {
            "target_label": "host",
            "max_concurrent": 10,
            "max_concurrent_per_target": 10,
            "rate_limit": {"max_runs": 3, "window": "1h"},
        },
    }
    worker = workers.start(workers.write_config(base_config(runbook)))
    for job in range(10):
        labels = {"runbook": "restart", "host": "h1", "job": f"j{job}"}
        send_metric(worker, f"j{job}/cpu", labels, 99.0, T0 + timedelta(minutes=job))

    def all_finished() -> Any:
        incidents = worker.incidents()
        done = [i for i in incidents if finished_runs(worker, i["incident_id"])]
        return incidents if len(done) == 10 else None

    incidents = wait_for(all_finished, WAIT_S, "10 runs finished")
    statuses = sorted(
        finished_runs(worker, i["incident_id"])[0]["status"] for i in incidents
    )

    def owner_notices() -> list[dict[str, Any]]:
        return [
            event
            for incident in incidents
            for event in timeline(worker, incident["incident_id"])
            if event["kind"] == "notified"
            and event["details"].get("receiver") == "owner"
        ]

    wait_for(owner_notices, WAIT_S, "owner notified")
    wait_for(
        lambda: asyncio.run(group_caught_up(worker, [topics.NOTIFICATIONS])),
        WAIT_S,
        "notifications delivered",
    )
    assert statuses == ["rate_limited"] * 7 + ["succeeded"] * 3
    assert len(target.requests) == 3
    assert len(owner_notices()) == 1


def approval_runbook(target: ActionTarget) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "approve",
                "action": {"type": "approval", "approvers": ["alice"], "ttl": "5m"},
            },
            {
                "name": "restart",
                "action": {
                    "type": "http",
                    "url": target.url + "/hosts/{labels.host}/restart",
                    "expected_status": 202,
                },
            },
        ]
    }


def awaiting(worker: Worker, labels: dict[str, str]) -> Any:
    run = run_for(worker, labels)
    return run if run and run["status"] == "awaiting_approval" else None


def test_approval_expires_and_stops_run(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    worker = workers.start(workers.write_config(base_config(approval_runbook(target))))
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)
    wait_for(lambda: awaiting(worker, labels), WAIT_S, "approval pending")

    # The pipeline clock passes the approval's 5 minute time to live.
    send_metric(worker, "clock/cpu", {}, 10.0, T0 + timedelta(minutes=6))

    def expired() -> Any:
        run = run_for(worker, labels)
        if run is None or run["status"] != "expired":
            return None
        finished = finished_runs(worker, run["incident_id"])
        return finished or None

    finished = wait_for(expired, WAIT_S, "run expired on the timeline")
    steps = [step["step"] for step in finished[0]["steps"]]
    assert finished[0]["status"] == "expired"
    assert "approval step 'approve' expired" in finished[0]["reason"]
    assert steps == ["approve"]
    assert target.requests == []


def test_approval_over_http_continues_run(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    worker = workers.start(workers.write_config(base_config(approval_runbook(target))))
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)
    run = wait_for(lambda: awaiting(worker, labels), WAIT_S, "approval pending")
    path = f"/runbooks/runs/{run['run_id']}/approve"

    with pytest.raises(client.WebViewError, match="HTTP 403") as refused:
        worker.post(path, {"approver": "mallory"})
    assert "'mallory' is not an approver" in str(refused.value)
    worker.post(path, {"approver": "alice"})

    def succeeded() -> Any:
        found = run_for(worker, labels)
        return found if found and found["status"] == "succeeded" else None

    done = wait_for(succeeded, WAIT_S, "approved run finished")
    rejected = [
        event["details"]
        for event in timeline(worker, done["incident_id"])
        if event["details"].get("approval") == "rejected"
    ]
    assert done["approved_by"] == "alice"
    assert len(target.requests) == 1
    assert [r["approver"] for r in rejected] == ["mallory"]
    assert "'mallory' is not an approver" in rejected[0]["reason"]


def test_shell_label_stays_one_argument(workers: WorkerFactory, tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    canary = tmp_path / "canary"
    write_argv = (
        "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    )
    step = {
        "name": "record",
        "action": {
            "type": "shell",
            "argv": [PYTHON, "-c", write_argv, str(out), "{labels.host}"],
            "cwd": str(tmp_path),
        },
    }
    config = base_config({"steps": [step]}, shell_allowlist=[PYTHON])
    worker = workers.start(workers.write_config(config))
    hostile = f"web-1; rm -rf /; touch {canary}"
    labels = {"runbook": "restart", "host": hostile}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)

    def succeeded() -> Any:
        run = run_for(worker, labels)
        return run if run and run["status"] == "succeeded" else None

    run = wait_for(succeeded, WAIT_S, "shell run finished")
    assert json.loads(out.read_text()) == [hostile]
    assert not canary.exists()
    assert run["steps"][0]["exit_code"] == 0
    assert run["steps"][0]["input"]["argv"][-1] == hostile


def approve_button(slack: FakeSlack) -> dict[str, Any] | None:
    """Return the Approve button of the first Slack message that has one."""
    for message in slack.messages:
        for block in message["blocks"] or []:
            for element in block.get("elements", []):
                if element.get("action_id") == "tocsin_runbook_approve":
                    found: dict[str, Any] = element
                    return found
    return None


def test_approval_from_slack_continues_run(
    workers: WorkerFactory,
    target: ActionTarget,
    vendors: tuple[FakeSlack, Any, dict[str, str]],
) -> None:
    slack, _, env = vendors
    config = base_config(approval_runbook(target))
    config["receivers"]["owner"] = {"type": "slack", "channel": "#web"}
    secret = "runbook-test-signing-secret"
    worker = workers.start(
        workers.write_config(config), {**env, "TOCSIN_SLACK_SIGNING_SECRET": secret}
    )
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)
    run = wait_for(lambda: awaiting(worker, labels), WAIT_S, "approval pending")
    button = wait_for(lambda: approve_button(slack), WAIT_S, "Approve button posted")
    assert button["value"] == run["run_id"]

    body = press_body("tocsin_runbook_approve", button["value"], "alice")
    status, _ = post_press(worker, body, signed_headers(body, secret))
    assert status == 200

    def succeeded() -> Any:
        found = run_for(worker, labels)
        return found if found and found["status"] == "succeeded" else None

    done = wait_for(succeeded, WAIT_S, "approved run finished")
    assert done["approved_by"] == "alice"
    assert len(target.requests) == 1


# Appends a line to its starts file, then hangs, so a test counts its starts.
COUNT_AND_HANG = """
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write("started\\n")
with open(sys.argv[2], "w") as f:
    f.write(str(os.getpid()))
time.sleep(600)
"""


def test_restart_interrupts_running_step(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    group = tmp_path / "group.pid"
    step = {
        "name": "restart",
        "retries": 3,
        "retry_delay": "1s",
        "action": {
            "type": "shell",
            "argv": [PYTHON, "-c", COUNT_AND_HANG, str(starts), str(group)],
        },
    }
    config = workers.write_config(
        base_config({"steps": [step]}, shell_allowlist=[PYTHON])
    )
    worker = workers.start(config)
    labels = {"runbook": "restart", "host": "h1"}
    try:
        send_metric(worker, "h1/cpu", labels, 99.0, T0)
        wait_for(lambda: group.is_file() and group.read_text(), WAIT_S, "step started")
        wait_for(
            lambda: (run_for(worker, labels) or {}).get("status") == "running",
            WAIT_S,
            "run stored as running",
        )
        worker.kill()
        pid = int(group.read_text())
        # The program has a session of its own, so the crash left it running.
        assert alive(pid)
        restarted = workers.start(config)

        def interrupted() -> Any:
            run = run_for(restarted, labels)
            return run if run and run["status"] == "interrupted" else None

        run = wait_for(interrupted, WAIT_S, "run interrupted after restart")
        stopped = wait_for(lambda: not alive(pid), 10, "orphaned program killed")
        finished = finished_runs(restarted, run["incident_id"])
    finally:
        kill_quietly(group)
    assert stopped
    assert "effect is unknown" in run["reason"]
    assert f"process group {pid}) still ran and was killed" in run["reason"]
    assert run["process_group"] is None
    assert starts.read_text().splitlines() == ["started"]
    assert [f["status"] for f in finished] == ["interrupted"]


def test_stop_kills_running_step(workers: WorkerFactory, tmp_path: Path) -> None:
    group = tmp_path / "group.pid"
    child = tmp_path / "child.pid"
    step = {
        "name": "restart",
        "action": {
            "type": "shell",
            "argv": [PYTHON, "-c", HANG_OR_EXIT, "hang", str(tmp_path)],
        },
    }
    config = workers.write_config(
        base_config({"steps": [step]}, shell_allowlist=[PYTHON])
    )
    worker = workers.start(config)
    labels = {"runbook": "restart", "host": "h1"}
    try:
        send_metric(worker, "h1/cpu", labels, 99.0, T0)
        wait_for(lambda: child.is_file() and child.read_text(), WAIT_S, "step started")
        recorded = wait_for(
            lambda: (run_for(worker, labels) or {}).get("process_group"),
            WAIT_S,
            "process group stored",
        )
        worker.stop()
        child_alive = alive(int(child.read_text()))
    finally:
        kill_quietly(group)
        if child.is_file() and alive(int(child.read_text())):
            os.kill(int(child.read_text()), signal.SIGKILL)
    assert recorded["pgid"] == int(group.read_text())
    assert not child_alive
    assert "runbook shell step killed, worker stopping" in worker.log_tail(400)


def test_restart_resumes_pending_approval(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    config = workers.write_config(base_config(approval_runbook(target)))
    worker = workers.start(config)
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)
    run = wait_for(lambda: awaiting(worker, labels), WAIT_S, "approval pending")
    worker.kill()
    restarted = workers.start(config)
    wait_for(lambda: awaiting(restarted, labels), WAIT_S, "approval still pending")

    restarted.post(f"/runbooks/runs/{run['run_id']}/approve", {"approver": "alice"})

    def succeeded() -> Any:
        found = run_for(restarted, labels)
        return found if found and found["status"] == "succeeded" else None

    done = wait_for(succeeded, WAIT_S, "resumed run finished")
    steps = [(s["step"], s["status"]) for s in done["steps"]]
    assert done["approved_by"] == "alice"
    assert steps == [("approve", "succeeded"), ("restart", "succeeded")]
    assert len(target.requests) == 1


def test_failed_step_runs_rollback(
    workers: WorkerFactory, target: ActionTarget
) -> None:
    steps = [
        {
            "name": "check",
            "retries": 1,
            "retry_delay": "1s",
            # The target accepts POST only, so this GET fails with 405.
            "action": {"type": "http", "method": "GET", "url": target.url + "/x"},
        },
        {
            "name": "never",
            "action": {"type": "http", "url": target.url + "/never"},
        },
    ]
    rollback = [
        {
            "name": "undo",
            "action": {
                "type": "http",
                "url": target.url + "/undo/{labels.host}",
                "expected_status": 202,
            },
        }
    ]
    runbook = {"steps": steps, "rollback": rollback}
    worker = workers.start(workers.write_config(base_config(runbook)))
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)

    def failed() -> Any:
        run = run_for(worker, labels)
        return run if run and run["status"] == "failed" else None

    run = wait_for(failed, WAIT_S, "run failed")
    steps_run = [(s["step"], s["status"], s.get("http_status")) for s in run["steps"]]
    paths = [request.path for request in target.requests]
    assert steps_run == [
        ("check", "failed", 405),
        ("check", "failed", 405),
        ("undo", "succeeded", 202),
    ]
    assert paths == ["/x", "/x", "/undo/h1"]
    assert run["reason"] == "step 'check' failed"


def test_publish_then_verify_resolves(workers: WorkerFactory) -> None:
    steps = [
        {
            "name": "announce",
            "action": {
                "type": "publish",
                "topic": "remediations",
                "value": {"incident": "{incident_id}", "host": "{labels.host}"},
            },
        }
    ]
    verify = {
        "step": {
            "name": "cleared",
            "timeout": "10m",
            "action": {"type": "wait", "condition": "alert_resolved"},
        },
        "resolve_on_success": True,
    }
    runbook = {"steps": steps, "verify": verify}
    worker = workers.start(workers.write_config(base_config(runbook)))
    labels = {"runbook": "restart", "host": "h1"}
    send_metric(worker, "h1/cpu", labels, 99.0, T0)

    def waiting() -> Any:
        run = run_for(worker, labels)
        return run if run and run["steps"] else None

    wait_for(waiting, WAIT_S, "published and waiting")
    send_metric(worker, "h1/cpu", labels, 10.0, T0 + timedelta(minutes=1))

    def resolved() -> Any:
        incident = next(iter(worker.incidents()), None)
        return incident if incident and incident["state"] == "resolved" else None

    incident = wait_for(resolved, WAIT_S, "incident resolved by verification")
    run = run_for(worker, labels)
    records = asyncio.run(read_topic(worker, "remediations", 1))
    assert run is not None
    assert run["status"] == "succeeded"
    assert [s["step"] for s in run["steps"]] == ["announce", "cleared"]
    assert incident["resolved_by"] == "restart via runbook"
    assert records == [{"incident": incident["incident_id"], "host": "h1"}]


async def read_topic(worker: Worker, name: str, count: int) -> list[Any]:
    """Read `count` JSON records from a prefixed topic, bounded in time."""
    consumer = AIOKafkaConsumer(
        worker.prefix + name,
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[Any] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                values += [json.loads(m.value or b"null") for m in messages]
    finally:
        await consumer.stop()
    return values


def test_failed_verification_escalates(workers: WorkerFactory) -> None:
    steps = [
        {
            "name": "announce",
            "action": {
                "type": "publish",
                "topic": "remediations",
                "value": {"incident": "{incident_id}"},
            },
        }
    ]
    verify = {
        "step": {
            "name": "cleared",
            "timeout": "2s",
            "action": {"type": "wait", "condition": "alert_resolved"},
        },
        "escalate_on_failure": True,
    }
    config = base_config({"steps": steps, "verify": verify})
    config["receivers"]["second"] = {"type": "console"}
    config["policies"] = {
        "default": {
            "levels": [
                {"targets": ["pager"]},
                {"delay": "1h", "targets": ["second"]},
            ]
        }
    }
    worker = workers.start(workers.write_config(config))
    labels = {"runbook": "restart", "host": "h2"}
    send_metric(worker, "h2/cpu", labels, 99.0, T0)

    def escalated() -> Any:
        incident = next(iter(worker.incidents()), None)
        if incident is None:
            return None
        events = timeline(worker, incident["incident_id"])
        return next((e for e in events if e["kind"] == "escalated"), None)

    event = wait_for(escalated, WAIT_S, "escalated after the failed verification")
    assert event["level"] == 1
    assert event["actor"] == "restart via runbook"
    assert "verification step 'cleared'" in event["details"]["reason"]
    # The escalation came from the runbook, long before level 2 was due.
    assert event["at"] < (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    def second_notified() -> Any:
        incident = worker.incidents()[0]
        events = timeline(worker, incident["incident_id"])
        return [
            e
            for e in events
            if e["kind"] == "notified" and e["details"]["receiver"] == "second"
        ]

    wait_for(second_notified, WAIT_S, "level 2 paged")
    run = run_for(worker, labels)
    assert run is not None
    assert run["status"] == "failed"


async def table_contents(worker: Worker, table: str) -> dict[str, Any]:
    """Read a table's changelog to its end. A deleted key maps to None."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
        enable_auto_commit=False,
    )
    await consumer.start()
    contents: dict[str, Any] = {}
    try:
        name = f"{worker.app_id}-{table}-changelog"
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(
                at >= ends[tp] for at, tp in zip(positions, partitions, strict=True)
            ):
                break
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    key = json.loads(message.key or b"null")
                    value = None if message.value is None else json.loads(message.value)
                    contents[key] = value
    finally:
        await consumer.stop()
    return contents


def test_prune_drops_old_run_and_sample_ids(workers: WorkerFactory) -> None:
    runbook = {
        "dry_run": True,
        "steps": [
            {
                "name": "tell",
                "action": {"type": "notify", "receivers": ["pager"], "message": "hi"},
            }
        ],
    }
    # One partition: each partition keeps its newest run per runbook and
    # target, so the old run goes only if the new one shares its partition.
    env = {
        "TOCSIN_RUNBOOK_RUN_RETENTION_S": str(timedelta(days=1).total_seconds()),
        "TOCSIN_PRUNE_INTERVAL_S": "0.2",
        "TOCSIN_TOPIC_PARTITIONS": "1",
    }
    worker = workers.start(workers.write_config(base_config(runbook)), env)
    old = {"runbook": "restart", "job": "old"}
    send_metric(worker, "old/cpu", old, 99.0, T0)
    old_run = wait_for(lambda: run_for(worker, old), WAIT_S, "old run listed")
    wait_for(
        lambda: run_for(worker, old)["status"] == "rendered",  # type: ignore[index]
        WAIT_S,
        "old run rendered",
    )
    # 60 days on, past the 1-day retention, the 1-hour limits of the runbook
    # and the 45 days after which analytics deletes a sample id.
    new = {"runbook": "restart", "job": "new"}
    send_metric(worker, "new/cpu", new, 99.0, T0 + timedelta(days=60))
    new_run = wait_for(lambda: run_for(worker, new), WAIT_S, "new run listed")

    def run_ids() -> set[str]:
        return {run["run_id"] for run in runs(worker)}

    wait_for(lambda: old_run["run_id"] not in run_ids(), WAIT_S, "old run pruned")
    assert new_run["run_id"] in run_ids()

    def applied_ids(incident_id: str) -> dict[str, Any]:
        contents = asyncio.run(table_contents(worker, "analytics-applied"))
        return {k: v for k, v in contents.items() if f"|{incident_id}:" in k}

    def all_deleted(ids: dict[str, Any]) -> bool:
        return bool(ids) and all(value is None for value in ids.values())

    wait_for(
        lambda: all_deleted(applied_ids(old_run["incident_id"])),
        WAIT_S,
        "old sample ids applied, then deleted",
    )
    new_ids = wait_for(
        lambda: applied_ids(new_run["incident_id"]), WAIT_S, "new sample ids applied"
    )
    assert all(isinstance(value, float) for value in new_ids.values()), new_ids
    states = asyncio.run(table_contents(worker, "runbook-run-state"))
    assert states[old_run["run_id"]] is None
    assert states[new_run["run_id"]] is not None

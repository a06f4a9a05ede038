"""The runbook runner on a recording pipeline: secrets, real child processes."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from factories import make_event
from processes import alive

from schemas.records import Command, EventKind, Notification, Record, RunbookRun
from schemas.runbooks import Runbook
from streams.clock import Clock
from streams.runbooks.runner import INCIDENTS_WITH_ENDINGS, Run, Runner

PYTHON = sys.executable
# A trailing newline makes a header template fail with the value quoted.
SECRET = "s3cr3t-value\n"
SECRET_PARTS = ("s3cr3t", "s3cr3t-value")


class RecordingPipeline:
    """The parts of a Pipeline the runner uses, keeping every published record."""

    def __init__(self) -> None:
        self.clock = Clock("replay")
        self.config = SimpleNamespace(shell_allowlist=[PYTHON])
        self.published: list[tuple[str, Record]] = []

    async def publish(self, spec: Any, key: str, record: Record) -> None:
        self.published.append((spec.name, record))

    def records(self, kind: type[Record]) -> list[Any]:
        return [record for _, record in self.published if isinstance(record, kind)]


ECHO = (
    "import os, sys; print(os.environ['TOKEN']); "
    "sys.stderr.write('T=' + os.environ['TOKEN'])"
)
ECHO_STEP = {
    "name": "echo",
    "action": {
        "type": "shell",
        "argv": [PYTHON, "-c", ECHO],
        "env": {"TOKEN": "{secrets.token}"},
    },
}
NOTIFY_STEP = {
    "name": "tell",
    "action": {
        "type": "notify",
        "receivers": ["owner"],
        "message": "token {secrets.token} rotated",
    },
}
# Port 9 is never reached: the header fails to render first.
HEADER_STEP = {
    "name": "call",
    "action": {
        "type": "http",
        "url": "http://127.0.0.1:9/restart",
        "headers": {"Authorization": "Bearer {secrets.token}"},
    },
}


def secret_runbook(*steps: dict[str, Any]) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "restart",
            "owner": "web",
            "owner_receivers": ["owner"],
            "trigger": {"labels": {"team": "web"}},
            "dry_run": False,
            "secrets": {"token": "RESTART_TOKEN"},
            "steps": list(steps),
        }
    )


def assert_secret_hidden(pipeline: RecordingPipeline, logs: str) -> None:
    for topic, record in pipeline.published:
        text = record.to_bytes().decode()
        for part in SECRET_PARTS:
            assert part not in text, f"{part!r} in a record on {topic}: {text}"
    for part in SECRET_PARTS:
        assert part not in logs


async def execute(runner: Runner, run: Run) -> None:
    runner.start(run)
    await asyncio.wait_for(runner.tasks[run.run_id], 30)


def test_secret_redacted_everywhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RESTART_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    pipeline = RecordingPipeline()
    runner = Runner(pipeline)  # type: ignore[arg-type]
    runbook = secret_runbook(ECHO_STEP, NOTIFY_STEP, HEADER_STEP)
    run = Run(runbook, make_event(), "run-1", "h1", 0)

    asyncio.run(execute(runner, run))

    final = pipeline.records(RunbookRun)[-1]
    steps = {entry["step"]: entry for entry in final.steps}
    assert final.status == "failed"
    assert steps["echo"]["status"] == "succeeded"
    assert steps["echo"]["stdout"] == "[redacted]\n"
    assert steps["echo"]["stderr"] == "T=[redacted]"
    assert steps["tell"]["input"]["message"] == "token [redacted] rotated"
    assert "would put a line break in a header" in steps["call"]["error"]
    notice = pipeline.records(Notification)[0]
    assert notice.event.details["message"] == "token [redacted] rotated"
    assert pipeline.records(Command)
    assert_secret_hidden(pipeline, caplog.text)


def test_header_error_hides_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RESTART_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    pipeline = RecordingPipeline()
    runner = Runner(pipeline)  # type: ignore[arg-type]
    run = Run(secret_runbook(HEADER_STEP), make_event(), "run-1", "h1", 0)

    asyncio.run(execute(runner, run))

    error = pipeline.records(RunbookRun)[-1].steps[0]["error"]
    assert error.startswith("value '[redacted]")
    assert "would put a line break in a header" in error
    assert_secret_hidden(pipeline, caplog.text)


# Writes its process id and its child's, then hangs with the child.
HANGS_WITH_CHILD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()) + " " + str(child.pid))
time.sleep(600)
"""


def hanging_runbook(pid_file: Path) -> Runbook:
    step = {
        "name": "hang",
        "timeout": "10m",
        "action": {
            "type": "shell",
            "argv": [PYTHON, "-c", HANGS_WITH_CHILD, str(pid_file)],
        },
    }
    return Runbook.model_validate(
        {
            "name": "restart",
            "owner": "web",
            "trigger": {"labels": {"team": "web"}},
            "dry_run": False,
            "steps": [step],
        }
    )


def test_stop_kills_shell_step(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    pipeline = RecordingPipeline()
    runner = Runner(pipeline)  # type: ignore[arg-type]
    run = Run(hanging_runbook(pid_file), make_event(), "run-1", "h1", 0)

    async def start_then_stop() -> tuple[int, int]:
        runner.start(run)
        task = runner.tasks[run.run_id]
        session = await runner._http()
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert not task.done(), pipeline.records(RunbookRun)[-1].steps
            assert time.monotonic() < deadline, "step never started"
            await asyncio.sleep(0.05)
        leader, child = (int(pid) for pid in pid_file.read_text().split())
        await runner.stop()
        assert task.done()
        assert session.closed
        assert runner._session is None
        return leader, child

    leader, child = asyncio.run(start_then_stop())

    deadline = time.monotonic() + 10
    while (alive(leader) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(leader)
    assert not alive(child)
    states = pipeline.records(RunbookRun)
    assert states[-1].status == "running"
    assert states[-1].process_group is not None
    assert states[-1].process_group.pgid == leader
    assert runner.process_groups == {}


def test_start_after_stop_ignored() -> None:
    runner = Runner(RecordingPipeline())  # type: ignore[arg-type]
    asyncio.run(runner.stop())

    runner.start(Run(secret_runbook(HEADER_STEP), make_event(), "run-1", "h1", 0))

    assert runner.tasks == {}


def waiting_runbook(rule: str | None) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "wait-cpu",
            "owner": "web",
            "trigger": {"labels": {"team": "web"}},
            "dry_run": False,
            "steps": [
                {
                    "name": "cpu back",
                    "action": {
                        "type": "wait",
                        "condition": "alert_resolved",
                        "rule": rule,
                    },
                    "timeout": "10s",
                }
            ],
        }
    )


def test_wait_ends_on_resolve_seen_before_it() -> None:
    pipeline = RecordingPipeline()
    runner = Runner(pipeline)  # type: ignore[arg-type]
    run = Run(waiting_runbook("cpu_high"), make_event(), "run-1", "h1", 0)
    # The alert resolved after the trigger, before the step began waiting.
    runner.observe(
        make_event(seq=2, kind=EventKind.ALERT_RESOLVED, details={"rule": "cpu_high"})
    )

    asyncio.run(execute(runner, run))

    [step] = run.steps
    assert step["status"] == "succeeded"
    assert step["met_by"] == "alert_resolved"


def test_wait_ignores_resolve_before_trigger() -> None:
    runner = Runner(RecordingPipeline())  # type: ignore[arg-type]
    run = Run(waiting_runbook(None), make_event(seq=3), "run-1", "h1", 0)
    runner.observe(make_event(seq=2, kind=EventKind.ALERT_RESOLVED))
    action = run.runbook.steps[0].action

    assert runner.met_before_wait(run, action) is None  # type: ignore[arg-type]


def test_endings_remembered_for_bounded_incidents() -> None:
    runner = Runner(RecordingPipeline())  # type: ignore[arg-type]
    for index in range(INCIDENTS_WITH_ENDINGS + 5):
        runner.observe(
            make_event(incident_id=f"g{index}-1", seq=2, kind=EventKind.RESOLVED)
        )

    assert len(runner.endings) == INCIDENTS_WITH_ENDINGS
    assert "g0-1" not in runner.endings

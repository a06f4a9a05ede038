"""Silences and maintenance windows over HTTP, and their marks on timelines."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from harness import Worker, WorkerFactory, wait_for
from test_stages import timeline

from tocsin.cli import main

CONFIG_WINDOW = {
    "name": "weekly-patching",
    "matchers": ["service=billing"],
    "every": {"days": ["sun"], "start": "02:00", "duration": "2h"},
}


def config() -> dict[str, Any]:
    return {
        "routes": [{"match": {}, "policy": "default"}],
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "receivers": {"pager": {"type": "console"}},
        "maintenance_windows": [CONFIG_WINDOW],
    }


def post_status(worker: Worker, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST `body` and return the status and the decoded JSON body, errors included."""
    request = urllib.request.Request(
        worker.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def open_incident(worker: Worker, service: str) -> str:
    started = datetime.now(UTC).isoformat()
    labels = {"alertname": "Latency", "service": service}
    worker.post("/alerts", {"alerts": [{"labels": labels, "starts_at": started}]})

    def found() -> Any:
        return next((i for i in worker.incidents() if i["service"] == service), None)

    incident_id: str = wait_for(found, 30, f"incident of {service}")["incident_id"]
    return incident_id


def marks(worker: Worker, incident_id: str) -> list[dict[str, Any]]:
    return [
        e for e in timeline(worker, incident_id) if e["kind"] in ("muted", "unmuted")
    ]


def test_silence_created_and_expired_on_timeline(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()), {"TOCSIN_CLOCK": "live"})
    incident_id = open_incident(worker, "api")

    status, created = post_status(
        worker,
        "/silences",
        {"matchers": ["service=api"], "duration": "1h", "created_by": "dana"},
    )
    assert status == 202
    silence_id = created["silence"]["silence_id"]
    wait_for(lambda: len(marks(worker, incident_id)) == 1, 30, "muted mark")
    muted = marks(worker, incident_id)[0]
    assert muted["kind"] == "muted"
    assert muted["details"]["reason"] == "silenced"
    assert muted["details"]["silence_id"] == silence_id
    assert muted["details"]["created_by"] == "dana"

    status, _ = post_status(worker, f"/silences/{silence_id}/expire", {"actor": "ed"})
    assert status == 202
    wait_for(lambda: len(marks(worker, incident_id)) == 2, 30, "unmuted mark")
    unmuted = marks(worker, incident_id)[1]
    assert unmuted["kind"] == "unmuted"
    assert unmuted["details"]["ended"]["silence_id"] == silence_id


def test_window_over_http_mutes_and_ends(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()), {"TOCSIN_CLOCK": "live"})
    incident_id = open_incident(worker, "db")
    now = datetime.now(UTC)
    window = {
        "name": "db upgrade",
        "matchers": ["service=db"],
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "created_by": "fay",
        "comment": "major version",
    }

    status, created = post_status(worker, "/maintenance-windows", window)
    assert status == 202
    assert created["maintenance_window"]["name"] == "db upgrade"

    def listed() -> Any:
        rows = worker.get("/maintenance-windows")["maintenance_windows"]
        return {row["name"]: row for row in rows}

    rows = wait_for(lambda: "db upgrade" in listed() and listed(), 30, "stored")
    assert rows["db upgrade"]["active"] is True
    assert rows["db upgrade"]["source"] == "http"
    assert rows["weekly-patching"]["source"] == "config"
    wait_for(lambda: len(marks(worker, incident_id)) == 1, 30, "muted mark")
    muted = marks(worker, incident_id)[0]
    assert muted["details"] == {"reason": "maintenance", "window": "db upgrade"}

    status, answer = post_status(worker, "/maintenance-windows", window)
    assert status == 409
    assert "already exists" in answer["error"]

    path = "/maintenance-windows/db%20upgrade/delete"
    status, _ = post_status(worker, path, {"actor": "fay"})
    assert status == 202
    wait_for(lambda: "db upgrade" not in listed(), 60, "deleted")
    wait_for(lambda: len(marks(worker, incident_id)) == 2, 30, "unmuted mark")
    unmuted = marks(worker, incident_id)[1]
    assert unmuted["details"]["ended"]["window"] == "db upgrade"


def test_window_requests_rejected(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    now = datetime.now(UTC)
    backwards = {
        "name": "oops",
        "matchers": ["service=db"],
        "starts_at": now.isoformat(),
        "ends_at": (now - timedelta(hours=1)).isoformat(),
        "created_by": "gil",
    }

    status, answer = post_status(worker, "/maintenance-windows", backwards)
    assert status == 400
    assert "ends before it starts" in answer["error"]

    status, answer = post_status(
        worker, "/maintenance-windows", {"name": "x", "matchers": ["service=db"]}
    )
    assert status == 400
    assert "created_by" in answer["error"]

    status, answer = post_status(
        worker,
        "/maintenance-windows",
        {**backwards, "ends_at": None, "starts_at": None, "matchers": ["service=~("]},
    )
    assert status == 400

    blank = {
        **backwards,
        "name": "   ",
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
    status, answer = post_status(worker, "/maintenance-windows", blank)
    assert status == 400
    assert "name" in answer["error"]

    both = {
        "matchers": ["service=db"],
        "duration": "1h",
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "created_by": "gil",
    }
    status, answer = post_status(worker, "/silences", both)
    assert status == 400
    assert "not both" in answer["error"]

    status, answer = post_status(
        worker,
        "/silences",
        {"matchers": ["service=db"], "duration": "99999999d", "created_by": "gil"},
    )
    assert status == 400
    assert "3650d" in answer["error"]

    path = "/maintenance-windows/weekly-patching/delete"
    status, answer = post_status(worker, path, {"actor": "gil"})
    assert status == 409
    assert "configuration file" in answer["error"]

    status, answer = post_status(
        worker, "/maintenance-windows/none/delete", {"actor": "g"}
    )
    assert status == 404
    assert "'none' not found" in answer["error"]


def test_maintenance_cli_round_trip(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "maintenance",
            "add",
            "nightly",
            "service=batch",
            "--days",
            "mon,tue",
            "--at",
            "01:00",
            "--duration",
            "90m",
            "--timezone",
            "Europe/Paris",
            "--author",
            "hal",
            "--url",
            worker.url,
        ],
    )
    assert added.exit_code == 0, added.output
    assert "nightly  created" in added.output

    def listing() -> str:
        result = runner.invoke(main, ["maintenance", "list", "--url", worker.url])
        assert result.exit_code == 0, result.output
        return result.output

    output = wait_for(lambda: "nightly" in listing() and listing(), 30, "listed")
    assert "mon,tue 01:00:00 for 1h30m Europe/Paris" in output
    assert "weekly-patching" in output

    missing = runner.invoke(
        main, ["maintenance", "add", "bad", "service=x", "--url", worker.url]
    )
    assert missing.exit_code != 0
    assert "--start and --end" in missing.output

    deleted = runner.invoke(
        main, ["maintenance", "delete", "nightly", "--url", worker.url]
    )
    assert deleted.exit_code == 0, deleted.output
    wait_for(lambda: "nightly" not in listing(), 60, "deleted")

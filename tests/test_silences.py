"""Silences and maintenance windows: muted pages, resolves that get through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import CliRunner
from harness import Worker, WorkerFactory, wait_for
from test_stages import cpu_rule, send_metric, timeline

from tocsin.cli import main

T0 = datetime(2024, 7, 1, tzinfo=UTC)


def config(windows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "rules": {"metrics": [cpu_rule(auto_resolve=True)]},
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "receivers": {"pager": {"type": "console"}},
        "maintenance_windows": windows or [],
    }


def notified(worker: Worker, incident_id: str) -> list[str]:
    return [
        e["details"]["transition"]
        for e in timeline(worker, incident_id)
        if e["kind"] == "notified"
    ]


def incident_of(worker: Worker, service: str) -> dict[str, Any]:
    def found() -> Any:
        return next((i for i in worker.incidents() if i["service"] == service), None)

    incident: dict[str, Any] = wait_for(found, 30, f"incident for {service}")
    return incident


def test_silence_mutes_open_but_resolve_gets_through(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    runner = CliRunner()

    # "api" is notified before the silence; "web" opens while silenced.
    send_metric(worker, "api", 95.0, T0)
    api = incident_of(worker, "api")
    wait_for(lambda: notified(worker, api["incident_id"]) == ["opened"], 30, "paged")

    result = runner.invoke(
        main,
        [
            "silence",
            "add",
            "service=~api|web",
            "--duration",
            "2h",
            "--comment",
            "deploy",
            "--author",
            "dana",
            "--url",
            worker.url,
        ],
    )
    assert result.exit_code == 0, result.output
    silence_id = result.output.split()[0]
    wait_for(
        lambda: any(
            s["silence_id"] == silence_id for s in worker.get("/silences")["silences"]
        ),
        30,
        "silence stored",
    )

    send_metric(worker, "web", 95.0, T0 + timedelta(minutes=1))
    web = incident_of(worker, "web")

    def suppressed() -> Any:
        events = timeline(worker, web["incident_id"])
        return next((e for e in events if e["kind"] == "suppressed"), None)

    muted = wait_for(suppressed, 30, "suppression recorded")
    assert muted["details"]["reason"] == "silenced"
    assert muted["details"]["silence_id"] == silence_id
    assert muted["details"]["created_by"] == "dana"
    assert notified(worker, web["incident_id"]) == []

    # api recovers while silenced: its resolve still reaches the pager.
    send_metric(worker, "api", 10.0, T0 + timedelta(minutes=2))
    wait_for(
        lambda: notified(worker, api["incident_id"]) == ["opened", "resolved"],
        30,
        "resolve delivered through the silence",
    )
    listing = runner.invoke(main, ["silence", "list", "--url", worker.url])
    assert silence_id in listing.output

    expired = runner.invoke(
        main, ["silence", "expire", silence_id, "--actor", "dana", "--url", worker.url]
    )
    assert expired.exit_code == 0, expired.output


def test_maintenance_window_mutes_matching_service(workers: WorkerFactory) -> None:
    window = {
        "name": "db-upgrade",
        "matchers": ["service=db"],
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
    }
    worker = workers.start(workers.write_config(config([window])))
    send_metric(worker, "db", 99.0, T0 + timedelta(minutes=5))
    send_metric(worker, "cache", 99.0, T0 + timedelta(minutes=5))
    db = incident_of(worker, "db")
    cache = incident_of(worker, "cache")

    def reason() -> Any:
        events = timeline(worker, db["incident_id"])
        return next((e["details"] for e in events if e["kind"] == "suppressed"), None)

    details = wait_for(reason, 30, "maintenance suppression")
    assert details == {
        "transition": "opened",
        "level": 0,
        "reason": "maintenance",
        "window": "db-upgrade",
    }
    wait_for(lambda: notified(worker, cache["incident_id"]) == ["opened"], 30, "cache")
    assert notified(worker, db["incident_id"]) == []


def test_invalid_silence_rejected(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    result = CliRunner().invoke(
        main, ["silence", "add", "service~web", "--url", worker.url]
    )
    assert result.exit_code == 1
    assert "invalid matcher 'service~web'" in result.output

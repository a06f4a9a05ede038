"""Incident lifecycle on the broker: reopen window, recurrence, notes that survive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from harness import WorkerFactory, wait_for
from test_stages import cpu_rule, send_metric, timeline

from tocsin import client
from tocsin.cli import main

T0 = datetime(2024, 8, 1, tzinfo=UTC)


def config() -> dict[str, Any]:
    return {
        "rules": {"metrics": [cpu_rule(auto_resolve=True)]},
        "lifecycle": {"reopen_window": "10m", "recurrence_window": "1d"},
    }


def test_reopen_within_window_then_recurrence(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))

    def states() -> list[tuple[str, str]]:
        found = sorted(worker.incidents(), key=lambda i: i["incident_id"])
        return [(i["incident_id"], i["state"]) for i in found]

    send_metric(worker, "api", 95.0, T0)
    send_metric(worker, "api", 10.0, T0 + timedelta(minutes=1))
    wait_for(lambda: [s for _, s in states()] == ["resolved"], 30, "first resolve")

    # Five minutes after the resolve: inside the reopen window.
    send_metric(worker, "api", 95.0, T0 + timedelta(minutes=6))
    wait_for(lambda: [s for _, s in states()] == ["open"], 30, "reopened")
    first_id = states()[0][0]
    kinds = [e["kind"] for e in timeline(worker, first_id)]
    assert kinds.count("reopened") == 1
    send_metric(worker, "api", 10.0, T0 + timedelta(minutes=7))
    wait_for(lambda: [s for _, s in states()] == ["resolved"], 30, "second resolve")

    # An hour later: a new incident, linked to the first as a recurrence.
    send_metric(worker, "api", 95.0, T0 + timedelta(hours=1))
    wait_for(lambda: len(states()) == 2, 30, "recurrence opened")
    second = worker.get(f"/incidents/{states()[1][0]}")
    assert second["recurrence_of"] == first_id
    opened = next(e for e in second["timeline"] if e["kind"] == "opened")
    assert opened["details"]["recurrence_of"] == first_id


def test_note_and_ack_survive_repeated_alert(workers: WorkerFactory) -> None:
    rule = cpu_rule()
    worker = workers.start(workers.write_config({"rules": {"metrics": [rule]}}))
    send_metric(worker, "db", 95.0, T0)
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    worker.post(
        f"/incidents/{incident_id}/notes", {"actor": "erin", "note": "disk swap"}
    )
    worker.post(f"/incidents/{incident_id}/acknowledge", {"actor": "erin"})
    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["state"] == "acknowledged",
        30,
        "acknowledged",
    )

    # The alert clears and fires again; without auto_resolve it rejoins the
    # open incident.
    send_metric(worker, "db", 10.0, T0 + timedelta(minutes=1))
    send_metric(worker, "db", 97.0, T0 + timedelta(minutes=2))
    kinds = wait_for(
        lambda: (
            (k := [e["kind"] for e in timeline(worker, incident_id)])
            and "alert_added" in k
            and k
        ),
        30,
        "alert deduplicated into the incident",
    )
    detail = worker.get(f"/incidents/{incident_id}")
    assert detail["state"] == "acknowledged"
    assert detail["acknowledged_by"] == "erin via http"
    assert [n["note"] for n in detail["notes"]] == ["disk swap"]
    assert kinds.count("opened") == 1


def test_note_and_ack_survive_duplicate_alert(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    alert = {"labels": {"alertname": "DiskFull"}, "starts_at": T0.isoformat()}
    worker.post("/alerts", {"alerts": [alert]})
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    worker.post(
        f"/incidents/{incident_id}/notes", {"actor": "erin", "note": "disk swap"}
    )
    worker.post(f"/incidents/{incident_id}/acknowledge", {"actor": "erin"})
    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["state"] == "acknowledged",
        30,
        "acknowledged",
    )

    # The same firing alert again: once as sent before, once with a later
    # start, which records a duplicate on the open incident.
    worker.post("/alerts", {"alerts": [alert]})
    later = {**alert, "starts_at": (T0 + timedelta(minutes=1)).isoformat()}
    worker.post("/alerts", {"alerts": [later]})

    def duplicates() -> list[dict[str, Any]]:
        return [
            e["details"]
            for e in timeline(worker, incident_id)
            if e["kind"] == "suppressed" and e["details"]["reason"] == "duplicate"
        ]

    wait_for(duplicates, 30, "duplicate recorded")
    detail = worker.get(f"/incidents/{incident_id}")
    assert detail["state"] == "acknowledged"
    assert detail["acknowledged_by"] == "erin via http"
    assert [n["note"] for n in detail["notes"]] == ["disk swap"]
    assert len(duplicates()) == 1
    kinds = [e["kind"] for e in timeline(worker, incident_id)]
    assert kinds.count("opened") == 1
    assert len(worker.incidents()) == 1


def test_resolved_incident_rejects_ack(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()))
    send_metric(worker, "api", 95.0, T0)
    send_metric(worker, "api", 10.0, T0 + timedelta(minutes=1))
    incident = wait_for(
        lambda: (f := worker.incidents()) and f[0]["state"] == "resolved" and f[0],
        30,
        "incident resolved",
    )
    incident_id = incident["incident_id"]

    for kind in ("acknowledge", "resolve"):
        with pytest.raises(client.WebViewError) as caught:
            worker.post(f"/incidents/{incident_id}/{kind}", {"actor": "erin"})
        assert "HTTP 409" in str(caught.value)
        assert f"so {kind} would change nothing" in str(caught.value)

    result = CliRunner().invoke(main, ["ack", incident_id, "--url", worker.url])
    assert result.exit_code == 1
    assert "already resolved" in result.output

    # A note on a resolved incident is still accepted.
    noted = worker.post(
        f"/incidents/{incident_id}/notes", {"actor": "erin", "note": "root cause"}
    )
    assert noted["accepted"]["kind"] == "note"
    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["notes"],
        30,
        "note stored",
    )
    events = timeline(worker, incident_id)
    assert [e["kind"] for e in events].count("acknowledged") == 0

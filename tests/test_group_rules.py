"""Group updates, minimum group size, flapping and automation on the broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import WorkerFactory, group_caught_up, wait_for
from test_grouping import T0, notified, post, route_config
from test_stages import RunbookTarget, timeline

from streams import topics


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events]


def test_changes_batched_into_group_update(workers: WorkerFactory) -> None:
    config = route_config(group_by=["cluster"], group_interval="5m")
    worker = workers.start(workers.write_config(config))
    post(worker, "firing", 0, cluster="eu-1", host="h1")
    post(worker, "firing", 60, cluster="eu-1", host="h2")
    post(worker, "firing", 120, cluster="eu-1", host="h3")
    # The next change, after the interval, sends the update that was due.
    post(worker, "firing", 400, cluster="eu-1", host="h4")

    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    wait_for(
        lambda: "group_updated" in notified(worker, incident_id), 30, "update sent"
    )

    events = timeline(worker, incident_id)
    updates = [e for e in events if e["kind"] == "group_updated"]
    assert len(updates) == 1
    assert len(updates[0]["details"]["added"]) == 2
    assert updates[0]["at"] == (T0 + timedelta(minutes=5)).isoformat().replace(
        "+00:00", "Z"
    )
    assert notified(worker, incident_id) == ["opened", "group_updated"]


def test_live_group_update_after_interval(workers: WorkerFactory) -> None:
    config = route_config(group_by=["cluster"], group_interval="2s")
    worker = workers.start(workers.write_config(config), {"TOCSIN_CLOCK": "live"})
    now = datetime.now(UTC).isoformat()
    first = {"labels": {"alertname": "NodeDown", "cluster": "eu", "host": "h1"}}
    worker.post("/alerts", {"alerts": [{**first, "starts_at": now}]})
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    second = {"labels": {"alertname": "NodeDown", "cluster": "eu", "host": "h2"}}
    worker.post("/alerts", {"alerts": [{**second, "starts_at": now}]})

    # No further alert arrives: the worker's timer sends the update.
    wait_for(
        lambda: notified(worker, incident_id) == ["opened", "group_updated"],
        30,
        "update sent by the timer",
    )
    checks = [e for e in timeline(worker, incident_id) if e["kind"] == "group_updated"]
    assert checks[0]["actor"] == "correlate"


def test_group_opens_at_minimum_size(workers: WorkerFactory) -> None:
    config = route_config(group_by=["cluster"], min_alerts=3)
    worker = workers.start(workers.write_config(config))
    post(worker, "firing", 0, cluster="eu-1", host="h1")
    post(worker, "firing", 10, cluster="eu-1", host="h2")
    wait_for(
        lambda: asyncio.run(group_caught_up(worker, [topics.ALERTS])),
        30,
        "two alerts consumed",
    )
    assert worker.incidents() == []

    post(worker, "firing", 20, cluster="eu-1", host="h3")

    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    assert incident["alert_count"] == 3
    events = timeline(worker, incident["incident_id"])
    assert kinds(events)[:3] == ["opened", "alert_added", "alert_added"]


def test_flapping_alert_held_until_stable(workers: WorkerFactory) -> None:
    flapping = {"changes": 4, "window": "10m", "hold_down": "5m", "pause": "5m"}
    config = route_config(group_by=["cluster"], flapping=flapping)
    worker = workers.start(workers.write_config(config))
    # Six changes, 30 s apart, ending resolved at 150 s.
    for start in (0, 60, 120):
        post(worker, "firing", start, cluster="eu-1", host="h1")
        post(worker, "resolved", start + 30, since_s=start, cluster="eu-1", host="h1")
    # A later alert of the group applies what became due: stable at 450 s.
    post(worker, "firing", 1000, cluster="eu-1", host="h2")

    def flapped() -> Any:
        found = worker.incidents()
        held = [i for i in found if i["state"] == "resolved" and i["flapping"] == []]
        return found if len(found) == 4 and len(held) == 3 else None

    found = wait_for(flapped, 30, "three incidents resolved, one open")
    by_number = sorted(found, key=lambda i: int(i["incident_id"].rsplit("-", 1)[1]))
    held = by_number[2]["incident_id"]
    wait_for(lambda: "resolved" in kinds(timeline(worker, held)), 30, "stable incident")
    events = timeline(worker, held)
    assert kinds(events)[:2] == ["opened", "flapping"]
    assert kinds(events)[-2:] == ["stabilized", "resolved"]
    assert events[-1]["at"] == (T0 + timedelta(seconds=450)).isoformat().replace(
        "+00:00", "Z"
    )
    wait_for(lambda: "suppressed" in kinds(timeline(worker, held)), 30, "hold recorded")
    suppressed = [e for e in timeline(worker, held) if e["kind"] == "suppressed"]
    assert suppressed[0]["details"]["reason"] == "flapping"
    assert notified(worker, held) == []
    first = by_number[0]["incident_id"]
    wait_for(
        lambda: notified(worker, first) == ["opened", "resolved"], 30, "first paged"
    )


def test_duplicate_alerts_open_one_ticket(workers: WorkerFactory) -> None:
    with RunbookTarget() as tickets:
        config = route_config()
        config["runbooks"] = [
            {
                "name": "open-ticket",
                "owner": "sre",
                "trigger": {"labels": {"alertname": "NodeDown"}},
                "dry_run": False,
                "steps": [
                    {
                        "name": "ticket",
                        "action": {
                            "type": "http",
                            "method": "POST",
                            "url": tickets.url + "/services/{service}/restart",
                            "body": {"incident": "{incident_id}"},
                            "expected_status": 202,
                        },
                    }
                ],
            }
        ]
        worker = workers.start(workers.write_config(config))
        # The same alert twice, 2 s apart, as a second Prometheus would send it.
        post(worker, "firing", 0, instance="a")
        post(worker, "firing", 2, instance="a")
        post(worker, "firing", 5, instance="marker")

        def settled() -> Any:
            found = worker.incidents()
            if len(found) != 2:
                return None
            runs = [
                e
                for incident in found
                for e in timeline(worker, incident["incident_id"])
                if e["kind"] == "runbook_finished"
            ]
            return found if len(runs) == 2 else None

        found = wait_for(settled, 30, "two incidents, each with its run")
        requests = tickets.requests
    duplicated = [i for i in found if i["labels"]["instance"] == "a"]
    assert len(duplicated) == 1
    assert duplicated[0]["alert_count"] == 2
    events = timeline(worker, duplicated[0]["incident_id"])
    duplicates = [e for e in events if e["kind"] == "suppressed"]
    assert len(duplicates) == 1
    assert duplicates[0]["details"]["reason"] == "duplicate"
    assert duplicates[0]["details"]["duplicate_of"] == duplicated[0]["incident_id"]
    opened_for = [r.json()["incident"] for r in requests]
    assert sorted(opened_for) == sorted(i["incident_id"] for i in found)


def test_live_incident_resolves_on_timeout(workers: WorkerFactory) -> None:
    config = route_config()
    config["lifecycle"] = {"resolve_timeout": "3s"}
    worker = workers.start(workers.write_config(config), {"TOCSIN_CLOCK": "live"})
    now = datetime.now(UTC).isoformat()
    labels = {"alertname": "StuckJob", "instance": "a"}
    worker.post("/alerts", {"alerts": [{"labels": labels, "starts_at": now}]})
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]

    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["state"] == "resolved",
        30,
        "resolved by the timeout",
    )
    resolved = timeline(worker, incident_id)
    resolves = [e for e in resolved if e["kind"] == "resolved"]
    assert resolves[0]["details"]["how"] == "timed out"
    assert resolves[0]["actor"] == "correlate"
    wait_for(
        lambda: notified(worker, incident_id) == ["opened", "resolved"],
        30,
        "timeout resolve notified",
    )

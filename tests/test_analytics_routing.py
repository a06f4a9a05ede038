"""Two workers: every query, sent to either, returns the same result."""

from __future__ import annotations

from typing import Any

import pytest
from analytics_events import TIMEOUT_S, Planned, config, create
from harness import Worker, WorkerFactory, wait_for

from schemas.records import Severity
from tocsin import client

# Two workers on a loaded machine miss 2 s sessions and rebalance again and
# again. A longer session keeps the group stable, and so each key's owner.
STEADY_GROUP = {
    "TOCSIN_BROKER_SESSION_TIMEOUT_S": "10.0",
    "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "2.0",
}
SERVICES = [f"svc-{n}" for n in range(8)]
PLAN = [
    Planned(f"route-{service}", service, Severity.HIGH, 0, n, n + 1, n + 5)
    for n, service in enumerate(SERVICES)
]


def ready(worker: Worker) -> bool:
    try:
        return bool(worker.get("/ready")["status"] == "ready")
    except client.WebViewError:
        return False


def get_or_none(worker: Worker, path: str) -> Any:
    try:
        return worker.get(path)
    except client.WebViewError:
        return None


def local_services(worker: Worker) -> set[str]:
    rows = worker.get("/api/metrics/daily?kind=service&scope=local")["rows"]
    return {row["service"] for row in rows}


def test_either_worker_returns_every_service(workers: WorkerFactory) -> None:
    path = workers.write_config(config())
    first = workers.start(path, STEADY_GROUP, name="first")
    second = workers.start(path, STEADY_GROUP, name="second")
    wait_for(lambda: ready(first) and ready(second), TIMEOUT_S, "both ready")
    create(first, PLAN)

    def notified(planned: Planned) -> int:
        """Return the notifications an incident ends with: opening, ack, resolve."""
        acknowledged = planned.acknowledged_min is not None
        resolved = planned.resolved_min is not None
        return 1 + int(acknowledged) + int(resolved)

    def complete(worker: Worker) -> bool:
        listing = get_or_none(worker, "/api/metrics/daily?kind=service")
        if listing is None or len(listing["rows"]) != len(SERVICES):
            return False
        # The final counts, so no notification can still arrive between the
        # two workers' responses below.
        expected = {planned.service: notified(planned) for planned in PLAN}
        return all(
            row["resolved"] == 1 and row["notifications"] == expected[row["service"]]
            for row in listing["rows"]
        )

    wait_for(lambda: complete(first) and complete(second), TIMEOUT_S, "all rows")

    # Each worker stores only some services, so the responses below were routed.
    mine, theirs = local_services(first), local_services(second)
    assert mine
    assert theirs
    assert mine.isdisjoint(theirs)
    assert mine | theirs == set(SERVICES)

    for service in SERVICES:
        metrics_path = f"/api/metrics/daily/service:{service}"
        from_first = first.get(metrics_path)
        from_second = second.get(metrics_path)
        assert from_first == from_second, service
        assert len(from_first["rows"]) == 1, service
        assert from_first["rows"][0]["opened"] == 1, service
        assert from_first["rows"][0]["tta"]["count"] == 1, service
        legacy_path = f"/metrics/response?window=hourly&service={service}"
        assert first.get(legacy_path) == second.get(legacy_path), service

    for planned in PLAN:
        incident_path = f"/incidents/{planned.incident_id}"
        assert first.get(incident_path) == second.get(incident_path)
        postmortem_path = incident_path + "/postmortem"
        from_first_text = client.request_text(first.url, postmortem_path)
        assert from_first_text == client.request_text(second.url, postmortem_path)

    # Either worker rejects an acknowledgement of a resolved incident, so
    # this covers the owner and a worker that requests the incident from it.
    for planned in PLAN:
        for worker in (first, second):
            path = f"/incidents/{planned.incident_id}/acknowledge"
            with pytest.raises(
                client.WebViewError, match=r"HTTP 409.*already resolved"
            ):
                worker.post(path, {"actor": "ana"})

    listed_first = first.get("/incidents?limit=500")
    listed_second = second.get("/incidents?limit=500")
    assert listed_first == listed_second
    assert listed_first["total"] == len(PLAN)
    paged = first.get("/incidents?limit=3&offset=2")
    assert paged["incidents"] == listed_first["incidents"][2:5]

    # A command sent to either worker finds the incident on its owner.
    extra = Planned("route-extra", "svc-extra", Severity.LOW, 0, 30)
    create(first, [extra])
    commands = (
        (first, "acknowledge", {"actor": "ana"}),
        (second, "notes", {"actor": "ben", "note": "looking"}),
    )
    for worker, kind, body in commands:
        accepted = worker.post(f"/incidents/{extra.incident_id}/{kind}", body)
        assert accepted["accepted"]["incident_id"] == extra.incident_id, kind

    def noted(worker: Worker) -> bool:
        incident = worker.get(f"/incidents/{extra.incident_id}")
        return incident["state"] == "acknowledged" and bool(incident["notes"])

    wait_for(lambda: noted(first) and noted(second), TIMEOUT_S, "ack and note")

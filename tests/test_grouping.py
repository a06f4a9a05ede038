"""Grouping on the broker: group_by, group_wait and send_resolved, on event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from harness import Worker, WorkerFactory, wait_for
from test_stages import timeline

T0 = datetime(2024, 9, 1, tzinfo=UTC)


def route_config(**route: Any) -> dict[str, Any]:
    return {
        "routes": [{"match": {}, "policy": "default", **route}],
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "receivers": {"pager": {"type": "console"}},
    }


def post(
    worker: Worker, status: str, offset_s: float, since_s: float = 0, **labels: str
) -> None:
    """Post one alert; a resolve ends at `offset_s` an episode begun at `since_s`."""
    alert: dict[str, Any] = {
        "labels": {"alertname": "NodeDown", **labels},
        "status": status,
        "starts_at": (T0 + timedelta(seconds=offset_s)).isoformat(),
    }
    if status == "resolved":
        alert["starts_at"] = (T0 + timedelta(seconds=since_s)).isoformat()
        alert["ends_at"] = (T0 + timedelta(seconds=offset_s)).isoformat()
    worker.post("/alerts", {"alerts": [alert]})


def notified(worker: Worker, incident_id: str) -> list[str]:
    return [
        e["details"]["transition"]
        for e in timeline(worker, incident_id)
        if e["kind"] == "notified"
    ]


def settled(worker: Worker, count: int) -> list[dict[str, Any]]:
    def resolved() -> Any:
        found = worker.incidents()
        done = len(found) == count and all(i["state"] == "resolved" for i in found)
        return found if done else None

    incidents: list[dict[str, Any]] = wait_for(resolved, 30, f"{count} resolved")
    return incidents


def test_alert_cleared_within_group_wait_pages_nobody(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(route_config(group_wait="2m")))
    post(worker, "firing", 0, instance="a")
    post(worker, "resolved", 60, instance="a")
    post(worker, "firing", 0, instance="b")
    post(worker, "resolved", 180, instance="b")
    incidents = {i["labels"]["instance"]: i for i in settled(worker, 2)}

    quick = incidents["a"]["incident_id"]
    slow = incidents["b"]["incident_id"]
    wait_for(lambda: notified(worker, slow) == ["escalated", "resolved"], 30, "b")
    assert notified(worker, quick) == []
    kinds = [e["kind"] for e in timeline(worker, slow)]
    assert kinds.index("escalated") < kinds.index("resolved")
    escalated = next(e for e in timeline(worker, slow) if e["kind"] == "escalated")
    assert escalated["at"] == (T0 + timedelta(minutes=2)).isoformat().replace(
        "+00:00", "Z"
    )


def test_group_by_keeps_one_incident_until_all_clear(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(route_config(group_by=["cluster"])))
    for host in ("h1", "h2", "h3"):
        post(worker, "firing", 0, cluster="eu-1", host=host)
    post(worker, "firing", 0, cluster="us-1", host="h9")

    def grouped() -> Any:
        found = worker.incidents()
        eu = [i for i in found if i["labels"].get("cluster") == "eu-1"]
        return eu[0] if len(found) == 2 and eu and eu[0]["alert_count"] == 3 else None

    incident = wait_for(grouped, 30, "three alerts in one incident")
    incident_id = incident["incident_id"]
    post(worker, "resolved", 60, cluster="eu-1", host="h1")
    wait_for(
        lambda: "alert_resolved" in [e["kind"] for e in timeline(worker, incident_id)],
        30,
        "h1 cleared",
    )
    assert worker.get(f"/incidents/{incident_id}")["state"] == "open"
    post(worker, "resolved", 70, cluster="eu-1", host="h2")
    post(worker, "resolved", 80, cluster="eu-1", host="h3")
    wait_for(
        lambda: worker.get(f"/incidents/{incident_id}")["state"] == "resolved",
        30,
        "all cleared",
    )
    wait_for(
        lambda: notified(worker, incident_id) == ["opened", "resolved"],
        30,
        "opening and resolve notified once each",
    )


def test_each_episode_pages_without_resolves(workers: WorkerFactory) -> None:
    config = route_config(send_resolved=False)
    worker = workers.start(workers.write_config(config))
    for episode in range(6):
        start = episode * 600
        post(worker, "firing", start, instance="flappy")
        post(worker, "resolved", start + 300, since_s=start, instance="flappy")
    incidents = settled(worker, 6)
    for incident in incidents:
        incident_id = incident["incident_id"]
        wait_for(lambda i=incident_id: notified(worker, i) == ["opened"], 30, "paged")


def test_repeat_interval_repages_until_acknowledged(workers: WorkerFactory) -> None:
    config = route_config(repeat_interval="2s")
    worker = workers.start(workers.write_config(config), {"TOCSIN_CLOCK": "live"})
    started = datetime.now(UTC)
    worker.post(
        "/alerts",
        {
            "alerts": [
                {"labels": {"alertname": "DiskFull"}, "starts_at": started.isoformat()}
            ]
        },
    )
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    wait_for(
        lambda: notified(worker, incident_id)[:2] == ["opened", "repeated"],
        30,
        "repeated after the interval",
    )
    worker.post(f"/incidents/{incident_id}/acknowledge", {"actor": "fay"})
    wait_for(
        lambda: "acknowledged" in notified(worker, incident_id), 30, "ack notified"
    )
    count = notified(worker, incident_id).count("repeated")
    acked_at = datetime.now(UTC)
    wait_for(
        lambda: datetime.now(UTC) - acked_at > timedelta(seconds=5),
        10,
        "two intervals pass",
    )
    assert notified(worker, incident_id).count("repeated") == count


def test_silence_holds_repeats_until_expired(workers: WorkerFactory) -> None:
    config = route_config(repeat_interval="2s")
    worker = workers.start(workers.write_config(config), {"TOCSIN_CLOCK": "live"})
    started = datetime.now(UTC)
    alert = {"labels": {"alertname": "DiskFull"}, "starts_at": started.isoformat()}
    worker.post("/alerts", {"alerts": [alert]})
    incident = wait_for(lambda: (f := worker.incidents()) and f[0], 30, "opened")
    incident_id = incident["incident_id"]
    wait_for(
        lambda: notified(worker, incident_id)[:2] == ["opened", "repeated"],
        30,
        "repeated before the silence",
    )

    # The incident paged before the silence began: its repeats are held.
    body = {"matchers": ["alertname=DiskFull"], "duration": "1h", "created_by": "dana"}
    silence_id = worker.post("/silences", body)["silence"]["silence_id"]

    def held_repeats() -> list[dict[str, Any]]:
        return [
            e["details"]
            for e in timeline(worker, incident_id)
            if e["kind"] == "suppressed" and e["details"]["transition"] == "repeated"
        ]

    held = wait_for(held_repeats, 30, "repeat suppressed")[0]
    assert held["reason"] == "silenced"
    assert held["silence_id"] == silence_id
    count = notified(worker, incident_id).count("repeated")
    silenced_at = datetime.now(UTC)
    wait_for(
        lambda: datetime.now(UTC) - silenced_at > timedelta(seconds=5),
        10,
        "two intervals pass",
    )
    assert notified(worker, incident_id).count("repeated") == count
    assert len(held_repeats()) == 1

    # Once the silence expires the held repeat goes out, and the resolve too.
    worker.post(f"/silences/{silence_id}/expire", {"actor": "dana"})
    wait_for(
        lambda: notified(worker, incident_id).count("repeated") > count,
        30,
        "repeat after the silence",
    )
    resolved = {**alert, "status": "resolved", "ends_at": datetime.now(UTC).isoformat()}
    worker.post("/alerts", {"alerts": [resolved]})
    wait_for(
        lambda: "resolved" in notified(worker, incident_id), 30, "resolve notified"
    )

"""Inhibition on the broker: muted targets, resolves that get through, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from harness import Worker, WorkerFactory, wait_for
from scenario import ROUTING_KEY
from test_stages import timeline


def config() -> dict[str, Any]:
    return {
        "inhibit_rules": [
            {
                "source_matchers": ["alertname=ClusterDown"],
                "target_matchers": ["alertname=NodeDown"],
                "equal": ["cluster"],
            }
        ],
        "policies": {"default": {"levels": [{"targets": ["pager"]}]}},
        "receivers": {"pager": {"type": "console"}},
    }


def post(
    worker: Worker, name: str, status: str, started: datetime, **labels: str
) -> None:
    alert: dict[str, Any] = {
        "labels": {"alertname": name, **labels},
        "status": status,
        "starts_at": started.isoformat(),
    }
    if status == "resolved":
        alert["ends_at"] = datetime.now(UTC).isoformat()
    worker.post("/alerts", {"alerts": [alert]})


def incident_for(worker: Worker, **labels: str) -> str:
    def found() -> Any:
        for incident in worker.incidents():
            if all(incident["labels"].get(k) == v for k, v in labels.items()):
                return incident["incident_id"]
        return None

    incident_id: str = wait_for(found, 30, f"incident {labels}")
    return incident_id


def transitions(worker: Worker, incident_id: str) -> list[str]:
    return [
        e["details"]["transition"]
        for e in timeline(worker, incident_id)
        if e["kind"] == "notified"
    ]


def test_inhibition_mutes_then_releases(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(config()), {"TOCSIN_CLOCK": "live"})
    now = datetime.now(UTC) - timedelta(seconds=5)

    # A node already paged before its cluster went down.
    post(worker, "NodeDown", "firing", now, cluster="eu", host="h0")
    early = incident_for(worker, host="h0")
    wait_for(lambda: transitions(worker, early) == ["opened"], 30, "h0 paged")

    post(worker, "ClusterDown", "firing", now, cluster="eu")
    source = incident_for(worker, alertname="ClusterDown")
    wait_for(lambda: transitions(worker, source) == ["opened"], 30, "source paged")

    post(worker, "NodeDown", "firing", now, cluster="eu", host="h1")
    post(worker, "NodeDown", "firing", now, cluster="us", host="h2")
    muted = incident_for(worker, host="h1")
    other = incident_for(worker, host="h2")

    def suppression() -> Any:
        events = timeline(worker, muted)
        return next((e["details"] for e in events if e["kind"] == "suppressed"), None)

    details = wait_for(suppression, 30, "h1 inhibited")
    assert details["reason"] == "inhibited"
    assert details["alertname"] == "ClusterDown"
    wait_for(lambda: transitions(worker, other) == ["opened"], 30, "h2 paged")
    assert transitions(worker, muted) == []

    # h0 resolves while its cluster's alert fires: the resolve still goes out.
    post(worker, "NodeDown", "resolved", now, cluster="eu", host="h0")
    wait_for(
        lambda: transitions(worker, early) == ["opened", "resolved"], 30, "h0 resolve"
    )

    # The source clears while h1 still fires: h1 is paged within a few ticks.
    post(worker, "ClusterDown", "resolved", now, cluster="eu")
    wait_for(lambda: transitions(worker, muted) == ["released"], 30, "h1 released")


def test_inhibited_resolve_reaches_pagerduty(
    workers: WorkerFactory, vendors: Any
) -> None:
    _, pagerduty, env = vendors
    paged = config()
    paged["policies"] = {"default": {"levels": [{"targets": ["pagerduty"]}]}}
    paged["receivers"] = {"pagerduty": {"type": "pagerduty"}}
    worker = workers.start(workers.write_config(paged), {**env, "TOCSIN_CLOCK": "live"})
    now = datetime.now(UTC) - timedelta(seconds=5)

    # A1 pages PagerDuty; then A2 fires and inhibits it.
    post(worker, "NodeDown", "firing", now, cluster="eu", host="h1")
    first = incident_for(worker, host="h1")
    wait_for(lambda: pagerduty.alerts_for(ROUTING_KEY).get(first), 30, "A1 paged")
    post(worker, "ClusterDown", "firing", now, cluster="eu")
    second = incident_for(worker, alertname="ClusterDown")
    wait_for(lambda: pagerduty.alerts_for(ROUTING_KEY).get(second), 30, "A2 paged")

    def inhibition() -> Any:
        events = timeline(worker, first)
        muted = ("muted", "suppressed")
        return next((e["details"] for e in events if e["kind"] in muted), None)

    details = wait_for(inhibition, 30, "A1 inhibited by A2")
    assert details["reason"] == "inhibited"
    assert details["alertname"] == "ClusterDown"
    assert details["by"] in worker.get(f"/incidents/{second}")["firing"]

    # A1 resolves while A2 still inhibits it, then A2 resolves.
    post(worker, "NodeDown", "resolved", now, cluster="eu", host="h1")
    wait_for(
        lambda: pagerduty.alerts_for(ROUTING_KEY).get(first) == "resolved",
        30,
        "A1's resolve reached PagerDuty",
    )
    post(worker, "ClusterDown", "resolved", now, cluster="eu")
    wait_for(
        lambda: pagerduty.alerts_for(ROUTING_KEY).get(second) == "resolved",
        30,
        "A2's resolve reached PagerDuty",
    )
    resolves = [
        e["dedup_key"] for e in pagerduty.events if e["event_action"] == "resolve"
    ]
    assert sorted(resolves) == sorted([first, second])

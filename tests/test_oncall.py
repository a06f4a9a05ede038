"""Escalation steps on the broker: exactly once, through restarts and two workers.

The replay-clock tests use topics with one partition, so the later "clock"
alerts share the partition of the incidents under test and move its event
time forward, as new telemetry would.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from harness import Worker, WorkerFactory, wait_for

from schemas.records import Command, CommandKind, group_key_of
from streams import topics
from streams.keys import encode_key
from tocsin.cli import main

# A Monday.
T0 = datetime(2024, 9, 2, tzinfo=UTC)
TIMEOUT_S = 60
ONE_PARTITION = {"TOCSIN_TOPIC_PARTITIONS": "1"}


def two_levels(delay: str, **policy: Any) -> dict[str, Any]:
    return {
        "policies": {
            "default": {
                "levels": [
                    {"delay": "0s", "targets": ["first"]},
                    {"delay": delay, "targets": ["second"]},
                ],
                **policy,
            }
        },
        "receivers": {"first": {"type": "console"}, "second": {"type": "console"}},
    }


def fire(worker: Worker, name: str, at: datetime) -> None:
    """Post one firing alert named `name` whose impact starts at `at`."""
    alert = {"labels": {"alertname": name}, "starts_at": at.isoformat()}
    worker.post("/alerts", {"alerts": [alert]})


def incidents_by_name(*workers: Worker) -> dict[str, dict[str, Any]]:
    """Return each incident by its alert name, the longest timeline of any worker.

    A worker lists the incidents of its own partitions and may hold stale
    standby copies of others, so the copy with the most events is the newest.
    """
    found: dict[str, dict[str, Any]] = {}
    for worker in workers:
        if worker.process.poll() is not None:
            continue
        for summary in worker.incidents():
            incident = worker.get(f"/incidents/{summary['incident_id']}")
            name = incident["labels"]["alertname"]
            known = found.get(name)
            if known is None or len(incident["timeline"]) > len(known["timeline"]):
                found[name] = incident
    return found


def kinds(incident: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in incident["timeline"] if e["kind"] == kind]


def paged(incident: dict[str, Any], receiver: str) -> int:
    """Count the notifications of opening or escalation sent to `receiver`."""
    return sum(
        1
        for e in kinds(incident, "notified")
        if e["details"].get("receiver") == receiver
        and e["details"].get("transition") in {"opened", "escalated"}
    )


def wait_incident(
    workers: list[Worker], name: str, check: Any, message: str
) -> dict[str, Any]:
    def reached() -> Any:
        incident = incidents_by_name(*workers).get(name)
        return incident if incident is not None and check(incident) else None

    found: dict[str, Any] = wait_for(reached, TIMEOUT_S, f"{name}: {message}")
    return found


def acknowledge(worker: Worker, incident_id: str, at: datetime) -> None:
    """Publish an acknowledgement at the event time `at`, as a vendor webhook does."""
    command = Command(
        command_id=f"ack-{incident_id}",
        kind=CommandKind.ACKNOWLEDGE,
        incident_id=incident_id,
        actor="alice",
        source="http",
        at=at,
    )

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"]
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                worker.prefix + topics.COMMANDS.name,
                command.to_bytes(),
                key=encode_key(group_key_of(incident_id)),
            )
        finally:
            await producer.stop()

    asyncio.run(send())


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_two_levels_page_level_two_once_unless_acked(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(two_levels("5m")), ONE_PARTITION)
    fire(worker, "NoAck", T0)
    fire(worker, "Acked", T0)
    acked = wait_incident([worker], "Acked", lambda i: i, "opened")
    wait_incident([worker], "NoAck", lambda i: i, "opened")

    acknowledge(worker, acked["incident_id"], T0 + timedelta(minutes=3))
    wait_incident(
        [worker], "Acked", lambda i: i["state"] == "acknowledged", "acknowledged"
    )
    fire(worker, "Clock", T0 + timedelta(minutes=10))
    no_ack = wait_incident(
        [worker], "NoAck", lambda i: paged(i, "second") >= 1, "level 2 paged"
    )
    # Everything on the partition is applied in order, so once the clock's
    # own level 2 is paged at 15 minutes, any second page of NoAck would show.
    fire(worker, "Clock2", T0 + timedelta(minutes=20))
    wait_incident([worker], "Clock", lambda i: paged(i, "second") >= 1, "paged")
    found = incidents_by_name(worker)
    no_ack, acked = found["NoAck"], found["Acked"]

    escalations = kinds(no_ack, "escalated")
    assert len(escalations) == 1
    assert escalations[0]["at"] == iso(T0 + timedelta(minutes=5))
    assert escalations[0]["level"] == 1
    assert paged(no_ack, "second") == 1
    assert paged(no_ack, "first") == 1
    assert kinds(acked, "escalated") == []
    assert paged(acked, "second") == 0
    assert acked["acknowledged_at"] == iso(T0 + timedelta(minutes=3))


def test_late_ack_reaches_only_paged_receivers(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(two_levels("5m")), ONE_PARTITION)
    fire(worker, "Late", T0)
    late = wait_incident([worker], "Late", lambda i: paged(i, "first") == 1, "paged")

    # In a replay, the level 2 step due at 5 minutes is applied only when
    # the acknowledgement at 10 minutes arrives, so its page is cancelled.
    acknowledge(worker, late["incident_id"], T0 + timedelta(minutes=10))
    fire(worker, "Clock", T0 + timedelta(minutes=20))
    wait_incident([worker], "Clock", lambda i: paged(i, "first") == 1, "paged")

    def acknowledged_to_first(incident: dict[str, Any]) -> bool:
        return any(
            e["details"].get("receiver") == "first"
            and e["details"].get("transition") == "acknowledged"
            for e in kinds(incident, "notified")
        )

    late = wait_incident([worker], "Late", acknowledged_to_first, "ack sent")
    assert len(kinds(late, "escalated")) == 1
    to_second = [
        e for e in kinds(late, "notified") if e["details"].get("receiver") == "second"
    ]
    assert to_second == []


BUSINESS_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00"}


def test_step_due_while_stopped_fires_once_on_return(workers: WorkerFactory) -> None:
    config = workers.write_config(two_levels("5m", business_hours=BUSINESS_HOURS))
    first = workers.start(config, ONE_PARTITION, name="first")
    fire(first, "Disk", T0 + timedelta(hours=7, minutes=55))
    wait_incident([first], "Disk", lambda i: paged(i, "first") == 1, "level 1 paged")
    fire(first, "Clock8", T0 + timedelta(hours=8))
    wait_incident([first], "Clock8", lambda i: paged(i, "first") == 1, "opened")
    disk = incidents_by_name(first)["Disk"]
    # Level 2 came due at 08:00, outside business hours: it waits for 09:00.
    assert kinds(disk, "escalated") == []
    first.stop(signal.SIGTERM)

    second = workers.start(config, ONE_PARTITION, name="second")
    fire(second, "Clock10", T0 + timedelta(hours=10))
    disk = wait_incident(
        [second], "Disk", lambda i: paged(i, "second") >= 1, "level 2 paged"
    )
    escalations = kinds(disk, "escalated")
    assert len(escalations) == 1
    assert escalations[0]["at"] == iso(T0 + timedelta(hours=9))
    second.stop(signal.SIGKILL)

    third = workers.start(config, ONE_PARTITION, name="third")
    fire(third, "Clock11", T0 + timedelta(hours=11))
    wait_incident([third], "Clock11", lambda i: paged(i, "first") == 1, "opened")
    wait_incident([third], "Clock10", lambda i: paged(i, "second") == 1, "level 2")
    disk = incidents_by_name(third)["Disk"]
    assert len(kinds(disk, "escalated")) == 1
    assert paged(disk, "second") == 1


def test_live_step_missed_while_stopped_fires_once(workers: WorkerFactory) -> None:
    config = workers.write_config(two_levels("3s"))
    live = {"TOCSIN_CLOCK": "live"}
    first = workers.start(config, live, name="first")
    fire(first, "Disk", datetime.now(UTC))
    disk = wait_incident([first], "Disk", lambda i: i, "opened")
    first.stop(signal.SIGTERM)
    opened = datetime.fromisoformat(disk["opened_at"])
    wait_for(
        lambda: datetime.now(UTC) > opened + timedelta(seconds=4),
        10,
        "level 2 due while no worker runs",
    )

    second = workers.start(config, live, name="second")
    disk = wait_incident(
        [second], "Disk", lambda i: paged(i, "second") >= 1, "level 2 paged"
    )
    escalations = kinds(disk, "escalated")
    assert len(escalations) == 1
    assert datetime.fromisoformat(escalations[0]["at"]) == opened + timedelta(seconds=3)


def test_two_workers_fire_each_step_once(workers: WorkerFactory) -> None:
    config = workers.write_config(two_levels("8s"))
    live = {"TOCSIN_CLOCK": "live"}
    first = workers.start(config, live, name="first")
    second = workers.start(config, live, name="second")
    names = [f"Node{n}" for n in range(6)]
    now = datetime.now(UTC)
    for name in names:
        fire(second, name, now)
    wait_for(
        lambda: len(incidents_by_name(first, second)) == len(names),
        TIMEOUT_S,
        "every incident opened",
    )
    # The killed worker's partitions move to the other one, and a third
    # worker joins, before level 2 comes due.
    first.stop(signal.SIGKILL)
    third = workers.start(config, live, name="third")
    running = [second, third]

    def all_paged() -> bool:
        found = incidents_by_name(*running)
        return all(paged(found.get(n, {"timeline": []}), "second") for n in names)

    wait_for(all_paged, TIMEOUT_S * 2, "level 2 paged on every incident")
    settled_at = datetime.now(UTC)
    wait_for(
        lambda: datetime.now(UTC) > settled_at + timedelta(seconds=3),
        10,
        "a few ticks pass",
    )
    found = incidents_by_name(*running)
    for name in names:
        assert len(kinds(found[name], "escalated")) == 1, name
        assert paged(found[name], "second") == 1, name


ONCALL_CONFIG = {
    "receivers": {"pd-alice": {"type": "console"}, "pd-bob": {"type": "console"}},
    "users": {
        "alice": {"receivers": ["pd-alice"]},
        "bob": {"receivers": ["pd-bob"]},
    },
    "schedules": {
        "primary": {
            "timezone": "Europe/Paris",
            "layers": [
                {
                    "rotation": "weekly",
                    "handoff": "09:00",
                    "start": "2024-09-02",
                    "users": ["alice", "bob"],
                }
            ],
            "overrides": [
                {
                    "user": "bob",
                    "start": "2024-09-03T12:00:00+02:00",
                    "end": "2024-09-03T14:00:00+02:00",
                }
            ],
        }
    },
    "policies": {"default": {"levels": [{"targets": [{"schedule": "primary"}]}]}},
}


def test_oncall_over_http_and_cli(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(ONCALL_CONFIG))
    monday = worker.get("/oncall/primary?at=2024-09-02T10:00:00%2B02:00")
    [row] = monday["schedules"]
    assert row["on_call"]["user"] == "alice"
    # Alice's week would run to the 9th, but bob's override starts first.
    assert row["on_call"]["end"] == "2024-09-03T10:00:00+00:00"
    assert row["receivers"] == ["pd-alice"]

    runner = CliRunner()
    result = runner.invoke(
        main, ["oncall", "--at", "2024-09-03T10:30:00Z", "--url", worker.url]
    )
    assert result.exit_code == 0, result.output
    assert "primary" in result.output
    assert "bob" in result.output
    assert "override" in result.output

    missing = runner.invoke(main, ["oncall", "nope", "--url", worker.url])
    assert missing.exit_code != 0
    assert "schedule 'nope' not found" in missing.output
    bad = runner.invoke(main, ["oncall", "--at", "soon", "--url", worker.url])
    assert bad.exit_code != 0
    assert "invalid time 'soon'" in bad.output


def test_schedule_target_pages_user_on_call(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(ONCALL_CONFIG))
    # Tuesday 10:30 in Paris: alice's week, outside bob's override.
    fire(worker, "Disk", datetime(2024, 9, 3, 8, 30, tzinfo=UTC))
    fire(worker, "Cpu", datetime(2024, 9, 3, 10, 30, tzinfo=UTC))
    disk = wait_incident([worker], "Disk", lambda i: kinds(i, "notified"), "paged")
    cpu = wait_incident([worker], "Cpu", lambda i: kinds(i, "notified"), "paged")

    assert paged(disk, "pd-alice") == 1
    assert paged(disk, "pd-bob") == 0
    assert paged(cpu, "pd-bob") == 1
    assert paged(cpu, "pd-alice") == 0

    # The pipeline clock now reads the Cpu alert's time, inside the override.
    policies = worker.get("/api/oncall")["policies"]
    [default] = [p for p in policies if p["policy"] == "default"]
    assert default["default"] is True
    assert default["on_call"] == [
        {"schedule": "primary", "user": "bob", "receivers": ["pd-bob"]}
    ]


def test_schedule_without_on_call_on_timeline(workers: WorkerFactory) -> None:
    worker = workers.start(workers.write_config(ONCALL_CONFIG))
    # The rotation starts on 2 September, so nobody is on call before.
    fire(worker, "Early", datetime(2024, 9, 1, 8, tzinfo=UTC))
    early = wait_incident(
        [worker], "Early", lambda i: kinds(i, "notify_failed"), "failure recorded"
    )

    [failed] = kinds(early, "notify_failed")
    assert "nobody is on call on schedule 'primary'" in failed["details"]["error"]
    assert failed["details"]["transition"] == "opened"
    assert kinds(early, "notified") == []


def test_ack_timeout_returns_incident_to_triggered(workers: WorkerFactory) -> None:
    config = workers.write_config(two_levels("5m", ack_timeout="10m"))
    worker = workers.start(config, ONE_PARTITION)
    fire(worker, "Disk", T0)
    disk = wait_incident([worker], "Disk", lambda i: paged(i, "first") == 1, "paged")
    acknowledge(worker, disk["incident_id"], T0 + timedelta(minutes=3))
    wait_incident(
        [worker], "Disk", lambda i: i["state"] == "acknowledged", "acknowledged"
    )

    # The acknowledgement times out at 13 minutes, and level 2 follows at 18.
    fire(worker, "Clock", T0 + timedelta(minutes=30))
    disk = wait_incident(
        [worker], "Disk", lambda i: paged(i, "second") == 1, "level 2 paged"
    )
    [timed_out] = kinds(disk, "ack_timed_out")
    assert timed_out["at"] == iso(T0 + timedelta(minutes=13))
    assert disk["state"] == "open"
    [escalated] = kinds(disk, "escalated")
    assert escalated["at"] == iso(T0 + timedelta(minutes=18))
    first_pages = [
        e
        for e in kinds(disk, "notified")
        if e["details"].get("receiver") == "first"
        and e["details"].get("transition") == "ack_timed_out"
    ]
    assert len(first_pages) == 1
    assert disk["acknowledged_at"] == iso(T0 + timedelta(minutes=3))

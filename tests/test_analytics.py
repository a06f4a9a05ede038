"""Response analytics on the broker: windowed metrics against a reference."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from analytics_events import (
    MTTA_TARGET_S,
    MTTR_TARGET_S,
    TIMEOUT_S,
    WINDOWS,
    Planned,
    config,
    create,
    lower_rank,
    minutes,
    parse,
    reference,
    reference_availability,
)
from harness import BrokerInfo, Worker, WorkerFactory, wait_for
from prometheus_client.parser import text_string_to_metric_families

from schemas.records import Severity
from tocsin import client

# Hour 0 contains a late acknowledgement (B, acknowledged in hour 1) and one
# never acknowledged (C); hour 2 opens nothing, so it is an empty window.
PLAN = [
    Planned("a", "api", Severity.HIGH, 8, 10, acknowledged_min=14, resolved_min=40),
    Planned("b", "api", Severity.CRITICAL, 45, 50, 80, 120),
    Planned("c", "billing", Severity.MEDIUM, 30, 30, None, 60, false_positive=True),
    Planned("d", "billing", Severity.HIGH, 182, 185, 187, 210),
    Planned("e", "api", Severity.HIGH, 186, 190, 300),
]


def timelines(worker: Worker) -> list[list[dict[str, Any]]]:
    """Return the timeline of every incident, the target alerts' ones too."""
    return [
        worker.get(f"/incidents/{i['incident_id']}")["timeline"]
        for i in worker.incidents()
    ]


def rows_by_key(worker: Worker, window: str) -> dict[tuple[str, float], Any]:
    rows = worker.get(f"/api/metrics/{window}")["rows"]
    return {(r["dimension"], r["window_start"]): r for r in rows}


def counts_match(
    rows: dict[tuple[str, float], Any], expected: dict[tuple[str, float], Any]
) -> bool:
    for key, entry in expected.items():
        row = rows.get(key)
        if row is None:
            return False
        if row["opened"] != entry["opened"]:
            return False
        if row["tta"]["count"] != len(entry["tta"]):
            return False
        if row["ttr"]["count"] != len(entry["ttr"]):
            return False
        if row["notifications"] != entry["notifications"]:
            return False
    return set(rows) == set(expected)


def settled_rows(worker: Worker, window: str) -> dict[tuple[str, float], Any]:
    def matched() -> Any:
        expected = reference(timelines(worker), window)
        rows = rows_by_key(worker, window)
        return rows if counts_match(rows, expected) else None

    found: dict[tuple[str, float], Any] = wait_for(
        matched, TIMEOUT_S, f"{window} metrics equal to the reference counts"
    )
    return found


def check_measure(row: dict[str, Any], values: list[float], name: str) -> None:
    summary = row[name]
    assert summary["count"] == len(values), name
    if not values:
        assert summary["mean_s"] is None, name
        assert summary["p95_s"] is None, name
        return
    assert summary["mean_s"] == pytest.approx(sum(values) / len(values)), name
    for quantile, field in ((0.5, "p50_s"), (0.9, "p90_s"), (0.95, "p95_s")):
        exact = lower_rank(values, quantile)
        assert summary[field] == pytest.approx(exact, rel=0.01, abs=1e-6), (
            f"{name} {field}"
        )


@pytest.fixture(scope="module")
def worker(
    broker: BrokerInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One worker with the planned incidents, shared by this module's tests."""
    factory = WorkerFactory(broker, tmp_path_factory.mktemp("analytics"))
    try:
        # Sweep expired windows often, so every test here also checks that
        # windows of replayed history survive the sweeps.
        env = {"TOCSIN_TABLE_CLEANUP_INTERVAL_S": "0.5"}
        started = factory.start(factory.write_config(config()), env)
        create(started, PLAN)
        yield started
    finally:
        factory.stop_all()


@pytest.mark.parametrize("window", list(WINDOWS))
def test_metrics_equal_reference(worker: Worker, window: str) -> None:
    rows = settled_rows(worker, window)
    expected = reference(timelines(worker), window)

    for key, entry in expected.items():
        row = rows[key]
        assert row["opened"] == entry["opened"], key
        assert row["unacknowledged"] == entry["unacknowledged"], key
        assert row["false_positives"] == entry["false_positives"], key
        check_measure(row, entry["tta"], "tta")
        check_measure(row, entry["ttr"], "ttr")
        check_measure(row, entry["ttd"], "ttd")
        size_s = WINDOWS[window][0]
        availability = reference_availability(entry, key[1], size_s)
        assert row["availability"] == pytest.approx(availability), key
        within = sum(1 for s in entry["tta"] if s <= MTTA_TARGET_S)
        share = within / len(entry["tta"]) if entry["tta"] else None
        assert row["sla"]["tta"] == pytest.approx(share), key
        within = sum(1 for s in entry["ttr"] if s <= MTTR_TARGET_S)
        share = within / len(entry["ttr"]) if entry["ttr"] else None
        assert row["sla"]["ttr"] == pytest.approx(share), key


def test_timelines_follow_plan(worker: Worker) -> None:
    # The reference reads these timelines, so they must carry the planned
    # times for the comparison with it to mean anything.
    for planned in PLAN:
        timeline = worker.get(f"/incidents/{planned.incident_id}")["timeline"]
        first_at = {}
        for event in timeline:
            first_at.setdefault(event["kind"], parse(event["at"]))
        name = planned.name
        assert first_at["opened"] == minutes(planned.opened_min), name
        assert parse(timeline[0]["started_at"]) == minutes(planned.started_min), name
        if planned.acknowledged_min is None:
            assert "acknowledged" not in first_at, name
        else:
            assert first_at["acknowledged"] == minutes(planned.acknowledged_min), name
        if planned.resolved_min is None:
            assert "resolved" not in first_at, name
        else:
            assert first_at["resolved"] == minutes(planned.resolved_min), name


def listed_ids(worker: Worker, query: str) -> list[str]:
    """Return the planned incidents a listing shows, leaving out target alerts."""
    planned = {p.incident_id for p in PLAN}
    listing = worker.get(f"/incidents?{query}")
    return sorted(
        i["incident_id"] for i in listing["incidents"] if i["incident_id"] in planned
    )


def planned_ids(*names: str) -> list[str]:
    return sorted(p.incident_id for p in PLAN if p.name in names)


def test_incident_list_filters_and_pages(worker: Worker) -> None:
    # The breach test raises a target alert on `api`, whose incident the
    # listings show too: `listed_ids` keeps the planned ones.
    assert listed_ids(worker, "service=billing") == planned_ids("c", "d")
    assert listed_ids(worker, "severity=high") == planned_ids("a", "d", "e")
    assert listed_ids(worker, "service=api&state=acknowledged") == planned_ids("e")
    first = worker.get("/incidents?service=billing&limit=1")
    second = worker.get("/incidents?service=billing&limit=1&offset=1")
    assert first["total"] == 2
    assert len(first["incidents"]) == 1
    assert len(second["incidents"]) == 1
    paged = first["incidents"] + second["incidents"]
    assert sorted(i["incident_id"] for i in paged) == planned_ids("c", "d")

    with pytest.raises(client.WebViewError) as rejected:
        worker.get("/incidents?severity=urgent")
    assert "HTTP 400" in str(rejected.value)
    assert "urgent" in str(rejected.value)


def test_replayed_windows_survive_cleanup(worker: Worker) -> None:
    before = settled_rows(worker, "hourly")
    # Several sweeps at 0.5 s; faust's own sweep compares with wall time,
    # which is years past these windows.
    time.sleep(2.0)
    after = rows_by_key(worker, "hourly")

    assert after.keys() == before.keys()


def test_late_acknowledgement_counts_in_opened_hour(worker: Worker) -> None:
    rows = settled_rows(worker, "hourly")
    hour0 = minutes(0).timestamp()

    api = rows[("service:api", hour0)]
    # a acknowledged after 4 min, b after 30 min: b's ack arrived in hour 1.
    assert api["tta"]["count"] == 2
    assert api["mtta_s"] == pytest.approx((4 * 60 + 30 * 60) / 2)


def test_mtta_breach_raises_alert(worker: Worker) -> None:
    # The day's MTTA of api reaches 17 min with b's acknowledgement, above
    # the 10 min alert level; billing's stays at 2 min.
    def breach() -> Any:
        found = [i for i in worker.incidents() if i["rule"] == "mtta_alert"]
        return found or None

    found = wait_for(breach, TIMEOUT_S, "MTTA breach incident")

    assert len(found) == 1
    assert found[0]["service"] == "api"
    assert found[0]["labels"]["alertname"] == "MTTABreach"
    assert found[0]["opened_at"].startswith("2024-09-02T01:20:00")


def test_never_acknowledged_left_out_of_mtta(worker: Worker) -> None:
    rows = settled_rows(worker, "hourly")

    billing = rows[("service:billing", minutes(0).timestamp())]
    assert billing["unacknowledged"] == 1
    assert billing["resolved_unacknowledged"] == 1
    assert billing["mtta_s"] is None
    assert billing["false_positive_rate"] == 1.0


def test_empty_window_reports_null(worker: Worker) -> None:
    settled_rows(worker, "hourly")
    empty_hour = minutes(130).timestamp()

    answer = worker.get(f"/api/metrics/hourly/service:api?at={empty_hour}")

    row = answer["rows"][0]
    assert row["opened"] == 0
    assert row["mtta_s"] is None
    assert row["mttr_s"] is None
    assert row["tta"]["p50_s"] is None
    assert row["availability"] is None


def test_availability_from_critical_incident(worker: Worker) -> None:
    rows = settled_rows(worker, "daily")

    api = rows[("service:api", minutes(0).timestamp())]
    # b is critical and lasted 70 minutes of the day.
    assert api["availability"] == pytest.approx(1 - 70 * 60 / 86400)


def test_critical_incident_spills_into_next_hour(worker: Worker) -> None:
    rows = settled_rows(worker, "hourly")

    first = rows[("service:api", minutes(0).timestamp())]
    second = rows[("service:api", minutes(60).timestamp())]
    # b was open from minute 50 to minute 120.
    assert first["availability"] == pytest.approx(1 - 10 / 60)
    assert second["opened"] == 0
    assert second["availability"] == 0.0


def test_postmortem_draft_over_http(worker: Worker) -> None:
    planned = PLAN[1]
    wait_for(
        lambda: worker.get(f"/incidents/{planned.incident_id}")["state"] == "resolved",
        TIMEOUT_S,
        "b resolved",
    )
    markdown = client.request_text(
        worker.url, f"/incidents/{planned.incident_id}/postmortem"
    )

    assert markdown.startswith(f"# Postmortem: b on api ({planned.incident_id})")
    assert "- Time to acknowledge: 30.0 min by tester via http" in markdown
    assert "| acknowledged | tester via http |" in markdown
    assert "## Root cause" in markdown


def test_prometheus_exposes_response_metrics(worker: Worker) -> None:
    settled_rows(worker, "daily")

    text = client.request_text(worker.url, "/metrics")

    assert 'tocsin_response_p95_seconds{measure="ttr",service="api"' in text
    assert 'tocsin_incidents_opened{service="billing",window="daily"}' in text
    assert 'tocsin_sla_compliance_ratio{measure="tta",service="api"' in text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for service in ("api", "billing"):
        rows = worker.get(f"/metrics/response?window=daily&service={service}")["rows"]
        newest = max(rows, key=lambda row: row["window_start"])
        labels = (("service", service), ("window", "daily"))
        assert samples[("tocsin_incidents_opened", labels)] == newest["opened"]
        if newest["mttr_s"] is not None:
            mttr = samples[("tocsin_mttr_seconds", labels)]
            assert mttr == pytest.approx(newest["mttr_s"]), service
    delivered = (("receiver", "pager"), ("status", "delivered"))
    assert samples[("tocsin_delivery_attempts_total", delivered)] >= len(PLAN)


def test_postmortem_command_writes_file(worker: Worker, tmp_path: Path) -> None:
    planned = PLAN[0]
    output = tmp_path / "draft.md"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tocsin.cli",
            "postmortem",
            planned.incident_id,
            "--url",
            worker.url,
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**worker.env},
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"wrote {output}" in result.stdout
    assert output.read_text().startswith("# Postmortem: a on api")


def test_invalid_resolution_rejected(worker: Worker) -> None:
    open_one = PLAN[4]
    path = f"/incidents/{open_one.incident_id}"

    with pytest.raises(client.WebViewError, match="resolution"):
        worker.post(path + "/resolve", {"actor": "erin", "resolution": "bogus"})
    with pytest.raises(client.WebViewError, match="resolve only"):
        worker.post(
            path + "/acknowledge", {"actor": "erin", "resolution": "false_positive"}
        )


def test_http_resolve_records_false_positive(worker: Worker) -> None:
    open_one = PLAN[4]
    path = f"/incidents/{open_one.incident_id}"

    worker.post(path + "/resolve", {"actor": "erin", "resolution": "false_positive"})

    def resolve_event() -> Any:
        timeline = worker.get(path)["timeline"]
        return next((e for e in timeline if e["kind"] == "resolved"), None)

    event = wait_for(resolve_event, TIMEOUT_S, "e resolved")
    assert event["details"]["resolution"] == "false_positive"
    rows = settled_rows(worker, "daily")
    api = rows[("service:api", minutes(0).timestamp())]
    assert api["false_positives"] == 1

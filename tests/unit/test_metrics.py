"""Response metrics: samples from timeline events, window aggregates, summaries."""

from __future__ import annotations

from typing import Any

import pytest
from factories import at, make_event

from schemas.analytics import Targets
from schemas.records import (
    EventKind,
    IncidentEvent,
    IncidentState,
    ResponseSample,
    Severity,
)
from streams.analytics.metrics import (
    EMPTY_WINDOW,
    MAX_DOWNTIME_PLACEMENTS,
    add_sample,
    affected_users,
    dimensions,
    downtime_samples,
    merge_windows,
    rate_targets_met,
    sample_for,
    summarize,
    window_rows,
)
from streams.analytics.progress import next_samples


def acknowledged(seconds: float, incident_id: str = "g1-1") -> ResponseSample:
    event = make_event(
        incident_id=incident_id,
        kind=EventKind.ACKNOWLEDGED,
        seq=2,
        at=at(seconds),
        state=IncidentState.ACKNOWLEDGED,
    )
    sample = sample_for(event)
    assert sample is not None
    return sample


def resolved(
    seconds: float, was_acknowledged: bool, incident_id: str = "g1-1"
) -> ResponseSample:
    event = make_event(
        incident_id=incident_id,
        kind=EventKind.RESOLVED,
        seq=3,
        at=at(seconds),
        state=IncidentState.RESOLVED,
        details={"how": "by a person", "acknowledged": was_acknowledged},
    )
    sample = sample_for(event)
    assert sample is not None
    return sample


def opened(incident_id: str = "g1-1") -> ResponseSample:
    sample = sample_for(make_event(incident_id=incident_id))
    assert sample is not None
    return sample


def total(*samples: ResponseSample) -> dict[str, Any]:
    window: dict[str, Any] = {}
    for sample in samples:
        window = add_sample(window, sample)
    return window


# sample_for


def test_opened_sample_measures_time_to_detect() -> None:
    sample = opened()

    assert sample.kind == "opened"
    assert sample.seconds == 300


def test_acknowledged_sample_measures_from_open() -> None:
    sample = acknowledged(90)

    assert sample.kind == "acknowledged"
    assert sample.seconds == 90


def test_resolved_sample_measures_from_open() -> None:
    assert resolved(600, was_acknowledged=True).seconds == 600


def test_resolved_sample_keeps_acknowledged_flag() -> None:
    assert resolved(600, was_acknowledged=True).acknowledged is True
    assert resolved(600, was_acknowledged=False).acknowledged is False


def test_sample_carries_opened_time() -> None:
    assert acknowledged(90).opened_at == at(0)


def test_other_events_give_no_sample() -> None:
    for kind in (EventKind.ALERT_ADDED, EventKind.NOTE_ADDED, EventKind.REOPENED):
        assert sample_for(make_event(kind=kind, seq=2)) is None, kind


# add_sample and summarize


def test_mtta_leaves_out_unacknowledged_incidents() -> None:
    window = total(
        opened("a-1"),
        acknowledged(60, "a-1"),
        resolved(300, True, "a-1"),
        opened("b-1"),
        resolved(900, False, "b-1"),
    )

    summary = summarize(window)

    assert summary["mtta_s"] == 60
    assert summary["acknowledged"] == 1


def test_unacknowledged_resolves_counted_apart() -> None:
    window = total(resolved(300, True, "a-1"), resolved(900, False, "b-1"))

    assert summarize(window)["resolved_unacknowledged"] == 1


def test_mttr_counts_every_resolved_incident() -> None:
    window = total(resolved(300, True, "a-1"), resolved(900, False, "b-1"))

    summary = summarize(window)

    assert summary["mttr_s"] == 600
    assert summary["resolved"] == 2


def test_opened_samples_counted() -> None:
    assert summarize(total(opened("a-1"), opened("b-1")))["opened"] == 2


def test_empty_window_has_null_mtta() -> None:
    assert summarize({})["mtta_s"] is None


def test_empty_window_has_null_mttr() -> None:
    assert summarize({})["mttr_s"] is None


def test_empty_window_counts_zero() -> None:
    summary = summarize(dict(EMPTY_WINDOW))

    assert summary["opened"] == 0
    assert summary["resolved_unacknowledged"] == 0


def test_window_without_acks_has_null_mtta() -> None:
    window = total(opened(), resolved(900, False))

    assert summarize(window)["mtta_s"] is None


def test_add_sample_leaves_window_unchanged() -> None:
    window = total(opened())
    before = dict(window)

    add_sample(window, acknowledged(60))

    assert window == before


# window_rows

HOUR_START = 1_714_564_800.0
HOUR_END = HOUR_START + 3600


def test_window_rows_accept_tuple_keys() -> None:
    items = [(("service:api", (HOUR_START, HOUR_END)), total(opened()))]

    rows = window_rows(items, "hourly")

    assert rows == [
        {
            "dimension": "service:api",
            "service": "api",
            "window": "hourly",
            "window_start": HOUR_START,
            "window_end": HOUR_END,
            **summarize(total(opened())),
            "rate_targets_met": {
                "recurrence_rate": True,
                "false_positive_rate": None,
            },
        }
    ]


def test_window_rows_accept_json_list_keys() -> None:
    tuple_items = [(("service:api", (HOUR_START, HOUR_END)), total(opened()))]
    list_items: list[Any] = [[["service:api", [HOUR_START, HOUR_END]], total(opened())]]

    assert window_rows(list_items, "hourly") == window_rows(tuple_items, "hourly")


def test_window_rows_filter_by_service() -> None:
    items = [
        (("service:api", (HOUR_START, HOUR_END)), total(opened())),
        (("service:trainer", (HOUR_START, HOUR_END)), total(opened())),
    ]

    rows = window_rows(items, "hourly", dimension="service:trainer")

    assert [row["service"] for row in rows] == ["trainer"]


def test_window_rows_sorted_by_service_then_start() -> None:
    later = HOUR_START + 3600
    items: list[Any] = [
        (("service:trainer", (HOUR_START, HOUR_END)), {}),
        (("service:api", (later, later + 3600)), {}),
        (("service:api", (HOUR_START, HOUR_END)), {}),
    ]

    rows = window_rows(items, "hourly")

    keys = [(row["service"], row["window_start"]) for row in rows]
    assert keys == [("api", HOUR_START), ("api", later), ("trainer", HOUR_START)]


def test_window_rows_report_empty_window_as_null() -> None:
    rows = window_rows([(("service:api", (HOUR_START, HOUR_END)), {})], "daily")

    assert rows[0]["mtta_s"] is None
    assert rows[0]["mttr_s"] is None


# percentiles, merging and the other metrics

TARGETS = Targets()


def window_of(*samples: ResponseSample) -> dict[str, Any]:
    window: dict[str, Any] = {}
    for sample in samples:
        window = add_sample(window, sample, TARGETS)
    return window


def lower_rank(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[int(quantile * (len(ordered) - 1))]


ACK_SECONDS = [12.0, 45.0, 60.0, 95.0, 180.0, 240.0, 420.0, 600.0, 1500.0, 3600.0]


def acknowledgements(seconds: list[float]) -> list[ResponseSample]:
    return [acknowledged(s, f"g{i}-1") for i, s in enumerate(seconds)]


def test_percentiles_within_sketch_accuracy() -> None:
    summary = summarize(window_of(*acknowledgements(ACK_SECONDS)))["tta"]

    for name, quantile in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95)):
        exact = lower_rank(ACK_SECONDS, quantile)
        assert summary[f"{name}_s"] == pytest.approx(exact, rel=0.01), name


def test_mean_is_exact() -> None:
    summary = summarize(window_of(*acknowledgements(ACK_SECONDS)))["tta"]

    assert summary["count"] == len(ACK_SECONDS)
    assert summary["mean_s"] == pytest.approx(sum(ACK_SECONDS) / len(ACK_SECONDS))


def test_merged_windows_equal_one_window() -> None:
    samples = acknowledgements(ACK_SECONDS)
    whole = summarize(window_of(*samples))
    merged = summarize(merge_windows(window_of(*samples[:4]), window_of(*samples[4:])))

    assert merged == whole


def test_merge_with_empty_window_changes_nothing() -> None:
    window = window_of(*acknowledgements(ACK_SECONDS))

    assert summarize(merge_windows(window, {})) == summarize(window)


def test_empty_window_reports_null_rates() -> None:
    summary = summarize({})

    assert summary["tta"]["p95_s"] is None
    assert summary["sla"] == {"tta": None, "ttr": None}
    assert summary["availability"] is None
    assert summary["recurrence_rate"] is None
    assert summary["false_positive_rate"] is None


def test_sla_share_within_target() -> None:
    # The MTTA target is 5 minutes: 12 s to 240 s are within it.
    summary = summarize(window_of(*acknowledgements(ACK_SECONDS)))

    assert summary["sla"]["tta"] == pytest.approx(6 / 10)


def test_false_positive_rate_counts_resolutions() -> None:
    fp = make_event(
        incident_id="b-1",
        kind=EventKind.RESOLVED,
        seq=2,
        at=at(60),
        details={"acknowledged": False, "resolution": "false_positive"},
    )
    fp_sample = sample_for(fp)
    assert fp_sample is not None

    summary = summarize(window_of(resolved(600, True, "a-1"), fp_sample))

    assert summary["false_positives"] == 1
    assert summary["false_positive_rate"] == 0.5


def test_recurrence_rate_from_opened_links() -> None:
    again = sample_for(make_event(incident_id="a-2", details={"recurrence_of": "a-1"}))
    assert again is not None

    summary = summarize(window_of(opened("a-1"), again))

    assert summary["recurrences"] == 1
    assert summary["recurrence_rate"] == 0.5


def test_rate_targets_compared_with_configured_targets() -> None:
    again = sample_for(make_event(incident_id="a-2", details={"recurrence_of": "a-1"}))
    assert again is not None
    summary = summarize(window_of(opened("a-1"), again))

    loose = rate_targets_met(summary, Targets(recurrence_rate=0.5))
    strict = rate_targets_met(summary, Targets(recurrence_rate=0.49))

    assert loose["recurrence_rate"] is True
    assert strict["recurrence_rate"] is False
    assert strict["false_positive_rate"] is None


def critical_resolve(
    opened_s: float, resolved_s: float, incident_id: str = "g1-1"
) -> IncidentEvent:
    return make_event(
        incident_id=incident_id,
        kind=EventKind.RESOLVED,
        seq=2,
        opened_at=at(opened_s),
        at=at(resolved_s),
        severity=Severity.CRITICAL,
        details={"acknowledged": True},
    )


def hour_of(sample: ResponseSample) -> float:
    placed = (sample.window_at or sample.opened_at).timestamp()
    return placed // 3600 * 3600


def test_availability_from_critical_incidents() -> None:
    critical = critical_resolve(0, 900)
    resolve = sample_for(critical)
    assert resolve is not None
    first_open = sample_for(make_event(severity=Severity.CRITICAL))
    assert first_open is not None
    downtime = downtime_samples(critical)

    summary = summarize(window_of(first_open, resolve, *downtime), size_s=3600)

    assert summary["availability"] == pytest.approx(1 - 900 / 3600)


def test_overlapping_critical_incidents_count_once() -> None:
    first = downtime_samples(critical_resolve(0, 900, "g1-1"))
    second = downtime_samples(critical_resolve(600, 1200, "g2-1"))

    summary = summarize(window_of(*first, *second), 3600, at(0).timestamp())

    assert summary["availability"] == pytest.approx(1 - 1200 / 3600)


def test_long_critical_incident_spans_hours() -> None:
    # Open from 12:30 to 14:15: half of the first hour, all of the second,
    # a quarter of the third.
    samples = downtime_samples(critical_resolve(1800, 8100))
    hours = [hour_of(sample) for sample in samples]
    start = at(0).timestamp()

    assert hours == [start, start + 3600, start + 7200]
    assert len({sample.sample_id for sample in samples}) == 3
    expected = {start: 0.5, start + 3600: 0.0, start + 7200: 0.75}
    for sample, hour in zip(samples, hours, strict=True):
        summary = summarize(window_of(sample), 3600, hour)
        assert summary["availability"] == pytest.approx(expected[hour]), hour


def test_spans_merge_across_partitions() -> None:
    first = window_of(*downtime_samples(critical_resolve(0, 900, "g1-1")))
    second = window_of(*downtime_samples(critical_resolve(600, 1200, "g2-1")))

    merged = merge_windows(first, second)

    assert merged["critical_spans"] == [[at(0).timestamp(), at(1200).timestamp()]]


def test_downtime_placements_capped() -> None:
    samples = downtime_samples(critical_resolve(0, 40 * 86400))

    assert len(samples) == MAX_DOWNTIME_PLACEMENTS
    assert hour_of(samples[-1]) == at(40 * 86400 - 3600).timestamp()


def test_only_critical_resolves_have_downtime() -> None:
    high = make_event(kind=EventKind.RESOLVED, seq=2, at=at(900))

    assert downtime_samples(high) == []
    assert downtime_samples(make_event(severity=Severity.CRITICAL)) == []


def test_high_incidents_leave_availability_whole() -> None:
    summary = summarize(window_of(opened(), resolved(900, True)), size_s=3600)

    assert summary["availability"] == 1.0


def test_impact_score_weighs_severity_duration_users() -> None:
    event = make_event(
        kind=EventKind.RESOLVED,
        seq=2,
        at=at(1800),
        labels={"service": "api", "affected_users": "40"},
        details={"acknowledged": True},
    )
    sample = sample_for(event, TARGETS)
    assert sample is not None

    # high weighs 4: 4 * 0.5 h * 40 users.
    assert sample.impact == pytest.approx(80.0)


def test_invalid_affected_users_counts_one() -> None:
    event = make_event(labels={"affected_users": "many"})

    assert affected_users(event) == 1


def test_escalations_and_notifications_counted() -> None:
    escalated = sample_for(make_event(kind=EventKind.ESCALATED, seq=2))
    notified = sample_for(make_event(kind=EventKind.NOTIFIED, seq=3))
    assert escalated is not None
    assert notified is not None

    summary = summarize(window_of(opened(), escalated, notified, notified))

    assert summary["escalations"] == 1
    assert summary["notifications"] == 2


def test_time_to_detect_summarized() -> None:
    summary = summarize(window_of(opened("a-1"), opened("b-1")))

    assert summary["ttd"]["count"] == 2
    assert summary["mttd_s"] == 300


def test_window_rows_filter_by_kind() -> None:
    items = [
        (("all", (HOUR_START, HOUR_END)), window_of(opened())),
        (("severity:high", (HOUR_START, HOUR_END)), window_of(opened())),
        (("service:api", (HOUR_START, HOUR_END)), window_of(opened())),
    ]

    rows = window_rows(items, "hourly", kind="severity")

    assert [row["dimension"] for row in rows] == ["severity:high"]
    assert rows[0]["severity"] == "high"


def test_dimensions_of_sample() -> None:
    assert dimensions("api", "high") == ["all", "service:api", "severity:high"]


# next_samples


def test_redelivered_event_adds_nothing() -> None:
    state, first = next_samples(None, make_event(), TARGETS)
    _, again = next_samples(state, make_event(), TARGETS)

    assert len(first) == 1
    assert again == []


def test_only_first_acknowledgement_counts() -> None:
    ack = make_event(kind=EventKind.ACKNOWLEDGED, seq=2, at=at(60))
    second = make_event(kind=EventKind.ACKNOWLEDGED, seq=5, at=at(900))
    state, _ = next_samples(None, make_event(), TARGETS)
    state, first = next_samples(state, ack, TARGETS)
    _, later = next_samples(state, second, TARGETS)

    assert [s.seconds for s in first] == [60]
    assert later == []


def test_only_first_resolve_counts() -> None:
    resolve = make_event(kind=EventKind.RESOLVED, seq=2, at=at(60))
    again = make_event(kind=EventKind.RESOLVED, seq=4, at=at(900))
    state, _ = next_samples(None, resolve, TARGETS)
    _, later = next_samples(state, again, TARGETS)

    assert later == []


def test_sample_id_is_event_key() -> None:
    _, samples = next_samples(None, make_event(seq=1), TARGETS)

    assert samples[0].sample_id == "g1-1:1"

"""Response metrics: samples from timeline events, window sums and summaries."""

from __future__ import annotations

from typing import Any

from factories import at, make_event

from schemas.records import EventKind, IncidentState, ResponseSample
from streams.analytics.metrics import (
    EMPTY_WINDOW,
    add_sample,
    sample_for,
    summarize,
    window_rows,
)


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


def total(*samples: ResponseSample) -> dict[str, float]:
    window: dict[str, float] = {}
    for sample in samples:
        window = add_sample(window, sample)
    return window


# sample_for


def test_opened_sample_has_no_duration() -> None:
    sample = opened()

    assert sample.kind == "opened"
    assert sample.seconds is None


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
    for kind in (EventKind.ALERT_ADDED, EventKind.ESCALATED, EventKind.NOTIFIED):
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
    items = [(("api", (HOUR_START, HOUR_END)), total(opened()))]

    rows = window_rows(items, "hourly")

    assert rows == [
        {
            "service": "api",
            "window": "hourly",
            "window_start": HOUR_START,
            "window_end": HOUR_END,
            **summarize(total(opened())),
        }
    ]


def test_window_rows_accept_json_list_keys() -> None:
    tuple_items = [(("api", (HOUR_START, HOUR_END)), total(opened()))]
    list_items: list[Any] = [[["api", [HOUR_START, HOUR_END]], total(opened())]]

    assert window_rows(list_items, "hourly") == window_rows(tuple_items, "hourly")


def test_window_rows_filter_by_service() -> None:
    items = [
        (("api", (HOUR_START, HOUR_END)), total(opened())),
        (("trainer", (HOUR_START, HOUR_END)), total(opened())),
    ]

    rows = window_rows(items, "hourly", service="trainer")

    assert [row["service"] for row in rows] == ["trainer"]


def test_window_rows_sorted_by_service_then_start() -> None:
    later = HOUR_START + 3600
    items: list[Any] = [
        (("trainer", (HOUR_START, HOUR_END)), {}),
        (("api", (later, later + 3600)), {}),
        (("api", (HOUR_START, HOUR_END)), {}),
    ]

    rows = window_rows(items, "hourly")

    keys = [(row["service"], row["window_start"]) for row in rows]
    assert keys == [("api", HOUR_START), ("api", later), ("trainer", HOUR_START)]


def test_window_rows_report_empty_window_as_null() -> None:
    rows = window_rows([(("api", (HOUR_START, HOUR_END)), {})], "daily")

    assert rows[0]["mtta_s"] is None
    assert rows[0]["mttr_s"] is None

"""Label matchers of silences, windows and inhibition rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.silences import InhibitRule, MaintenanceWindow, Matcher, Recurrence


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("service=api", {"service": "api"}, True),
        ("service=api", {"service": "api-2"}, False),
        ("service!=api", {"service": "web"}, True),
        ("service=~api|web", {"service": "web"}, True),
        ("service=~api", {"service": "api-2"}, False),
        ("service!~api.*", {"service": "db"}, True),
        ("team=", {}, True),
        ("team!=", {"team": "ml"}, True),
    ],
)
def test_matcher_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


def test_doubled_equals_rejected() -> None:
    with pytest.raises(ValueError, match="the value starts with '='") as caught:
        Matcher.parse("service==api")
    assert "use service=api" in str(caught.value)


def test_quoted_value_may_start_with_equals() -> None:
    matcher = Matcher.parse('expr="=1"')

    assert matcher.value == "=1"
    assert matcher.matches({"expr": "=1"})


def test_invalid_regex_rejected() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher.parse("service=~(api")


def test_invalid_regex_error_shows_pattern_as_written() -> None:
    with pytest.raises(ValueError) as excinfo:
        Matcher.parse("service=~(api")

    assert "invalid regular expression '(api':" in str(excinfo.value)
    assert "^(?:" not in str(excinfo.value)


def test_missing_operator_rejected() -> None:
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        Matcher.parse("service")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2024-07-01 is a Monday and 2024-07-05 a Friday.
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2024-07-01T01:59:59", False),
        ("2024-07-01T02:00:00", True),
        ("2024-07-01T05:59:59", True),
        ("2024-07-01T06:00:00", False),
        ("2024-07-06T03:00:00", False),
    ],
)
def test_weekday_window_covers_span(moment: str, expected: bool) -> None:
    weekdays = Recurrence(
        days=["mon", "tue", "wed", "thu", "fri"],
        start="02:00",
        duration=timedelta(hours=4),
    )
    assert weekdays.covers(utc(moment)) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2024-07-05T21:59:59", False),
        ("2024-07-05T22:00:00", True),
        ("2024-07-05T23:30:00", True),
        ("2024-07-06T01:59:59", True),
        ("2024-07-06T02:00:00", False),
        ("2024-07-06T22:30:00", False),
    ],
)
def test_window_across_midnight(moment: str, expected: bool) -> None:
    friday_night = Recurrence(days=["fri"], start="22:00", duration=timedelta(hours=4))
    assert friday_night.covers(utc(moment)) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Summer: 02:00 in Paris is 00:00 UTC.
        ("2024-06-30T23:59:59", False),
        ("2024-07-01T00:00:00", True),
        ("2024-07-01T03:59:59", True),
        ("2024-07-01T04:00:00", False),
        # Winter: 02:00 in Paris is 01:00 UTC.
        ("2024-01-01T00:30:00", False),
        ("2024-01-01T01:00:00", True),
        ("2024-01-01T04:59:59", True),
    ],
)
def test_window_in_time_zone(moment: str, expected: bool) -> None:
    paris = Recurrence(
        days=["mon"],
        start="02:00",
        duration=timedelta(hours=4),
        timezone="Europe/Paris",
    )
    assert paris.covers(utc(moment)) is expected


def test_multi_day_window_covers_following_days() -> None:
    weekend = Recurrence(days=["sat"], start="00:00", duration=timedelta(hours=48))
    assert weekend.covers(utc("2024-07-07T23:59:59"))
    assert not weekend.covers(utc("2024-07-08T00:00:00"))
    assert not weekend.covers(utc("2024-07-05T23:59:59"))


def test_recurring_window_mutes_inside_span() -> None:
    window = MaintenanceWindow(
        name="nightly",
        matchers=["team=ml"],
        every={"days": ["fri"], "start": "22:00", "duration": "4h"},
    )
    inside = utc("2024-07-06T01:00:00")
    outside = utc("2024-07-06T03:00:00")

    assert window.mutes({"team": "ml"}, inside)
    assert not window.mutes({"team": "ml"}, outside)
    assert not window.mutes({"team": "web"}, inside)
    disabled = window.model_copy(update={"enabled": False})
    assert not disabled.mutes({"team": "ml"}, inside)


def cluster_rule() -> InhibitRule:
    return InhibitRule(
        source_matchers=["alertname=ClusterDown"],
        target_matchers=["alertname=NodeDown"],
        equal=["cluster"],
    )


def test_inhibit_rule_mutes_matching_target() -> None:
    source = {"alertname": "ClusterDown", "cluster": "eu"}
    target = {"alertname": "NodeDown", "cluster": "eu", "host": "h1"}
    assert cluster_rule().inhibits(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        # The equal label differs, or only one side has it.
        (
            {"alertname": "ClusterDown", "cluster": "eu"},
            {"alertname": "NodeDown", "cluster": "us"},
        ),
        ({"alertname": "ClusterDown", "cluster": "eu"}, {"alertname": "NodeDown"}),
        # The source or the target fails its matchers.
        (
            {"alertname": "ClusterDegraded", "cluster": "eu"},
            {"alertname": "NodeDown", "cluster": "eu"},
        ),
        (
            {"alertname": "ClusterDown", "cluster": "eu"},
            {"alertname": "DiskFull", "cluster": "eu"},
        ),
    ],
)
def test_inhibit_rule_spares_target(
    source: dict[str, str], target: dict[str, str]
) -> None:
    assert not cluster_rule().inhibits(source, target)


def test_inhibit_rule_equal_label_missing_on_both() -> None:
    source = {"alertname": "ClusterDown"}
    target = {"alertname": "NodeDown"}
    assert cluster_rule().inhibits(source, target)


def test_inhibit_rule_spares_alert_matching_source() -> None:
    rule = InhibitRule(
        source_matchers=["severity=critical"],
        target_matchers=["severity=~critical|warning"],
        equal=["service"],
    )
    critical = {"severity": "critical", "service": "api", "host": "h1"}
    other_critical = {"severity": "critical", "service": "api", "host": "h2"}
    warning = {"severity": "warning", "service": "api"}

    assert rule.inhibits(critical, warning)
    assert not rule.inhibits(critical, other_critical)
    assert not rule.inhibits(other_critical, critical)
    assert not rule.inhibits(critical, critical)

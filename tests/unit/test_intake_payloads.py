"""External alert payloads: parsing, validation messages and the Alert records."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from pydantic import ValidationError

from schemas.config import Config
from schemas.intake import (
    SEVERITY_WORDS,
    Intake,
    parse_alertmanager,
    parse_generic,
    parse_severity,
)
from schemas.records import AlertStatus, Severity
from streams.correlate.identity import alert_identity
from streams.deadletter import describe_validation_error
from streams.web import intake as intake_views
from streams.web.intake import (
    MAX_BODY_BYTES,
    accepted_body,
    alert_record,
    publish_alerts,
    read_body,
)

STARTS_AT = "2024-05-01T12:00:00.5Z"
ENDS_AT = "2024-05-01T12:30:00Z"
GO_ZERO = "0001-01-01T00:00:00Z"


def am_alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "page"},
        "annotations": {"summary": "Disk above 80 %"},
        "startsAt": STARTS_AT,
        "endsAt": GO_ZERO,
        "generatorURL": "http://prometheus.test/graph",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    alert.update(overrides)
    return alert


def am_payload(*alerts: dict[str, Any], **overrides: Any) -> bytes:
    payload: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "tocsin",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": list(alerts) or [am_alert()],
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


def generic_alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {"alertname": "QueueBacklog", "service": "billing"},
        "annotations": {"summary": "Queue above 10k"},
        "status": "firing",
        "starts_at": STARTS_AT,
    }
    alert.update(overrides)
    return alert


def generic_payload(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({"alerts": list(alerts) or [generic_alert()]}).encode()


def rejection(parse: Any, raw: bytes) -> str:
    """Return the message a rejected body gets, failing if it is accepted."""
    with pytest.raises(ValidationError) as excinfo:
        parse(raw)
    return describe_validation_error(excinfo.value)


def only_alert(intake: Intake) -> Any:
    assert len(intake.alerts) == 1
    return intake.alerts[0]


# Alertmanager payloads


def test_alertmanager_three_alerts_parsed() -> None:
    alerts = [am_alert(labels={"alertname": "DiskFull", "instance": i}) for i in "abc"]
    intake = parse_alertmanager(am_payload(*alerts))

    assert len(intake.alerts) == 3
    assert {a.labels["instance"] for a in intake.alerts} == {"a", "b", "c"}
    assert all(a.source == "alertmanager" for a in intake.alerts)
    assert intake.warnings == []


def test_alertmanager_firing_alert_record() -> None:
    record = alert_record(only_alert(parse_alertmanager(am_payload())))

    starts_at = datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    assert record.status is AlertStatus.FIRING
    assert record.rule == "DiskFull"
    assert record.severity is Severity.CRITICAL
    assert record.starts_at == starts_at
    assert record.at == starts_at
    assert record.ends_at is None
    assert record.auto_resolve is True
    assert record.source == "alertmanager"
    assert record.annotations["summary"] == "Disk above 80 %"


def test_alertmanager_resolved_alert_record() -> None:
    resolved = am_alert(status="resolved", endsAt=ENDS_AT)
    record = alert_record(only_alert(parse_alertmanager(am_payload(resolved))))

    ends_at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert record.status is AlertStatus.RESOLVED
    assert record.ends_at == ends_at
    assert record.at == ends_at


def test_alertmanager_references_kept_as_annotations() -> None:
    alert = only_alert(parse_alertmanager(am_payload()))

    assert alert.annotations["alertmanager_fingerprint"] == "a1b2c3d4e5f60718"
    assert alert.annotations["alertmanager_group_key"] == '{}:{alertname="DiskFull"}'
    assert alert.annotations["alertmanager_url"] == "http://alertmanager.test"
    assert alert.annotations["generator_url"] == "http://prometheus.test/graph"


def test_alertmanager_sent_annotation_wins_over_reference() -> None:
    sent = am_alert(annotations={"generator_url": "http://runbook.test"})
    alert = only_alert(parse_alertmanager(am_payload(sent)))

    assert alert.annotations["generator_url"] == "http://runbook.test"


def test_alertmanager_fingerprint_field_not_identity() -> None:
    first = alert_record(only_alert(parse_alertmanager(am_payload())))
    other = am_alert(fingerprint="ffffffffffffffff")
    second = alert_record(only_alert(parse_alertmanager(am_payload(other))))

    assert first.fingerprint == second.fingerprint
    labels = {"alertname": "DiskFull", "instance": "db-1", "severity": "page"}
    assert first.fingerprint == alert_identity("alertmanager", labels)[0]


def test_alertmanager_unknown_fields_ignored() -> None:
    raw = am_payload(am_alert(newField=1), addedInAFutureRelease=True)

    assert len(parse_alertmanager(raw).alerts) == 1


def test_alertmanager_truncated_alerts_warned() -> None:
    intake = parse_alertmanager(am_payload(truncatedAlerts=7))

    assert len(intake.warnings) == 1
    assert intake.warnings[0].startswith("truncatedAlerts:")
    assert "7 alerts" in intake.warnings[0]
    assert "max_alerts" in intake.warnings[0]


def test_alertmanager_version_3_rejected() -> None:
    message = rejection(parse_alertmanager, am_payload(version="3"))

    assert "version: Input should be '4'" in message
    assert "'3'" in message


def test_alertmanager_resolved_without_end_rejected() -> None:
    resolved = am_alert(status="resolved", endsAt=GO_ZERO)
    message = rejection(parse_alertmanager, am_payload(am_alert(), resolved))

    assert "alerts.1.endsAt" in message
    assert "needs its end time" in message
    assert repr(GO_ZERO) in message


def test_alertmanager_end_before_start_rejected() -> None:
    early = am_alert(status="resolved", endsAt="2024-05-01T11:00:00Z")
    message = rejection(parse_alertmanager, am_payload(early))

    assert "alerts.0.endsAt" in message
    assert "before startsAt" in message


def test_alertmanager_missing_group_key_rejected() -> None:
    raw = json.loads(am_payload())
    del raw["groupKey"]
    message = rejection(parse_alertmanager, json.dumps(raw).encode())

    assert "groupKey: Field required" in message
    # The input of a missing field is the whole payload, so it is not shown.
    assert "groupKey: Field required (got" not in message


def test_alertmanager_bad_alert_index_named() -> None:
    alerts = [am_alert(), am_alert(), am_alert(status="pending")]
    message = rejection(parse_alertmanager, am_payload(*alerts))

    assert "alerts.2.status" in message
    assert "'pending'" in message
    assert "'firing' or 'resolved'" in message
    assert "alerts.0" not in message
    assert "alerts.1" not in message


# Times


@pytest.mark.parametrize(
    ("parse", "raw", "field"),
    [
        (
            parse_alertmanager,
            am_payload(am_alert(startsAt="2024-05-01T12:00:00")),
            "alerts.0.startsAt",
        ),
        (
            parse_generic,
            generic_payload(generic_alert(starts_at="2024-05-01T12:00:00")),
            "alerts.0.starts_at",
        ),
    ],
)
def test_naive_time_rejected(parse: Any, raw: bytes, field: str) -> None:
    message = rejection(parse, raw)

    assert f"{field}: Input should have timezone info" in message
    assert "'2024-05-01T12:00:00'" in message


def test_numeric_time_rejected() -> None:
    message = rejection(parse_generic, generic_payload(generic_alert(starts_at=1e9)))

    assert "alerts.0.starts_at" in message
    assert "RFC 3339" in message
    assert "1000000000.0" in message


def test_offset_kept_and_event_id_follows_instant() -> None:
    utc = generic_alert(starts_at="2024-05-01T12:00:00Z")
    paris = generic_alert(starts_at="2024-05-01T14:00:00+02:00")
    first = alert_record(only_alert(parse_generic(generic_payload(utc))))
    second = alert_record(only_alert(parse_generic(generic_payload(paris))))

    assert second.starts_at.utcoffset() == timedelta(hours=2)
    assert first.starts_at == second.starts_at
    assert first.event_id == second.event_id


# Severity words


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("CRITICAL", Severity.CRITICAL),
        (" High ", Severity.HIGH),
        ("medium", Severity.MEDIUM),
        ("low", Severity.LOW),
        ("info", Severity.INFO),
        ("error", Severity.HIGH),
        ("warning", Severity.MEDIUM),
        ("Warning", Severity.MEDIUM),
        ("warn", Severity.MEDIUM),
        ("page", Severity.CRITICAL),
        ("ticket", Severity.LOW),
        ("none", Severity.INFO),
        ("crit", Severity.CRITICAL),
        ("err", Severity.HIGH),
        ("notice", Severity.LOW),
        ("P1", Severity.CRITICAL),
        ("p3", Severity.MEDIUM),
        ("p5", Severity.INFO),
    ],
)
def test_severity_word_mapped(word: str, severity: Severity) -> None:
    assert parse_severity(word) is severity


def test_severity_words_lower_case() -> None:
    assert all(word == word.strip().lower() for word in SEVERITY_WORDS)


@pytest.mark.parametrize("word", ["", "bananas", "sev-1", "p0"])
def test_severity_word_unknown(word: str) -> None:
    assert parse_severity(word) is None


def test_severity_label_missing_gives_medium() -> None:
    labels = {"alertname": "DiskFull"}
    alert = only_alert(parse_alertmanager(am_payload(am_alert(labels=labels))))

    assert alert.severity is Severity.MEDIUM


def test_severity_label_unknown_warned() -> None:
    labels = {"alertname": "DiskFull", "severity": "bananas"}
    intake = parse_alertmanager(am_payload(am_alert(), am_alert(labels=labels)))

    assert intake.alerts[1].severity is Severity.MEDIUM
    assert len(intake.warnings) == 1
    assert intake.warnings[0].startswith("alerts.1.labels.severity:")
    assert "'bananas'" in intake.warnings[0]
    assert "medium was used" in intake.warnings[0]


def test_generic_severity_field_overrides_label() -> None:
    sent = generic_alert(labels={"severity": "info"}, severity="error")
    alert = only_alert(parse_generic(generic_payload(sent)))

    assert alert.severity is Severity.HIGH


def test_generic_severity_field_unknown_rejected() -> None:
    sent = generic_alert(severity="bananas")
    message = rejection(parse_generic, generic_payload(sent))

    assert "alerts.0.severity" in message
    assert "'bananas'" in message
    assert "expected critical, high, medium, low, info" in message


# Identity and event ids


def test_identity_stable_under_annotation_change() -> None:
    first = am_alert(annotations={"summary": "Disk above 80 %"})
    second = am_alert(annotations={"summary": "Disk above 95 %", "runbook": "x"})
    first_record = alert_record(only_alert(parse_alertmanager(am_payload(first))))
    second_record = alert_record(only_alert(parse_alertmanager(am_payload(second))))

    assert first_record.fingerprint == second_record.fingerprint
    assert first_record.group_key == second_record.group_key
    assert first_record.event_id == second_record.event_id


def test_identity_changes_with_labels() -> None:
    other = am_alert(labels={"alertname": "DiskFull", "instance": "db-2"})
    first_record = alert_record(only_alert(parse_alertmanager(am_payload())))
    second_record = alert_record(only_alert(parse_alertmanager(am_payload(other))))

    assert first_record.fingerprint != second_record.fingerprint
    # One Alertmanager group: one incident for both.
    assert first_record.group_key == second_record.group_key


def test_alertmanager_groups_by_group_key() -> None:
    first = alert_record(only_alert(parse_alertmanager(am_payload())))
    other_group = am_payload(groupKey='{}:{alertname="Other"}')
    second = alert_record(only_alert(parse_alertmanager(other_group)))

    assert first.group_key != second.group_key
    assert first.group_key != first.fingerprint


def test_route_group_by_overrides_group_key() -> None:
    config = Config.model_validate(
        {
            "routes": [{"match": {}, "policy": "p", "group_by": ["instance"]}],
            "policies": {"p": {"levels": [{"targets": ["pager"]}]}},
            "receivers": {"pager": {"type": "console"}},
        }
    )
    db2 = am_alert(labels={"alertname": "DiskFull", "instance": "db-2"})
    first = alert_record(only_alert(parse_alertmanager(am_payload())), config)
    second = alert_record(only_alert(parse_alertmanager(am_payload(db2))), config)

    assert first.group_key != second.group_key


def test_fingerprint_by_ignores_other_labels() -> None:
    config = Config.model_validate(
        {
            "routes": [{"match": {}, "policy": "p", "fingerprint_by": ["instance"]}],
            "policies": {"p": {"levels": [{"targets": ["pager"]}]}},
            "receivers": {"pager": {"type": "console"}},
        }
    )
    relabelled = am_alert(
        labels={"alertname": "DiskFull", "instance": "db-1", "pod": "x-7f9"}
    )
    first = alert_record(only_alert(parse_alertmanager(am_payload())), config)
    second = alert_record(
        only_alert(parse_alertmanager(am_payload(relabelled))), config
    )

    assert first.fingerprint == second.fingerprint


def test_identity_depends_on_source() -> None:
    labels = {"alertname": "DiskFull"}
    from_am = parse_alertmanager(am_payload(am_alert(labels=labels)))
    from_http = parse_generic(generic_payload(generic_alert(labels=labels)))

    first_record = alert_record(only_alert(from_am))
    second_record = alert_record(only_alert(from_http))
    assert first_record.fingerprint != second_record.fingerprint


def test_event_id_stable_across_repeats() -> None:
    ids = {
        alert_record(only_alert(parse_alertmanager(am_payload()))).event_id
        for _ in range(3)
    }

    assert len(ids) == 1


def test_event_id_differs_by_status_and_start() -> None:
    firing = am_alert()
    resolved = am_alert(status="resolved", endsAt=ENDS_AT)
    later = am_alert(startsAt="2024-05-01T13:00:00Z")
    records = [
        alert_record(only_alert(parse_alertmanager(am_payload(sent))))
        for sent in (firing, resolved, later)
    ]

    assert len({r.event_id for r in records}) == 3
    assert len({r.fingerprint for r in records}) == 1


def test_event_id_ignores_end_time() -> None:
    first = am_alert(status="resolved", endsAt=ENDS_AT)
    second = am_alert(status="resolved", endsAt="2024-05-01T12:31:00Z")
    first_record = alert_record(only_alert(parse_alertmanager(am_payload(first))))
    second_record = alert_record(only_alert(parse_alertmanager(am_payload(second))))

    assert first_record.event_id == second_record.event_id


# Rule and service


def test_rule_from_alertname_or_external() -> None:
    named = only_alert(parse_generic(generic_payload()))
    unnamed = only_alert(
        parse_generic(generic_payload(generic_alert(labels={"a": "b"})))
    )

    assert named.rule == "QueueBacklog"
    assert unnamed.rule == "external"


def test_service_taken_from_job() -> None:
    labels = {"alertname": "Down", "job": "node-exporter"}
    record = alert_record(
        only_alert(parse_alertmanager(am_payload(am_alert(labels=labels))))
    )

    assert record.service == "node-exporter"
    assert record.labels == {**labels, "service": "node-exporter"}
    assert record.fingerprint == alert_identity("alertmanager", labels)[0]


def test_service_label_wins_over_job() -> None:
    labels = {"alertname": "Down", "job": "node-exporter", "service": "db"}
    record = alert_record(
        only_alert(parse_alertmanager(am_payload(am_alert(labels=labels))))
    )

    assert record.service == "db"
    assert record.labels == labels


def test_service_unknown_without_service_or_job() -> None:
    record = alert_record(only_alert(parse_alertmanager(am_payload())))

    assert "service" not in record.labels
    assert record.service == "unknown"


# Generic form


def test_generic_firing_alert_record() -> None:
    record = alert_record(only_alert(parse_generic(generic_payload())))

    assert record.source == "http"
    assert record.status is AlertStatus.FIRING
    assert record.severity is Severity.MEDIUM
    assert record.rule == "QueueBacklog"
    assert record.service == "billing"
    assert record.ends_at is None
    assert record.at == record.starts_at
    assert record.auto_resolve is True


def test_generic_status_defaults_to_firing() -> None:
    sent = generic_alert()
    del sent["status"]
    alert = only_alert(parse_generic(generic_payload(sent)))

    assert alert.status is AlertStatus.FIRING


def test_generic_resolved_alert_record() -> None:
    sent = generic_alert(status="resolved", ends_at=ENDS_AT)
    record = alert_record(only_alert(parse_generic(generic_payload(sent))))

    ends_at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert record.at == ends_at
    assert record.ends_at == ends_at


def test_generic_resolved_without_end_rejected() -> None:
    message = rejection(
        parse_generic, generic_payload(generic_alert(status="resolved"))
    )

    assert "alerts.0.ends_at" in message
    assert "needs its end time" in message


def test_generic_firing_with_end_rejected() -> None:
    sent = generic_alert(ends_at=ENDS_AT)
    message = rejection(parse_generic, generic_payload(sent))

    assert "alerts.0.ends_at" in message
    assert "only allowed when status is resolved" in message


def test_generic_misspelt_field_rejected() -> None:
    sent = generic_alert(startsAt=STARTS_AT)
    del sent["starts_at"]
    message = rejection(parse_generic, generic_payload(sent))

    assert "alerts.0.starts_at: Field required" in message
    assert "alerts.0.startsAt: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        (generic_alert(labels={}), "alerts.0.labels"),
        (generic_alert(labels={"replicas": 3}), "alerts.0.labels.replicas"),
        (generic_alert(annotations={"count": 3}), "alerts.0.annotations.count"),
        (generic_alert(labels="db"), "alerts.0.labels"),
    ],
)
def test_generic_bad_labels_rejected(sent: dict[str, Any], field: str) -> None:
    message = rejection(parse_generic, generic_payload(sent))

    assert f"{field}:" in message


def test_generic_empty_alerts_rejected() -> None:
    message = rejection(parse_generic, b'{"alerts": []}')

    assert "alerts: List should have at least 1 item" in message


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_generic_not_an_object_rejected(raw: bytes) -> None:
    message = rejection(parse_generic, raw)

    assert message.startswith("invalid generic alert payload:")


def test_generic_invalid_json_named() -> None:
    message = rejection(parse_generic, b"{not json")

    assert "Invalid JSON" in message


# Response body


def test_accepted_body_lists_each_alert() -> None:
    alerts = [generic_alert(labels={"alertname": "A", "node": n}) for n in "xy"]
    intake = parse_generic(generic_payload(*alerts))
    records = [alert_record(a) for a in intake.alerts]
    body = accepted_body(records, ["a warning"])

    assert body["accepted"] == 2
    assert [a["fingerprint"] for a in body["alerts"]] == [
        r.fingerprint for r in records
    ]
    assert [a["group_key"] for a in body["alerts"]] == [r.group_key for r in records]
    assert body["alerts"][0]["status"] == "firing"
    assert body["warnings"] == ["a warning"]


def test_records_keep_sent_offset_aware() -> None:
    sent = generic_alert(starts_at="2024-05-01T12:00:00-05:00")
    record = alert_record(only_alert(parse_generic(generic_payload(sent))))

    assert record.starts_at.tzinfo is not None
    assert record.starts_at == datetime(
        2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=-5))
    )


# Request bodies and publishing, with stand-ins for aiohttp and the topic


class FakeStream:
    """A body stream that returns at most `chunk_size` bytes per read."""

    def __init__(self, body: bytes, chunk_size: int = 65536) -> None:
        self.body = body
        self.chunk_size = chunk_size
        self.reads = 0

    async def read(self, limit: int) -> bytes:
        self.reads += 1
        size = min(limit, self.chunk_size)
        chunk, self.body = self.body[:size], self.body[size:]
        return chunk


class FakeRequest:
    def __init__(self, body: bytes, declared: int | None) -> None:
        self.content = FakeStream(body)
        self.content_length = declared


def read(body: bytes, declared: int | None) -> bytes | None:
    return asyncio.run(read_body(cast(Any, FakeRequest(body, declared))))


def test_body_at_limit_read_whole() -> None:
    body = b"x" * MAX_BODY_BYTES

    assert read(body, declared=len(body)) == body
    assert read(body, declared=None) == body


def test_body_over_limit_rejected() -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)

    assert read(body, declared=len(body)) is None
    assert read(body, declared=None) is None


def test_declared_length_over_limit_not_read() -> None:
    request = FakeRequest(b"{}", declared=MAX_BODY_BYTES + 1)

    assert asyncio.run(read_body(cast(Any, request))) is None
    assert request.content.reads == 0


class FakeTopic:
    """A topic whose sends are acknowledged only when `acknowledge` is set."""

    def __init__(self, acknowledge: bool) -> None:
        self.acknowledge = acknowledge
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        future = asyncio.get_running_loop().create_future()
        if self.acknowledge:
            future.set_result(None)
        return future


class FakePipeline:
    def __init__(self, topic: FakeTopic) -> None:
        self.alerts_topic = topic

    def topic(self, spec: Any) -> FakeTopic:
        return self.alerts_topic


def test_publish_alerts_keyed_by_group_key() -> None:
    alerts = [generic_alert(labels={"alertname": "A", "node": n}) for n in "xy"]
    records = [alert_record(a) for a in parse_generic(generic_payload(*alerts)).alerts]
    topic = FakeTopic(acknowledge=True)

    asyncio.run(publish_alerts(cast(Any, FakePipeline(topic)), records))

    assert [json.loads(key) for key, _ in topic.sent] == [r.group_key for r in records]
    assert [value for _, value in topic.sent] == [r.to_bytes() for r in records]


def test_publish_alerts_unacknowledged_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake_views, "PUBLISH_TIMEOUT_S", 0.05)
    records = [alert_record(a) for a in parse_generic(generic_payload()).alerts]
    topic = FakeTopic(acknowledge=False)

    with pytest.raises(TimeoutError):
        asyncio.run(publish_alerts(cast(Any, FakePipeline(topic)), records))
    assert len(topic.sent) == 1


def test_long_label_value_rejected() -> None:
    alert = generic_alert(labels={"alertname": "Big", "blob": "x" * 1025})

    message = rejection(parse_generic, generic_payload(alert))

    assert "labels.blob" in message
    assert "at most 1024 characters" in message


def test_control_character_in_label_rejected() -> None:
    alert = generic_alert(labels={"alertname": "Bad\u0000name"})

    message = rejection(parse_generic, generic_payload(alert))

    assert "labels.alertname" in message


def test_too_many_labels_rejected() -> None:
    labels = {f"l{i}": "v" for i in range(65)}

    message = rejection(parse_generic, generic_payload(generic_alert(labels=labels)))

    assert "at most 64 items" in message


def test_far_future_start_rejected() -> None:
    alert = generic_alert(starts_at="9999-12-31T23:59:59Z")

    message = rejection(parse_generic, generic_payload(alert))

    assert "out of range" in message
    assert "9999-12-31" in message


def test_alertmanager_zero_end_of_firing_alert_allowed() -> None:
    alert = only_alert(parse_alertmanager(am_payload(am_alert(endsAt=GO_ZERO))))

    assert alert.ends_at is None

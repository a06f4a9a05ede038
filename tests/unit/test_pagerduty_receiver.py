"""PagerDutyReceiver against the local fake Events API, and its trigger payload."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import INCIDENT_ID, make_notification
from fakes.pagerduty import FakePagerDuty
from fakes.server import TlsCertificate, create_self_signed_certificate
from pydantic import SecretStr

from handlers.base import DeliveryError
from handlers.pagerduty import (
    EVENT_MAX_BYTES,
    SUMMARY_MAX,
    PagerDutyReceiver,
    fit_event,
    routing_key_id,
    trigger_payload,
)
from schemas.records import EventKind, IncidentState, Notification, Severity

ROUTING_KEY = "R0UT1NGKEY0UNITTEST0000000000000"
ROTATED_KEY = "R0TATEDKEY0UNITTEST0000000000000"

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    return create_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def pagerduty_fake(tls_certificate: TlsCertificate) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls=tls_certificate) as fake:
        yield fake


@pytest.fixture
def receiver(
    pagerduty_fake: FakePagerDuty,
    tls_certificate: TlsCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PagerDutyReceiver]:
    # The receiver builds its client without `verify`, so httpx2 trusts the
    # fake's certificate through SSL_CERT_FILE, read when the client is built.
    monkeypatch.setenv("SSL_CERT_FILE", str(Path(tls_certificate.cert_path)))
    built = PagerDutyReceiver(
        "pagerduty-primary",
        SecretStr(ROUTING_KEY),
        pagerduty_fake.url,
        timeout_s=5.0,
    )
    yield built
    built._client.close()


@pytest.fixture
def rotated(
    pagerduty_fake: FakePagerDuty, receiver: PagerDutyReceiver
) -> Iterator[PagerDutyReceiver]:
    """The same receiver after a restart with another routing key."""
    built = PagerDutyReceiver(
        "pagerduty-primary",
        SecretStr(ROTATED_KEY),
        pagerduty_fake.url,
        timeout_s=5.0,
    )
    yield built
    built._client.close()


def deliver(
    receiver: PagerDutyReceiver,
    notification: Notification,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return asyncio.run(receiver.deliver(notification, state or {}))


def delivery_error(receiver: PagerDutyReceiver) -> DeliveryError:
    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, make_notification("pagerduty-primary"))
    return excinfo.value


def transition(kind: EventKind, state: IncidentState, seq: int) -> Notification:
    return make_notification("pagerduty-primary", kind=kind, state=state, seq=seq)


ACKNOWLEDGED = transition(EventKind.ACKNOWLEDGED, IncidentState.ACKNOWLEDGED, 2)
RESOLVED = transition(EventKind.RESOLVED, IncidentState.RESOLVED, 3)


# Delivery to the fake


def test_trigger_dedup_key_is_incident_id(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))

    assert pagerduty_fake.alerts_for(ROUTING_KEY) == {INCIDENT_ID: "triggered"}
    assert state == {
        "dedup_key": INCIDENT_ID,
        "last_action": "trigger",
        "routing_key_id": routing_key_id(ROUTING_KEY),
    }


def test_trigger_carries_payload(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    deliver(receiver, make_notification("pagerduty-primary"))

    payload = pagerduty_fake.events[0]["payload"]
    assert payload["summary"] == "CPU above 90 %"
    assert payload["source"] == "api"
    assert payload["severity"] == "error"


def test_acknowledged_acknowledges_alert(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    deliver(receiver, make_notification("pagerduty-primary"))
    state = deliver(receiver, ACKNOWLEDGED)

    assert pagerduty_fake.alerts == {INCIDENT_ID: "acknowledged"}
    assert state["last_action"] == "acknowledge"


def test_resolved_resolves_alert(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    deliver(receiver, make_notification("pagerduty-primary"))
    deliver(receiver, ACKNOWLEDGED)
    deliver(receiver, RESOLVED)

    actions = [event["event_action"] for event in pagerduty_fake.events]
    assert actions == ["trigger", "acknowledge", "resolve"]
    assert pagerduty_fake.alerts == {INCIDENT_ID: "resolved"}


def test_every_dedup_key_is_incident_id(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    deliver(receiver, make_notification("pagerduty-primary"))
    deliver(receiver, RESOLVED)

    keys = {event["dedup_key"] for event in pagerduty_fake.events}
    assert keys == {INCIDENT_ID}


def test_escalated_triggers_same_alert(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    deliver(receiver, make_notification("pagerduty-primary"))
    deliver(receiver, transition(EventKind.ESCALATED, IncidentState.OPEN, 2))

    assert pagerduty_fake.alerts == {INCIDENT_ID: "triggered"}
    assert len(pagerduty_fake.events) == 2


def test_other_events_send_nothing(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    state = {"dedup_key": INCIDENT_ID, "last_action": "trigger"}
    added = transition(EventKind.ALERT_ADDED, IncidentState.OPEN, 2)

    assert deliver(receiver, added, state) == state
    assert pagerduty_fake.requests == []


def test_bad_request_is_permanent(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    pagerduty_fake.fail_next(400)

    error = delivery_error(receiver)

    assert error.retriable is False
    assert "HTTP 400" in str(error)


def test_invalid_event_is_permanent(receiver: PagerDutyReceiver) -> None:
    # The fake rejects an empty source with 400, as PagerDuty does.
    notification = make_notification("pagerduty-primary", service="")

    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, notification)

    assert excinfo.value.retriable is False


def test_unavailable_is_retriable(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    pagerduty_fake.fail_next(503)

    error = delivery_error(receiver)

    assert error.retriable is True
    assert len(pagerduty_fake.requests) == 1


def test_dropped_connection_is_retriable(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    pagerduty_fake.drop_next()

    error = delivery_error(receiver)

    assert error.retriable is True
    assert len(pagerduty_fake.requests) == 1


def test_error_hides_routing_key(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    pagerduty_fake.fail_next(400)

    error = delivery_error(receiver)

    assert ROUTING_KEY not in str(error)
    assert ROUTING_KEY not in repr(error)


def test_repr_hides_routing_key(receiver: PagerDutyReceiver) -> None:
    assert ROUTING_KEY not in repr(receiver)


# trigger_payload


def test_long_summary_cut_to_limit() -> None:
    payload = trigger_payload(make_notification(title="x" * 5000))

    assert len(payload["summary"]) == SUMMARY_MAX
    assert payload["summary"].endswith("…")


def test_summary_at_limit_kept() -> None:
    title = "x" * SUMMARY_MAX

    assert trigger_payload(make_notification(title=title))["summary"] == title


def test_cut_summary_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="handlers.pagerduty"):
        trigger_payload(make_notification(title="x" * 2000))

    assert "pagerduty summary cut" in caplog.text


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.CRITICAL, "critical"),
        (Severity.HIGH, "error"),
        (Severity.MEDIUM, "warning"),
        (Severity.LOW, "info"),
        (Severity.INFO, "info"),
    ],
)
def test_severity_mapped_to_pagerduty(severity: Severity, expected: str) -> None:
    payload = trigger_payload(make_notification(severity=severity))

    assert payload["severity"] == expected


def test_payload_component_prefers_metric_label() -> None:
    payload = trigger_payload(make_notification())

    assert payload["component"] == "cpu_utilization"


def test_logs_hide_routing_key(
    receiver: PagerDutyReceiver,
    pagerduty_fake: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pagerduty_fake.fail_next(503)

    with caplog.at_level(logging.DEBUG):
        delivery_error(receiver)
        deliver(receiver, make_notification("pagerduty-primary"))

    assert caplog.records
    assert ROUTING_KEY not in caplog.text


# One attempt per call and the event size limit


def test_rate_limit_not_retried_by_client(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    pagerduty_fake.fail_next(429, count=2, retry_after_s=3)

    error = delivery_error(receiver)

    assert error.retriable is True
    assert error.retry_after_s == 3.0
    assert len(pagerduty_fake.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_not_retried_by_client(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty, status: int
) -> None:
    pagerduty_fake.fail_next(status, count=3)

    assert delivery_error(receiver).retriable is True
    assert len(pagerduty_fake.requests) == 1


def test_oversized_event_drops_custom_details(
    receiver: PagerDutyReceiver,
    pagerduty_fake: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    labels = {"service": "api", "blob": "x" * (EVENT_MAX_BYTES + 10)}
    notification = make_notification("pagerduty-primary", labels=labels)

    with caplog.at_level(logging.WARNING, logger="handlers.pagerduty"):
        deliver(receiver, notification)

    sent = pagerduty_fake.events[0]["payload"]
    assert len(pagerduty_fake.requests[0].body) <= EVENT_MAX_BYTES
    assert "blob" not in json.dumps(sent)
    assert "over the 524288 byte limit" in sent["custom_details"]["truncated"]
    assert pagerduty_fake.alerts == {INCIDENT_ID: "triggered"}
    assert "pagerduty event over the size limit" in caplog.text


def test_event_under_limit_kept() -> None:
    event = {"event_action": "trigger", "payload": {"summary": "s" * 1000}}

    assert fit_event(event, INCIDENT_ID) is event


def test_event_too_large_without_details_is_permanent() -> None:
    event = {"event_action": "trigger", "payload": {"source": "s" * EVENT_MAX_BYTES}}

    with pytest.raises(DeliveryError) as excinfo:
        fit_event(event, INCIDENT_ID)

    assert excinfo.value.retriable is False
    assert INCIDENT_ID in str(excinfo.value)


# The routing key that triggered an incident


def test_ack_after_key_change_fails(
    receiver: PagerDutyReceiver,
    rotated: PagerDutyReceiver,
    pagerduty_fake: FakePagerDuty,
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))

    with pytest.raises(DeliveryError) as excinfo:
        deliver(rotated, ACKNOWLEDGED, state)

    assert excinfo.value.retriable is False
    assert routing_key_id(ROUTING_KEY) in str(excinfo.value)
    assert routing_key_id(ROTATED_KEY) in str(excinfo.value)
    assert len(pagerduty_fake.requests) == 1
    assert pagerduty_fake.alerts_for(ROTATED_KEY) == {}
    assert pagerduty_fake.alerts_for(ROUTING_KEY) == {INCIDENT_ID: "triggered"}


def test_key_change_error_hides_keys(
    receiver: PagerDutyReceiver, rotated: PagerDutyReceiver
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))

    with pytest.raises(DeliveryError) as excinfo:
        deliver(rotated, RESOLVED, state)

    for key in (ROUTING_KEY, ROTATED_KEY):
        assert key not in str(excinfo.value)
        assert key not in repr(excinfo.value)


def test_escalation_after_key_change_fails(
    receiver: PagerDutyReceiver,
    rotated: PagerDutyReceiver,
    pagerduty_fake: FakePagerDuty,
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))
    escalated = transition(EventKind.ESCALATED, IncidentState.OPEN, 2)

    with pytest.raises(DeliveryError):
        deliver(rotated, escalated, state)

    assert pagerduty_fake.alerts_for(ROTATED_KEY) == {}


def test_resolve_with_same_key_keeps_id(
    receiver: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))
    state = deliver(receiver, ACKNOWLEDGED, state)
    state = deliver(receiver, RESOLVED, state)

    assert state["routing_key_id"] == routing_key_id(ROUTING_KEY)
    assert pagerduty_fake.alerts_for(ROUTING_KEY) == {INCIDENT_ID: "resolved"}


def test_reopen_after_resolve_uses_new_key(
    receiver: PagerDutyReceiver,
    rotated: PagerDutyReceiver,
    pagerduty_fake: FakePagerDuty,
) -> None:
    state = deliver(receiver, make_notification("pagerduty-primary"))
    state = deliver(receiver, RESOLVED, state)
    reopened = transition(EventKind.REOPENED, IncidentState.OPEN, 4)

    state = deliver(rotated, reopened, state)

    assert state["routing_key_id"] == routing_key_id(ROTATED_KEY)
    assert pagerduty_fake.alerts_for(ROTATED_KEY) == {INCIDENT_ID: "triggered"}


def test_state_without_key_id_sends(
    rotated: PagerDutyReceiver, pagerduty_fake: FakePagerDuty
) -> None:
    # State stored before the routing key was recorded.
    state = {"dedup_key": INCIDENT_ID, "last_action": "trigger"}

    deliver(rotated, ACKNOWLEDGED, state)

    assert [e["event_action"] for e in pagerduty_fake.events] == ["acknowledge"]


def test_key_id_hides_routing_key() -> None:
    key_id = routing_key_id(ROUTING_KEY)

    assert len(key_id) == 12
    assert key_id not in ROUTING_KEY
    assert key_id != routing_key_id(ROTATED_KEY)

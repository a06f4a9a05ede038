"""The shared handler kit, run on every receiver type against its test server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from factories import make_notification
from fakes.server import TlsCertificate, create_self_signed_certificate
from handler_kit import TARGETS, Classification, KitTarget, deliver, running_target

from handlers.base import DeliveryError
from handlers.limits import KeyedRateLimiter
from handlers.pagerduty import EVENT_MAX_BYTES, SUMMARY_MAX, fit_event, trigger_payload
from handlers.slack import SECTION_TEXT_MAX, incident_blocks

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    return create_self_signed_certificate(tmp_path_factory.mktemp("kit-tls"))


@pytest.fixture(params=TARGETS)
def target(
    request: pytest.FixtureRequest,
    certificate: TlsCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[KitTarget]:
    with running_target(request.param, certificate, monkeypatch) as running:
        yield running


def failure_of(target: KitTarget, classification: Classification) -> DeliveryError:
    retry_after = 4 if classification.retry_after else None
    target.fail_next(classification.code, retry_after_s=retry_after)
    with pytest.raises(DeliveryError) as excinfo:
        deliver(target.receiver(), target.notification())
    return excinfo.value


# Classification


def test_success_delivers_once(target: KitTarget) -> None:
    deliver(target.receiver(), target.notification())

    assert target.delivered() == 1


def test_failure_codes_classified(target: KitTarget) -> None:
    for classification in target.failures:
        error = failure_of(target, classification)

        assert error.retriable is classification.retriable, classification
        if classification.retry_after:
            assert error.retry_after_s == 4.0, classification
    assert target.delivered() == 0


def test_dropped_connection_is_retriable(target: KitTarget) -> None:
    target.drop_next()

    with pytest.raises(DeliveryError) as excinfo:
        deliver(target.receiver(), target.notification())

    assert excinfo.value.retriable is True
    assert excinfo.value.outcome_unknown is True


def test_slow_response_times_out_retriable(target: KitTarget) -> None:
    target.delay_next(3.0)

    with pytest.raises(DeliveryError) as excinfo:
        deliver(target.receiver(timeout_s=1.0), target.notification())

    assert excinfo.value.retriable is True
    assert excinfo.value.outcome_unknown is True


def test_slow_response_within_timeout_delivers(target: KitTarget) -> None:
    target.delay_next(0.3)

    deliver(target.receiver(timeout_s=5.0), target.notification())

    assert target.delivered() == 1


def test_receiver_recovers_after_failure(target: KitTarget) -> None:
    receiver = target.receiver()
    retriable = next(c for c in target.failures if c.retriable)
    target.fail_next(retriable.code)

    with pytest.raises(DeliveryError):
        deliver(receiver, target.notification())
    deliver(receiver, target.notification())

    assert target.delivered() == 1


# Secrets


def test_no_secret_in_errors_or_logs(
    target: KitTarget, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[DeliveryError] = []
    with caplog.at_level(logging.DEBUG):
        for classification in target.failures:
            errors.append(failure_of(target, classification))
        target.drop_next()
        with pytest.raises(DeliveryError) as excinfo:
            deliver(target.receiver(), target.notification())
        errors.append(excinfo.value)
        deliver(target.receiver(), target.notification())

    assert caplog.records
    for secret in target.secrets:
        assert secret not in caplog.text
        for error in errors:
            assert secret not in str(error), error
            assert secret not in repr(error), error
            assert error.__cause__ is None or secret not in str(error.__cause__)


def test_no_secret_in_repr(target: KitTarget) -> None:
    receiver = target.receiver()

    for secret in target.secrets:
        assert secret not in repr(receiver)
        assert secret not in str(receiver)


# Vendor limits


def test_slack_one_message_per_second_per_channel() -> None:
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = KeyedRateLimiter(1.0, lambda: now[0], sleep)

    async def five_messages() -> None:
        for _ in range(5):
            await limiter.acquire("#oncall")

    asyncio.run(five_messages())

    assert now[0] == pytest.approx(4.0)
    assert all(wait == pytest.approx(1.0) for wait in sleeps)


def test_slack_section_text_cut() -> None:
    blocks = incident_blocks(make_notification(title="x" * 10_000))

    texts = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    assert texts
    assert all(len(text) <= SECTION_TEXT_MAX for text in texts)


def test_pagerduty_summary_cut() -> None:
    payload = trigger_payload(make_notification(title="x" * 10_000))

    assert len(payload["summary"]) == SUMMARY_MAX


def test_pagerduty_event_size_capped() -> None:
    # "€" is one character but three UTF-8 bytes, so this blob is about a
    # third of the limit in characters and over it in bytes.
    blob = "€" * (EVENT_MAX_BYTES // 3 + 1000)
    payload = trigger_payload(make_notification(labels={"blob": blob}))
    event = fit_event({"event_action": "trigger", "payload": payload}, "g1-1")
    body = {"routing_key": "R" * 32, **event}

    for ascii_only in (True, False):
        encoded = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")
        assert len(encoded) <= EVENT_MAX_BYTES
    assert "blob" not in json.dumps(event)

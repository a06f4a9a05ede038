"""WebhookReceiver against the local fake endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from factories import INCIDENT_ID, make_notification
from fakes.webhook import FakeWebhook
from pydantic import SecretStr

from handlers.base import DeliveryError
from handlers.webhook import WebhookReceiver, redacted_url, signature, webhook_body
from streams.notify.delivery import RetryPolicy, deliver_with_retries

SECRET = "webhook-unit-test-secret"

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def endpoint() -> Iterator[FakeWebhook]:
    with FakeWebhook(SECRET) as fake:
        yield fake


def receiver_for(fake: FakeWebhook, secret: str | None = SECRET) -> WebhookReceiver:
    return WebhookReceiver(
        "webhook-ops",
        fake.hook_url,
        headers={"X-Team": "sre"},
        secret=SecretStr(secret) if secret is not None else None,
        timeout_s=5.0,
    )


def test_post_carries_event_and_key(endpoint: FakeWebhook) -> None:
    notification = make_notification("webhook-ops")
    asyncio.run(receiver_for(endpoint).deliver(notification, {}))

    request = endpoint.requests[0]
    body = request.json()
    assert request.headers["Idempotency-Key"] == notification.notification_id
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "sre"
    assert body["incident_id"] == INCIDENT_ID
    assert body["transition"] == "opened"
    assert body["transition_seq"] == 1
    assert body["event"]["title"] == "CPU above 90 %"


def test_signature_is_hmac_of_body(endpoint: FakeWebhook) -> None:
    asyncio.run(receiver_for(endpoint).deliver(make_notification("webhook-ops"), {}))

    request = endpoint.requests[0]
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Tocsin-Signature"] == f"sha256={expected}"
    assert request.status == 200


def test_wrong_secret_rejected_permanently(endpoint: FakeWebhook) -> None:
    receiver = receiver_for(endpoint, secret="not-the-secret")

    with pytest.raises(DeliveryError) as excinfo:
        asyncio.run(receiver.deliver(make_notification("webhook-ops"), {}))

    assert excinfo.value.retriable is False
    assert "HTTP 401" in str(excinfo.value)
    assert endpoint.applied == {}


def test_unsigned_without_secret() -> None:
    with FakeWebhook() as fake:
        receiver = receiver_for(fake, secret=None)
        asyncio.run(receiver.deliver(make_notification("webhook-ops"), {}))

        assert "X-Tocsin-Signature" not in fake.requests[0].headers
        assert len(fake.applied) == 1


def test_lost_response_retry_applied_once(endpoint: FakeWebhook) -> None:
    endpoint.drop_after_next()
    policy = RetryPolicy(max_attempts=3, deadline_s=5.0, initial_s=0.001)

    async def on_attempt(number: int, error: DeliveryError | None) -> None:
        return None

    asyncio.run(
        deliver_with_retries(
            receiver_for(endpoint),
            make_notification("webhook-ops"),
            {},
            policy,
            on_attempt,
        )
    )

    assert len(endpoint.requests) == 2
    assert len(endpoint.applied) == 1
    keys = {request.headers["Idempotency-Key"] for request in endpoint.requests}
    assert len(keys) == 1


def test_body_is_stable_per_notification() -> None:
    notification = make_notification("webhook-ops")

    assert webhook_body(notification) == webhook_body(notification)
    assert json.loads(webhook_body(notification))["version"] == 1


def test_signature_format() -> None:
    assert signature(SecretStr("k"), b"{}") == (
        "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/T0/B0/secret", "https://hooks.example.com"),
        ("http://user:pw@127.0.0.1:8080/x?token=t", "http://127.0.0.1:8080"),
    ],
)
def test_redacted_url_keeps_host(url: str, expected: str) -> None:
    assert redacted_url(url) == expected

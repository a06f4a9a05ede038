"""Drive the real slack-sdk and pagerduty clients against the fakes in tests/fakes.

The tests pin the client behavior that Tocsin relies on: which errors each client
raises, and which failures each one retries. Each test finishes in under two
seconds. The slowest, the Retry-After test, sleeps 1 to 2 s because slack-sdk adds
up to 1 s of jitter to Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pagerduty
import pytest
from fakes.pagerduty import MAX_EVENT_BYTES, FakePagerDuty
from fakes.server import (
    STOP_TIMEOUT_S,
    FakeServer,
    TlsCertificate,
    create_self_signed_certificate,
)
from fakes.slack import FakeSlack
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

SLACK_TOKEN = "xoxb-test-token"
CHANNEL = "C0TEST0001"
ROUTING_KEY = "R" * 32
TS_PATTERN = re.compile(r"^\d{10}\.\d{6}$")
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
FAST_RETRY = FixedValueRetryIntervalCalculator(fixed_internal=0.01)


# Fixtures


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep client traffic on 127.0.0.1.

    slack-sdk reads HTTPS_PROXY and HTTP_PROXY when no proxy is given, and httpx2
    reads them unless trust_env is False.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    return create_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def pagerduty_fake(tls_certificate: TlsCertificate) -> Iterator[FakePagerDuty]:
    with FakePagerDuty(tls=tls_certificate) as fake:
        yield fake


@pytest.fixture
def events_client(
    pagerduty_fake: FakePagerDuty, tls_certificate: TlsCertificate
) -> Iterator[pagerduty.EventsApiV2Client]:
    client = pagerduty.EventsApiV2Client(
        ROUTING_KEY,
        base_url=pagerduty_fake.url,
        verify=tls_certificate.client_context(),
        trust_env=False,
    )
    # pagerduty 7.2.0 sleeps sleep_timer * 2 before the first retry, then doubles it.
    client.sleep_timer = 0.01
    yield client
    client.close()


@pytest.fixture
def raw_client(tls_certificate: TlsCertificate) -> Iterator[httpx2.Client]:
    """Plain HTTP client for events that EventsApiV2Client would not send."""
    with httpx2.Client(
        verify=tls_certificate.client_context(), trust_env=False, timeout=5.0
    ) as client:
        yield client


def slack_client(
    fake: FakeSlack,
    token: str | None = SLACK_TOKEN,
    retry_handlers: list[AsyncRetryHandler] | None = None,
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token, base_url=fake.url + "/api/", retry_handlers=retry_handlers
    )


def response_data(response: AsyncSlackResponse) -> dict[str, Any]:
    assert isinstance(response.data, dict)
    return response.data


def trigger_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "error"},
    }
    event.update(overrides)
    return event


def wait_for_request_count(fake: FakeServer, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(fake.requests) < count and time.monotonic() < deadline:
        time.sleep(0.01)


# FakeServer


def test_server_context_manager_lifecycle() -> None:
    fake = FakeSlack()
    with fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.url)
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url


def test_server_restarts_after_stop() -> None:
    fake = FakeSlack()
    fake.start()
    fake.stop()
    fake.stop()
    fake.start()
    try:
        assert fake.url.startswith("http://127.0.0.1:")
    finally:
        fake.stop()


def test_server_start_twice_raises(slack: FakeSlack) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        slack.start()


def test_server_stop_joins_loop_thread() -> None:
    fake = FakeSlack()
    fake.start()
    loop_threads = [t for t in threading.enumerate() if t.name == "FakeSlack-loop"]
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < STOP_TIMEOUT_S
    assert loop_threads
    assert not any(thread.is_alive() for thread in loop_threads)


def test_server_fault_arguments_validated(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="HTTP error status"):
        slack.fail_next(200)
    with pytest.raises(ValueError, match="count"):
        slack.fail_next(503, count=0)
    with pytest.raises(ValueError, match="negative"):
        slack.delay_next(-1.0)
    with pytest.raises(ValueError, match="count"):
        slack.drop_next(count=0)


def test_server_https_with_tls_certificate(
    tls_certificate: TlsCertificate, raw_client: httpx2.Client
) -> None:
    with FakeSlack(SLACK_TOKEN, tls=tls_certificate) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        response = raw_client.post(
            fake.url + "/api/auth.test",
            headers={"Authorization": f"Bearer {SLACK_TOKEN}"},
        )
    assert response.status_code == 200
    assert response.json()["ok"] is True


# Slack: messages


def test_slack_post_and_update_message(slack: FakeSlack) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = slack_client(slack)
        posted = await client.chat_postMessage(channel=CHANNEL, text="db-1 down")
        updated = await client.chat_update(
            channel=CHANNEL, ts=posted["ts"], text="db-1 recovered"
        )
        return response_data(posted), response_data(updated)

    posted, updated = asyncio.run(scenario())

    assert posted["ok"] is True
    assert posted["channel"] == CHANNEL
    assert TS_PATTERN.match(posted["ts"])
    assert posted["message"]["text"] == "db-1 down"
    assert updated["ok"] is True
    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "db-1 recovered"
    messages = slack.messages
    assert [m["method"] for m in messages] == ["chat.postMessage", "chat.update"]
    assert messages[0]["text"] == "db-1 down"
    assert messages[1]["text"] == "db-1 recovered"
    assert messages[1]["ts"] == posted["ts"]
    current = slack.message(CHANNEL, posted["ts"])
    assert current is not None
    assert current["text"] == "db-1 recovered"


def test_slack_sends_json_with_bearer_token(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).chat_postMessage(channel=CHANNEL, text="hello")

    asyncio.run(scenario())

    request = slack.requests[0]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json() == {"channel": CHANNEL, "text": "hello"}


def test_slack_thread_reply_records_thread_ts(slack: FakeSlack) -> None:
    async def scenario() -> tuple[str, dict[str, Any]]:
        client = slack_client(slack)
        parent = await client.chat_postMessage(channel=CHANNEL, text="incident")
        reply = await client.chat_postMessage(
            channel=CHANNEL, text="paged on-call", thread_ts=parent["ts"]
        )
        return str(parent["ts"]), response_data(reply)

    parent_ts, reply = asyncio.run(scenario())

    assert reply["ts"] != parent_ts
    assert reply["message"]["thread_ts"] == parent_ts
    messages = slack.messages
    assert messages[0]["thread_ts"] is None
    assert messages[1]["thread_ts"] == parent_ts


def test_slack_update_keeps_thread_ts(slack: FakeSlack) -> None:
    async def scenario() -> str:
        client = slack_client(slack)
        parent = await client.chat_postMessage(channel=CHANNEL, text="incident")
        reply = await client.chat_postMessage(
            channel=CHANNEL, text="step 1", thread_ts=parent["ts"]
        )
        await client.chat_update(channel=CHANNEL, ts=reply["ts"], text="step 2")
        return str(parent["ts"])

    parent_ts = asyncio.run(scenario())

    assert slack.messages[-1]["method"] == "chat.update"
    assert slack.messages[-1]["thread_ts"] == parent_ts


def test_slack_ts_unique_under_concurrency(slack: FakeSlack) -> None:
    async def scenario() -> list[str]:
        client = slack_client(slack)
        responses = await asyncio.gather(
            *(
                client.chat_postMessage(channel=CHANNEL, text=f"message {index}")
                for index in range(20)
            )
        )
        return [str(response["ts"]) for response in responses]

    timestamps = asyncio.run(scenario())

    assert len(set(timestamps)) == 20
    assert all(TS_PATTERN.match(ts) for ts in timestamps)
    recorded = [message["ts"] for message in slack.messages]
    assert recorded == sorted(recorded, key=float)


def test_slack_form_encoded_blocks(slack: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*down*"}}]

    async def scenario() -> dict[str, Any]:
        response = await slack_client(slack).api_call(
            "chat.postMessage",
            data={"channel": CHANNEL, "blocks": json.dumps(blocks)},
        )
        return response_data(response)

    posted = asyncio.run(scenario())

    assert posted["ok"] is True
    assert posted["message"]["blocks"] == blocks
    content_type = slack.requests[0].headers["Content-Type"]
    assert content_type.startswith("application/x-www-form-urlencoded")
    assert slack.messages[0]["blocks"] == blocks
    assert slack.messages[0]["text"] is None


def test_slack_form_token_accepted(slack: FakeSlack) -> None:
    async def scenario() -> dict[str, Any]:
        response = await slack_client(slack, token=None).api_call(
            "chat.postMessage",
            data={"token": SLACK_TOKEN, "channel": CHANNEL, "text": "hi"},
        )
        return response_data(response)

    assert asyncio.run(scenario())["ok"] is True
    assert "Authorization" not in slack.requests[0].headers


def test_slack_auth_test_returns_ids(slack: FakeSlack) -> None:
    async def scenario() -> dict[str, Any]:
        response = await slack_client(slack).auth_test()
        return response_data(response)

    identity = asyncio.run(scenario())

    assert identity["ok"] is True
    assert identity["team_id"] == slack.team_id
    assert identity["user_id"] == slack.user_id
    assert identity["bot_id"] == slack.bot_id


# Slack: API errors


def run_slack_error(scenario: Callable[[], Coroutine[Any, Any, None]]) -> Any:
    """Run the coroutine function and return the SlackApiError's response."""
    with pytest.raises(SlackApiError) as exc_info:
        asyncio.run(scenario())
    return exc_info.value.response


def test_slack_invalid_token_raises_invalid_auth(slack: FakeSlack) -> None:
    async def scenario() -> None:
        client = slack_client(slack, token="xoxb-wrong")
        await client.chat_postMessage(channel=CHANNEL, text="hi")

    response = run_slack_error(scenario)

    assert response.status_code == 200
    assert response["ok"] is False
    assert response["error"] == "invalid_auth"
    assert slack.messages == []
    assert len(slack.requests) == 1
    assert slack.requests[0].status == 200


def test_slack_missing_token_raises_not_authed(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack, token=None).auth_test()

    response = run_slack_error(scenario)

    assert response["error"] == "not_authed"
    assert "Authorization" not in slack.requests[0].headers


def test_slack_missing_channel_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).api_call("chat.postMessage", json={"text": "hi"})

    assert run_slack_error(scenario)["error"] == "channel_not_found"
    assert slack.messages == []


def test_slack_unknown_channel_rejected() -> None:
    with FakeSlack(SLACK_TOKEN, channels=[CHANNEL]) as fake:

        async def scenario() -> None:
            await slack_client(fake).chat_postMessage(channel="C0OTHER", text="hi")

        assert run_slack_error(scenario)["error"] == "channel_not_found"


def test_slack_post_without_text_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).chat_postMessage(channel=CHANNEL)

    # slack-sdk warns before sending a message without top-level text.
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        response = run_slack_error(scenario)

    assert response["error"] == "no_text"
    assert slack.messages == []


def test_slack_update_unknown_ts_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).chat_update(
            channel=CHANNEL, ts="1700000000.000001", text="edited"
        )

    assert run_slack_error(scenario)["error"] == "message_not_found"


def test_slack_invalid_blocks_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).api_call(
            "chat.postMessage", data={"channel": CHANNEL, "blocks": "not json"}
        )

    assert run_slack_error(scenario)["error"] == "invalid_blocks_format"


# Slack: injected failures


def test_slack_429_retried_after_delay(slack: FakeSlack) -> None:
    slack.fail_next(429, retry_after_s=1)

    async def scenario() -> dict[str, Any]:
        client = slack_client(
            slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
        )
        response = await client.chat_postMessage(channel=CHANNEL, text="hi")
        return response_data(response)

    started = time.monotonic()
    posted = asyncio.run(scenario())
    elapsed = time.monotonic() - started

    assert posted["ok"] is True
    # In slack-sdk 3.48.0 the handler sleeps Retry-After plus a random 0 to 1 s.
    assert elapsed >= 1.0
    requests = slack.requests
    assert [r.status for r in requests] == [429, 200]
    assert requests[0].fault == "status"
    assert len(slack.messages) == 1


def test_slack_rate_limit_without_handler_raises(slack: FakeSlack) -> None:
    slack.fail_next(429, retry_after_s=30)

    async def scenario() -> None:
        await slack_client(slack).chat_postMessage(channel=CHANNEL, text="hi")

    response = run_slack_error(scenario)

    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "30"
    assert slack.messages == []


def test_slack_server_error_raises_without_handler(slack: FakeSlack) -> None:
    slack.fail_next(500)

    async def scenario() -> None:
        await slack_client(slack).chat_postMessage(channel=CHANNEL, text="hi")

    response = run_slack_error(scenario)

    assert response.status_code == 500
    assert response["error"] == "internal_error"


def test_slack_server_error_retried_by_handler(slack: FakeSlack) -> None:
    slack.fail_next(503)

    async def scenario() -> dict[str, Any]:
        handler = AsyncServerErrorRetryHandler(interval_calculator=FAST_RETRY)
        client = slack_client(slack, retry_handlers=[handler])
        response = await client.chat_postMessage(channel=CHANNEL, text="hi")
        return response_data(response)

    assert asyncio.run(scenario())["ok"] is True
    assert [r.status for r in slack.requests] == [503, 200]


def test_slack_dropped_connection_retried_by_handler(slack: FakeSlack) -> None:
    slack.drop_next()

    async def scenario() -> dict[str, Any]:
        handler = AsyncConnectionErrorRetryHandler(interval_calculator=FAST_RETRY)
        client = slack_client(slack, retry_handlers=[handler])
        response = await client.chat_postMessage(channel=CHANNEL, text="hi")
        return response_data(response)

    assert asyncio.run(scenario())["ok"] is True
    requests = slack.requests
    assert [r.status for r in requests] == [None, 200]
    assert requests[0].fault == "drop"
    assert len(slack.messages) == 1


def test_slack_dropped_connection_raises_aiohttp_error(slack: FakeSlack) -> None:
    slack.drop_next()

    async def scenario() -> None:
        client = slack_client(slack, retry_handlers=[])
        await client.chat_postMessage(channel=CHANNEL, text="hi")

    # slack-sdk lets the aiohttp error through instead of wrapping it.
    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(scenario())
    assert slack.messages == []


def test_slack_delayed_response_succeeds(slack: FakeSlack) -> None:
    slack.delay_next(0.3)

    async def scenario() -> dict[str, Any]:
        response = await slack_client(slack).auth_test()
        return response_data(response)

    started = time.monotonic()
    identity = asyncio.run(scenario())

    assert identity["ok"] is True
    assert time.monotonic() - started >= 0.3
    assert slack.requests[0].fault == "delay"


def test_slack_faults_apply_in_queue_order(slack: FakeSlack) -> None:
    slack.fail_next(503)
    slack.drop_next()

    async def scenario() -> list[str]:
        client = slack_client(slack, retry_handlers=[])
        outcomes: list[str] = []
        for _ in range(3):
            try:
                await client.auth_test()
                outcomes.append("ok")
            except SlackApiError as exc:
                outcomes.append(f"status {exc.response.status_code}")
            except aiohttp.ServerDisconnectedError:
                outcomes.append("disconnected")
        return outcomes

    assert asyncio.run(scenario()) == ["status 503", "disconnected", "ok"]


# PagerDuty: alert lifecycle


def test_pagerduty_client_rejects_http_base_url(pagerduty_fake: FakePagerDuty) -> None:
    http_url = pagerduty_fake.url.replace("https://", "http://")
    with pytest.raises(pagerduty.UrlError, match="https"):
        pagerduty.EventsApiV2Client(ROUTING_KEY, base_url=http_url)


def test_pagerduty_trigger_acknowledge_resolve(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    dedup_key = "db-1/disk-full"

    returned = events_client.trigger("disk full", "db-1", dedup_key=dedup_key)
    assert returned == dedup_key
    assert pagerduty_fake.alerts == {dedup_key: "triggered"}

    assert events_client.acknowledge(dedup_key) == dedup_key
    assert pagerduty_fake.alerts == {dedup_key: "acknowledged"}

    assert events_client.resolve(dedup_key) == dedup_key
    assert pagerduty_fake.alerts == {dedup_key: "resolved"}

    events = pagerduty_fake.events
    assert [e["event_action"] for e in events] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert all(e["routing_key"] == ROUTING_KEY for e in events)
    assert events[0]["payload"] == {
        "summary": "disk full",
        "source": "db-1",
        "severity": "critical",
    }
    assert pagerduty_fake.alerts_for(ROUTING_KEY) == {dedup_key: "resolved"}
    assert pagerduty_fake.alerts_for("other-key") == {}


def test_pagerduty_response_is_202_with_dedup_key(
    pagerduty_fake: FakePagerDuty, raw_client: httpx2.Client
) -> None:
    response = raw_client.post(
        pagerduty_fake.url + "/v2/enqueue", json=trigger_event(dedup_key="k1")
    )

    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "k1",
    }


def test_pagerduty_trigger_generates_dedup_key(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    first = events_client.trigger("disk full", "db-1")
    second = events_client.trigger("disk full", "db-1")

    assert first
    assert second
    assert first != second
    assert pagerduty_fake.alerts == {first: "triggered", second: "triggered"}
    assert [e["dedup_key"] for e in pagerduty_fake.events] == [first, second]


def test_pagerduty_drops_events_for_closed_alerts(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    # PagerDuty accepts these events with 202 but applies them to nothing.
    assert events_client.acknowledge("never-triggered") == "never-triggered"
    assert events_client.resolve("never-triggered") == "never-triggered"
    assert pagerduty_fake.alerts == {}

    events_client.trigger("disk full", "db-1", dedup_key="k1")
    events_client.resolve("k1")
    events_client.acknowledge("k1")
    assert pagerduty_fake.alerts == {"k1": "resolved"}
    assert len(pagerduty_fake.events) == 5


def test_pagerduty_trigger_deduplicates_open_alert(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    events_client.trigger("disk full", "db-1", dedup_key="k1")
    events_client.acknowledge("k1")
    events_client.trigger("disk still full", "db-1", dedup_key="k1")
    assert pagerduty_fake.alerts == {"k1": "acknowledged"}

    events_client.resolve("k1")
    events_client.trigger("disk full again", "db-1", dedup_key="k1")
    assert pagerduty_fake.alerts == {"k1": "triggered"}


def test_pagerduty_ignores_other_routing_key(
    pagerduty_fake: FakePagerDuty, raw_client: httpx2.Client
) -> None:
    url = pagerduty_fake.url + "/v2/enqueue"
    raw_client.post(url, json=trigger_event(dedup_key="k1"))
    response = raw_client.post(
        url,
        json={"routing_key": "S" * 32, "event_action": "resolve", "dedup_key": "k1"},
    )

    assert response.status_code == 202
    assert pagerduty_fake.alerts_for(ROUTING_KEY) == {"k1": "triggered"}
    assert pagerduty_fake.alerts_for("S" * 32) == {}


def test_pagerduty_acknowledge_requires_dedup_key(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    with pytest.raises(ValueError, match="dedup_key"):
        events_client.send_event("acknowledge")
    assert pagerduty_fake.requests == []


# PagerDuty: validation


def test_pagerduty_bad_severity_raises_http_error(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    with pytest.raises(pagerduty.HttpError) as exc_info:
        events_client.trigger("disk full", "db-1", severity="fatal")

    error = exc_info.value
    # A 4xx response raises the HttpError base class, not ServerHttpError.
    assert type(error) is pagerduty.HttpError
    assert error.response is not None
    assert error.response.status_code == 400
    body = error.response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any("payload.severity" in message for message in body["errors"])
    # The client does not retry a 400.
    assert len(pagerduty_fake.requests) == 1
    assert pagerduty_fake.events == []


INVALID_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("routing key missing", {"routing_key": None}, "'routing_key'"),
    ("routing key empty", {"routing_key": ""}, "'routing_key'"),
    ("unknown action", {"event_action": "escalate"}, "'event_action'"),
    (
        "acknowledge without dedup key",
        {"event_action": "acknowledge", "payload": None},
        "'dedup_key' is required",
    ),
    (
        "resolve without dedup key",
        {"event_action": "resolve", "payload": None},
        "'dedup_key' is required",
    ),
    ("dedup key too long", {"dedup_key": "k" * 256}, "'dedup_key' is 256"),
    ("dedup key not a string", {"dedup_key": 42}, "'dedup_key' must be a string"),
    ("payload missing", {"payload": None}, "'payload' is required"),
    (
        "summary too long",
        {"payload": {"summary": "s" * 1025, "source": "db-1", "severity": "info"}},
        "'payload.summary' is 1025",
    ),
    (
        "summary missing",
        {"payload": {"source": "db-1", "severity": "info"}},
        "'payload.summary'",
    ),
    (
        "source missing",
        {"payload": {"summary": "disk full", "severity": "info"}},
        "'payload.source'",
    ),
    (
        "severity missing",
        {"payload": {"summary": "disk full", "source": "db-1"}},
        "'payload.severity'",
    ),
    ("image without src", {"images": [{"href": "https://x"}]}, "'images[0].src'"),
    ("link without href", {"links": [{"text": "runbook"}]}, "'links[0].href'"),
]


@pytest.mark.parametrize(
    ("overrides", "expected_error"),
    [(overrides, expected) for _, overrides, expected in INVALID_EVENTS],
    ids=[case_id for case_id, _, _ in INVALID_EVENTS],
)
def test_pagerduty_rejects_invalid_event(
    pagerduty_fake: FakePagerDuty,
    raw_client: httpx2.Client,
    overrides: dict[str, Any],
    expected_error: str,
) -> None:
    event = {
        key: value
        for key, value in trigger_event(**overrides).items()
        if value is not None
    }

    response = raw_client.post(pagerduty_fake.url + "/v2/enqueue", json=event)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert any(expected_error in message for message in body["errors"])
    assert pagerduty_fake.events == []
    assert pagerduty_fake.alerts == {}


def test_pagerduty_accepts_values_at_limits(
    pagerduty_fake: FakePagerDuty, raw_client: httpx2.Client
) -> None:
    event = trigger_event(
        routing_key="short-key",
        dedup_key="k" * 255,
        payload={"summary": "s" * 1024, "source": "db-1", "severity": "info"},
    )

    response = raw_client.post(pagerduty_fake.url + "/v2/enqueue", json=event)

    assert response.status_code == 202
    assert pagerduty_fake.alerts == {"k" * 255: "triggered"}


@pytest.mark.parametrize(
    ("body", "expected_error"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
    ],
    ids=["malformed", "array"],
)
def test_pagerduty_rejects_non_object_body(
    pagerduty_fake: FakePagerDuty,
    raw_client: httpx2.Client,
    body: bytes,
    expected_error: str,
) -> None:
    response = raw_client.post(
        pagerduty_fake.url + "/v2/enqueue",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert any(expected_error in message for message in response.json()["errors"])


def test_pagerduty_rejects_body_over_512_kb(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    details = {"log": "x" * MAX_EVENT_BYTES}

    with pytest.raises(pagerduty.HttpError) as exc_info:
        events_client.trigger("disk full", "db-1", custom_details=details)

    assert exc_info.value.response is not None
    assert exc_info.value.response.status_code == 400
    errors = exc_info.value.response.json()["errors"]
    assert any("over the 524288 limit" in message for message in errors)
    assert pagerduty_fake.events == []


# PagerDuty: injected failures


def test_pagerduty_503_once_retried(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    pagerduty_fake.fail_next(503)

    assert events_client.trigger("disk full", "db-1", dedup_key="k1") == "k1"

    assert [r.status for r in pagerduty_fake.requests] == [503, 202]
    assert pagerduty_fake.alerts == {"k1": "triggered"}
    assert len(pagerduty_fake.events) == 1


def test_pagerduty_500_past_retry_limit_raises(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    # EventsApiV2Client sets retry[500] = 2, so the third 500 is returned and
    # successful_response raises on it.
    pagerduty_fake.fail_next(500, count=3)

    with pytest.raises(pagerduty.ServerHttpError) as exc_info:
        events_client.trigger("disk full", "db-1", dedup_key="k1")

    assert exc_info.value.response is not None
    assert exc_info.value.response.status_code == 500
    assert [r.status for r in pagerduty_fake.requests] == [500, 500, 500]
    assert pagerduty_fake.alerts == {}


def test_pagerduty_429_retried_without_limit(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    # Status 429 has no entry in client.retry, and ApiClient.request retries it
    # without any limit, doubling its sleep each time and ignoring Retry-After.
    pagerduty_fake.fail_next(429, count=4, retry_after_s=60)

    started = time.monotonic()
    assert events_client.trigger("disk full", "db-1", dedup_key="k1") == "k1"

    assert time.monotonic() - started < 2.0
    assert [r.status for r in pagerduty_fake.requests] == [429, 429, 429, 429, 202]
    assert pagerduty_fake.alerts == {"k1": "triggered"}


def test_pagerduty_dropped_connection_retried(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    pagerduty_fake.drop_next()

    assert events_client.trigger("disk full", "db-1", dedup_key="k1") == "k1"

    requests = pagerduty_fake.requests
    assert [r.status for r in requests] == [None, 202]
    assert requests[0].fault == "drop"
    assert len(pagerduty_fake.events) == 1


def test_pagerduty_dropped_connections_exhaust_attempts(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    # max_network_attempts = 3 means three retries, so four requests in all.
    pagerduty_fake.drop_next(count=4)

    with pytest.raises(pagerduty.Error, match="Non-transient network error"):
        events_client.trigger("disk full", "db-1", dedup_key="k1")

    assert len(pagerduty_fake.requests) == 4
    assert pagerduty_fake.events == []


def test_pagerduty_timeout_retry_duplicates_event(
    pagerduty_fake: FakePagerDuty, events_client: pagerduty.EventsApiV2Client
) -> None:
    # The delayed request still reaches the fake after the client gave up on
    # it, so PagerDuty would see the event twice, and the dedup_key merges them.
    # httpx2 takes a float timeout, although pagerduty's attribute is typed int.
    events_client.timeout = 0.2  # type: ignore[assignment]
    pagerduty_fake.delay_next(0.5)

    assert events_client.trigger("disk full", "db-1", dedup_key="k1") == "k1"
    wait_for_request_count(pagerduty_fake, 2, timeout_s=2.0)

    requests = pagerduty_fake.requests
    assert len(requests) == 2
    assert sorted(r.fault or "none" for r in requests) == ["delay", "none"]
    assert len(pagerduty_fake.events) == 2
    assert pagerduty_fake.alerts == {"k1": "triggered"}


def test_pagerduty_fake_records_rejected_requests(
    pagerduty_fake: FakePagerDuty, raw_client: httpx2.Client
) -> None:
    url = pagerduty_fake.url + "/v2/enqueue"
    raw_client.post(url, json=trigger_event(event_action="escalate"))
    raw_client.post(url, json=trigger_event(dedup_key="k1"))

    requests = pagerduty_fake.requests
    assert [r.status for r in requests] == [400, 202]
    assert requests[0].json()["event_action"] == "escalate"
    assert requests[0].path == "/v2/enqueue"
    assert len(pagerduty_fake.events) == 1


def test_slack_state_read_across_threads(slack: FakeSlack) -> None:
    counts: list[int] = []
    stop_reading = threading.Event()

    def read_until_stopped() -> None:
        deadline = time.monotonic() + 5.0
        while not stop_reading.is_set() and time.monotonic() < deadline:
            counts.append(len(slack.messages))
            time.sleep(0.001)

    async def scenario() -> None:
        client = slack_client(slack)
        for index in range(10):
            await client.chat_postMessage(channel=CHANNEL, text=f"message {index}")

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        asyncio.run(scenario())
    finally:
        stop_reading.set()
        reader.join(timeout=5.0)

    assert not reader.is_alive()
    assert counts == sorted(counts)
    assert len(slack.messages) == 10


def test_tls_certificate_files_written(tls_certificate: TlsCertificate) -> None:
    assert Path(tls_certificate.cert_path).read_text().startswith("-----BEGIN")
    assert Path(tls_certificate.key_path).exists()


# Slack message metadata, history, replies and channel IDs

METADATA = {"event_type": "tocsin_notification", "event_payload": {"key": "k1"}}


def test_slack_history_returns_metadata_on_request(slack: FakeSlack) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        client = slack_client(slack)
        await client.chat_postMessage(channel=CHANNEL, text="a", metadata=METADATA)
        plain = await client.conversations_history(channel=CHANNEL)
        full = await client.conversations_history(
            channel=CHANNEL, include_all_metadata=True
        )
        return response_data(plain), response_data(full)

    plain, full = asyncio.run(scenario())

    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == METADATA


def test_slack_history_newest_first_without_replies(slack: FakeSlack) -> None:
    async def scenario() -> dict[str, Any]:
        client = slack_client(slack)
        first = await client.chat_postMessage(channel=CHANNEL, text="first")
        await client.chat_postMessage(channel=CHANNEL, text="second")
        await client.chat_postMessage(
            channel=CHANNEL, text="reply", thread_ts=first["ts"]
        )
        return response_data(await client.conversations_history(channel=CHANNEL))

    history = asyncio.run(scenario())

    assert [m["text"] for m in history["messages"]] == ["second", "first"]
    assert history["has_more"] is False


def test_slack_history_honours_oldest(slack: FakeSlack) -> None:
    async def scenario() -> dict[str, Any]:
        client = slack_client(slack)
        first = await client.chat_postMessage(channel=CHANNEL, text="first")
        await client.chat_postMessage(channel=CHANNEL, text="second")
        return response_data(
            await client.conversations_history(channel=CHANNEL, oldest=first["ts"])
        )

    assert [m["text"] for m in asyncio.run(scenario())["messages"]] == ["second"]


def test_slack_replies_parent_first(slack: FakeSlack) -> None:
    async def scenario() -> dict[str, Any]:
        client = slack_client(slack)
        parent = await client.chat_postMessage(channel=CHANNEL, text="parent")
        for text in ("one", "two"):
            await client.chat_postMessage(
                channel=CHANNEL, text=text, thread_ts=parent["ts"], metadata=METADATA
            )
        return response_data(
            await client.conversations_replies(
                channel=CHANNEL, ts=parent["ts"], include_all_metadata=True
            )
        )

    replies = asyncio.run(scenario())

    assert [m["text"] for m in replies["messages"]] == ["parent", "one", "two"]
    assert replies["messages"][1]["metadata"] == METADATA


def test_slack_replies_unknown_thread_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).conversations_replies(channel=CHANNEL, ts="1.0")

    with pytest.raises(SlackApiError) as excinfo:
        asyncio.run(scenario())

    assert excinfo.value.response["error"] == "thread_not_found"


def test_slack_invalid_metadata_rejected(slack: FakeSlack) -> None:
    async def scenario() -> None:
        await slack_client(slack).chat_postMessage(
            channel=CHANNEL, text="a", metadata={"event_type": "x"}
        )

    with pytest.raises(SlackApiError) as excinfo:
        asyncio.run(scenario())

    assert excinfo.value.response["error"] == "invalid_metadata_format"
    assert slack.messages == []


def test_slack_channel_ids_stored_and_listed() -> None:
    async def scenario(fake: FakeSlack) -> tuple[Any, Any, Any]:
        client = slack_client(fake)
        posted = await client.chat_postMessage(channel="#oncall", text="a")
        listed = await client.conversations_list(limit=1)
        following = await client.conversations_list(
            limit=1, cursor=listed["response_metadata"]["next_cursor"]
        )
        return response_data(posted), response_data(listed), response_data(following)

    ids = {"oncall": "C0ONCALL001", "ml": "C0MLTEAM002"}
    with FakeSlack(SLACK_TOKEN, channel_ids=ids) as fake:
        posted, listed, following = asyncio.run(scenario(fake))

    assert posted["channel"] == "C0ONCALL001"
    assert [c["name"] for c in listed["channels"]] == ["ml"]
    assert [c["name"] for c in following["channels"]] == ["oncall"]
    assert following["response_metadata"]["next_cursor"] == ""


def test_slack_channel_name_gets_id(slack: FakeSlack) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        client = slack_client(slack)
        posted = await client.chat_postMessage(channel="#oncall", text="a")
        updated = await client.chat_update(channel="#oncall", ts=posted["ts"], text="b")
        listed = await client.conversations_list()
        return response_data(posted), response_data(updated), response_data(listed)

    posted, updated, listed = asyncio.run(scenario())

    assert re.fullmatch(r"C[A-Z0-9]{10}", posted["channel"])
    assert posted["channel"] == slack.channel_id("#oncall")
    assert updated["channel"] == posted["channel"]
    assert listed["channels"][0]["id"] == posted["channel"]
    assert listed["channels"][0]["name"] == "oncall"


def test_slack_history_rejects_channel_name() -> None:
    async def scenario(fake: FakeSlack) -> None:
        await slack_client(fake).conversations_history(channel="#oncall")

    with (
        FakeSlack(SLACK_TOKEN, channel_ids={"oncall": "C0ONCALL001"}) as fake,
        pytest.raises(SlackApiError) as excinfo,
    ):
        asyncio.run(scenario(fake))

    assert excinfo.value.response["error"] == "channel_not_found"


def test_server_drop_after_applies_request(slack: FakeSlack) -> None:
    slack.drop_after_next()

    async def scenario() -> None:
        client = slack_client(slack, retry_handlers=[])
        await client.chat_postMessage(channel=CHANNEL, text="a")

    with pytest.raises(aiohttp.ClientError):
        asyncio.run(scenario())

    assert len(slack.messages) == 1
    assert slack.requests[0].status is None
    assert slack.requests[0].fault == "drop_after"

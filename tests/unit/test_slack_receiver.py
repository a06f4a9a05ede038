"""SlackReceiver against the local fake Slack Web API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from factories import make_notification
from fakes.slack import FakeSlack
from pydantic import SecretStr

from handlers.base import DeliveryError
from handlers.slack import SlackReceiver
from schemas.records import EventKind, IncidentState, Notification

TOKEN = "xoxb-unit-test-token"
CHANNEL = "#oncall"

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN) as fake:
        yield fake


def receiver_for(fake: FakeSlack, token: str = TOKEN) -> SlackReceiver:
    return SlackReceiver(
        "slack-oncall", CHANNEL, SecretStr(token), fake.url + "/api/", timeout_s=5.0
    )


def deliver(
    receiver: SlackReceiver, notification: Notification, state: dict[str, Any]
) -> dict[str, Any]:
    return asyncio.run(receiver.deliver(notification, state))


def delivery_error(receiver: SlackReceiver) -> DeliveryError:
    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, make_notification(), {})
    return excinfo.value


def acknowledged() -> Notification:
    return make_notification(
        kind=EventKind.ACKNOWLEDGED,
        seq=2,
        state=IncidentState.ACKNOWLEDGED,
        actor="alice via slack",
    )


def action_ids(blocks: list[dict[str, Any]] | None) -> list[str]:
    actions = [block for block in blocks or [] if block["type"] == "actions"]
    return [element["action_id"] for block in actions for element in block["elements"]]


def test_first_notification_posts_message(slack: FakeSlack) -> None:
    state = deliver(receiver_for(slack), make_notification(), {})

    messages = slack.messages
    assert [m["method"] for m in messages] == ["chat.postMessage"]
    assert state == {"ts": messages[0]["ts"], "channel": CHANNEL}


def test_open_message_has_both_buttons(slack: FakeSlack) -> None:
    deliver(receiver_for(slack), make_notification(), {})

    assert action_ids(slack.messages[0]["blocks"]) == [
        "tocsin_acknowledge",
        "tocsin_resolve",
    ]


def test_later_notification_updates_message(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})

    deliver(receiver, acknowledged(), state)

    current = slack.message(CHANNEL, state["ts"])
    assert current is not None
    assert current["method"] == "chat.update"
    assert action_ids(current["blocks"]) == ["tocsin_resolve"]


def test_later_notification_keeps_state(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})

    assert deliver(receiver, acknowledged(), state) == state


def test_transition_replied_in_thread(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})

    deliver(receiver, acknowledged(), state)

    reply = slack.messages[-1]
    assert [m["method"] for m in slack.messages] == [
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
    ]
    assert reply["thread_ts"] == state["ts"]
    assert (reply["text"] or "").startswith("acknowledged by alice via slack")


def test_resolved_message_has_no_buttons(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})
    resolved = make_notification(
        kind=EventKind.RESOLVED, seq=3, state=IncidentState.RESOLVED
    )

    deliver(receiver, resolved, state)

    current = slack.message(CHANNEL, state["ts"])
    assert current is not None
    assert action_ids(current["blocks"]) == []


def test_rate_limit_retriable_with_retry_after(slack: FakeSlack) -> None:
    slack.fail_next(429, retry_after_s=7)

    error = delivery_error(receiver_for(slack))

    assert error.retriable is True
    assert error.retry_after_s == 7.0


def test_server_error_is_retriable(slack: FakeSlack) -> None:
    slack.fail_next(503)

    assert delivery_error(receiver_for(slack)).retriable is True


def test_dropped_connection_is_retriable(slack: FakeSlack) -> None:
    slack.drop_next()

    assert delivery_error(receiver_for(slack)).retriable is True


def test_invalid_auth_is_permanent(slack: FakeSlack) -> None:
    error = delivery_error(receiver_for(slack, token="xoxb-wrong-token"))

    assert error.retriable is False
    assert "invalid_auth" in str(error)


def test_unknown_channel_is_permanent() -> None:
    with FakeSlack(TOKEN, channels={"#other"}) as fake:
        error = delivery_error(receiver_for(fake))

    assert error.retriable is False
    assert "channel_not_found" in str(error)


def test_failed_request_not_retried_by_client(slack: FakeSlack) -> None:
    slack.fail_next(503)

    delivery_error(receiver_for(slack))

    assert len(slack.requests) == 1


def test_repr_hides_token(slack: FakeSlack) -> None:
    assert TOKEN not in repr(receiver_for(slack))


def test_error_hides_token(slack: FakeSlack) -> None:
    wrong = "xoxb-wrong-token"
    error = delivery_error(receiver_for(slack, token=wrong))

    assert wrong not in str(error)
    assert wrong not in repr(error)


def test_logs_hide_token(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    slack.fail_next(429, retry_after_s=1)
    receiver = receiver_for(slack)

    with caplog.at_level(logging.DEBUG):
        delivery_error(receiver)
        deliver(receiver, make_notification(), {})

    assert caplog.records
    assert TOKEN not in caplog.text

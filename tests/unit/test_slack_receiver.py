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
from handlers.limits import KeyedRateLimiter
from handlers.slack import METADATA_EVENT_TYPE, SlackReceiver
from schemas.records import EventKind, IncidentState, Notification
from streams.notify.delivery import RetryPolicy, deliver_with_retries

TOKEN = "xoxb-unit-test-token"
CHANNEL = "#oncall"

pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN) as fake:
        yield fake


def receiver_for(
    fake: FakeSlack, token: str = TOKEN, limiter: KeyedRateLimiter | None = None
) -> SlackReceiver:
    """Build a receiver whose channel limiter does not wait unless one is given."""
    return SlackReceiver(
        "slack-oncall",
        CHANNEL,
        SecretStr(token),
        fake.url + "/api/",
        timeout_s=5.0,
        limiter=limiter or KeyedRateLimiter(0.0),
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
    assert state == {"ts": messages[0]["ts"], "channel": slack.channel_id(CHANNEL)}


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


def message_update(kind: EventKind = EventKind.ESCALATED) -> Notification:
    """Return a transition that targets other receivers, for the message only."""
    notification = make_notification(kind=kind, seq=3, level=1)
    return notification.model_copy(update={"message_update": True})


def test_message_update_edits_posted_message(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})

    after = deliver(receiver, message_update(), state)

    assert after == state
    methods = [m["method"] for m in slack.messages]
    assert methods == ["chat.postMessage", "chat.update", "chat.postMessage"]
    current = slack.message(CHANNEL, state["ts"])
    assert current is not None
    assert current["method"] == "chat.update"


def test_message_update_replies_in_thread(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})
    update = message_update()

    deliver(receiver, update, state)

    reply = slack.messages[-1]
    assert reply["thread_ts"] == state["ts"]
    assert (reply["text"] or "").startswith("escalated by")
    assert reply["metadata"] is not None
    assert reply["metadata"]["event_payload"] == {"key": update.notification_id}
    assert update.notification_id == "g1-1:3:slack-oncall"


def test_message_update_without_post_sends_nothing(slack: FakeSlack) -> None:
    state = deliver(receiver_for(slack), message_update(), {})

    assert state == {}
    assert slack.requests == []


# Idempotent retries and channel limits


def root_posts(fake: FakeSlack) -> list[Any]:
    return [
        m
        for m in fake.messages
        if m["method"] == "chat.postMessage" and m["thread_ts"] is None
    ]


def test_post_carries_notification_id(slack: FakeSlack) -> None:
    notification = make_notification()
    deliver(receiver_for(slack), notification, {})

    metadata = slack.messages[0]["metadata"]
    assert metadata is not None
    assert metadata["event_type"] == METADATA_EVENT_TYPE
    assert metadata["event_payload"] == {"key": notification.notification_id}


def test_dropped_post_not_posted_twice(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    notification = make_notification()
    slack.drop_after_next()

    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, notification, {})
    state = deliver(receiver, notification, {})

    assert excinfo.value.retriable is True
    assert excinfo.value.outcome_unknown is True
    posts = root_posts(slack)
    assert len(posts) == 1
    assert state == {"ts": posts[0]["ts"], "channel": slack.channel_id(CHANNEL)}


def test_retry_after_lost_response_reuses_message(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    notification = make_notification()
    slack.drop_after_next()
    policy = RetryPolicy(max_attempts=3, deadline_s=5.0, initial_s=0.001)

    async def on_attempt(number: int, error: DeliveryError | None) -> None:
        return None

    state = asyncio.run(
        deliver_with_retries(receiver, notification, {}, policy, on_attempt)
    )

    posts = root_posts(slack)
    assert len(posts) == 1
    assert state["ts"] == posts[0]["ts"]
    paths = [request.path for request in slack.requests]
    assert paths == [
        "/api/chat.postMessage",
        "/api/conversations.list",
        "/api/conversations.history",
    ]


def test_dropped_post_never_landed_is_posted(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    slack.drop_next()

    with pytest.raises(DeliveryError):
        deliver(receiver, make_notification(), {})
    state = deliver(receiver, make_notification(), {})

    posts = root_posts(slack)
    assert len(posts) == 1
    assert state["ts"] == posts[0]["ts"]


def test_dropped_thread_reply_not_repeated(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})
    # The update passes and the reply posts, but its response is lost.
    slack.delay_next(0.0)
    slack.drop_after_next()

    with pytest.raises(DeliveryError):
        deliver(receiver, acknowledged(), state)
    deliver(receiver, acknowledged(), state)

    replies = [m for m in slack.messages if m["thread_ts"] == state["ts"]]
    assert len(replies) == 1
    assert "/api/conversations.replies" in [r.path for r in slack.requests]


def test_post_of_stopped_worker_found(slack: FakeSlack) -> None:
    # One receiver posts and stops before its response, and a new one
    # takes over.
    notification = make_notification()
    posted = deliver(receiver_for(slack), notification, {})
    successor = receiver_for(slack)
    successor.assume_outcome_unknown(notification.notification_id)

    state = deliver(successor, notification, {})

    assert len(root_posts(slack)) == 1
    assert state["ts"] == posted["ts"]
    assert "/api/conversations.history" in [r.path for r in slack.requests]


def test_first_try_reads_no_history(slack: FakeSlack) -> None:
    receiver = receiver_for(slack)
    state = deliver(receiver, make_notification(), {})
    deliver(receiver, acknowledged(), state)

    paths = {request.path for request in slack.requests}
    assert "/api/conversations.history" not in paths
    assert "/api/conversations.replies" not in paths


class FakeTime:
    """A clock that only the injected sleep advances."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_messages_spaced_per_channel(slack: FakeSlack) -> None:
    fake_time = FakeTime()
    limiter = KeyedRateLimiter(1.0, fake_time.clock, fake_time.sleep)
    receiver = receiver_for(slack, limiter=limiter)

    state = deliver(receiver, make_notification(), {})
    deliver(receiver, acknowledged(), state)

    # Post, then update and reply: two waits of one interval each.
    assert fake_time.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]


def test_channel_name_and_id_share_limit(slack: FakeSlack) -> None:
    fake_time = FakeTime()
    limiter = KeyedRateLimiter(1.0, fake_time.clock, fake_time.sleep)
    by_name = receiver_for(slack, limiter=limiter)
    by_id = SlackReceiver(
        "slack-oncall-id",
        slack.channel_id(CHANNEL),
        SecretStr(TOKEN),
        slack.url + "/api/",
        timeout_s=5.0,
        limiter=limiter,
    )

    deliver(by_name, make_notification(), {})
    deliver(by_id, make_notification(seq=2), {})

    # The second post names the channel by the ID Slack returned for the first.
    assert fake_time.sleeps == [pytest.approx(1.0)]


def test_rate_limit_holds_channel(slack: FakeSlack) -> None:
    fake_time = FakeTime()
    limiter = KeyedRateLimiter(0.0, fake_time.clock, fake_time.sleep)
    receiver = receiver_for(slack, limiter=limiter)
    slack.fail_next(429, retry_after_s=7)

    with pytest.raises(DeliveryError):
        deliver(receiver, make_notification(), {})
    deliver(receiver, make_notification(), {})

    assert fake_time.sleeps == [pytest.approx(7.0)]
    assert len(root_posts(slack)) == 1


# Channel names and IDs, with the fake storing messages by ID as Slack does

CHANNEL_IDS = {"oncall": "C0ONCALL001", "ml": "C0MLTEAM002"}


def test_lost_first_post_found_by_channel_name() -> None:
    with FakeSlack(TOKEN, channel_ids=CHANNEL_IDS) as fake:
        receiver = receiver_for(fake)
        fake.drop_after_next()

        with pytest.raises(DeliveryError):
            deliver(receiver, make_notification(), {})
        state = deliver(receiver, make_notification(), {})

        posts = root_posts(fake)
        paths = [request.path for request in fake.requests]

    assert len(posts) == 1
    assert state == {"ts": posts[0]["ts"], "channel": "C0ONCALL001"}
    assert paths == [
        "/api/chat.postMessage",
        "/api/conversations.list",
        "/api/conversations.history",
    ]


def test_channel_id_needs_no_listing() -> None:
    with FakeSlack(TOKEN, channel_ids=CHANNEL_IDS) as fake:
        receiver = SlackReceiver(
            "slack-oncall",
            "C0ONCALL001",
            SecretStr(TOKEN),
            fake.url + "/api/",
            timeout_s=5.0,
            limiter=KeyedRateLimiter(0.0),
        )
        fake.drop_after_next()

        with pytest.raises(DeliveryError):
            deliver(receiver, make_notification(), {})
        deliver(receiver, make_notification(), {})

        paths = [request.path for request in fake.requests]
        posts = root_posts(fake)

    assert "/api/conversations.list" not in paths
    assert len(posts) == 1


def test_rejected_listing_posts_again_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without a channel ID the history cannot be read, so the post is repeated.
    with FakeSlack(TOKEN, channel_ids=CHANNEL_IDS) as fake:
        receiver = receiver_for(fake)
        fake.drop_after_next()
        fake.fail_next(403)
        with pytest.raises(DeliveryError):
            deliver(receiver, make_notification(), {})

        with caplog.at_level(logging.WARNING, logger="handlers.slack"):
            deliver(receiver, make_notification(), {})

        posts = root_posts(fake)

    assert "slack channel listing failed" in caplog.text
    assert "slack history lookup failed" in caplog.text
    assert len(posts) == 2

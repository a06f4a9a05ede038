"""Pending pages cancelled by a later acknowledgement or resolve."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from factories import make_notification

from handlers.base import DeliveryError
from schemas.records import EventKind, Notification
from streams.notify.agent import cancel_reason
from streams.notify.delivery import (
    DeliveryCancelled,
    RetryPolicy,
    deliver_with_retries,
)


def stored(*kinds: tuple[int, str]) -> dict[str, Any]:
    """Return a stored incident whose timeline has these (seq, kind) entries."""
    timeline = [{"seq": seq, "kind": kind, "actor": "alice"} for seq, kind in kinds]
    return {"incident_id": "g1-1", "seq": len(timeline), "timeline": timeline}


def escalation(seq: int = 2) -> Notification:
    return make_notification(kind=EventKind.ESCALATED, seq=seq, level=1)


def test_later_ack_cancels_escalation() -> None:
    incident = stored((1, "opened"), (2, "escalated"), (3, "acknowledged"))

    reason = cancel_reason(escalation(), incident)

    assert reason == "incident acknowledged at seq 3 by alice"


def test_later_resolve_cancels_repeat() -> None:
    incident = stored((1, "opened"), (2, "repeated"), (3, "notified"), (4, "resolved"))
    notification = make_notification(kind=EventKind.REPEATED, seq=2)

    assert (
        cancel_reason(notification, incident) == "incident resolved at seq 4 by alice"
    )


def test_earlier_ack_cancels_nothing() -> None:
    # Acknowledged, timed out, and paged again: the new page still matters.
    incident = stored((1, "opened"), (2, "acknowledged"), (3, "ack_timed_out"))
    notification = make_notification(kind=EventKind.ACK_TIMED_OUT, seq=3)

    assert cancel_reason(notification, incident) is None


def test_ack_and_resolve_never_cancelled() -> None:
    incident = stored((1, "opened"), (2, "acknowledged"), (3, "resolved"))

    for kind, seq in ((EventKind.ACKNOWLEDGED, 2), (EventKind.RESOLVED, 3)):
        notification = make_notification(kind=kind, seq=seq)
        assert cancel_reason(notification, incident) is None, kind


def test_unknown_incident_cancels_nothing() -> None:
    assert cancel_reason(escalation(), None) is None


def test_opening_sent_once_then_cancelled() -> None:
    incident = stored((1, "opened"), (2, "resolved"))
    opening = make_notification(kind=EventKind.OPENED, seq=1)

    assert cancel_reason(opening, incident, attempt=1) is None
    assert cancel_reason(opening, incident, attempt=2) == (
        "incident resolved at seq 2 by alice"
    )


def test_escalation_cancelled_before_first_attempt() -> None:
    incident = stored((1, "opened"), (2, "escalated"), (3, "acknowledged"))

    assert cancel_reason(escalation(), incident, attempt=1) is not None


class FlakyReceiver:
    """Fails every attempt with a retriable error, counting the attempts."""

    name = "pager"
    kind = "console"

    def __init__(self) -> None:
        self.attempts = 0

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        self.attempts += 1
        raise DeliveryError("upstream 503", retriable=True)


def test_retry_stops_once_cancelled() -> None:
    receiver = FlakyReceiver()
    checks: list[int] = []

    def cancelled(attempt: int) -> str | None:
        checks.append(receiver.attempts)
        return "incident acknowledged" if receiver.attempts >= 2 else None

    async def on_attempt(attempt: int, error: DeliveryError | None) -> None:
        return None

    policy = RetryPolicy(
        max_attempts=5, deadline_s=60.0, initial_s=0.001, max_wait_s=0.002
    )
    with pytest.raises(DeliveryCancelled, match="incident acknowledged"):
        asyncio.run(
            deliver_with_retries(
                receiver,
                escalation(),
                {},
                policy,
                on_attempt,
                cancelled=cancelled,
            )
        )

    assert receiver.attempts == 2
    assert checks == [0, 1, 2]


def test_cancel_check_runs_before_first_attempt() -> None:
    receiver = FlakyReceiver()

    async def on_attempt(attempt: int, error: DeliveryError | None) -> None:
        return None

    with pytest.raises(DeliveryCancelled):
        asyncio.run(
            deliver_with_retries(
                receiver,
                escalation(),
                {},
                RetryPolicy(max_attempts=3, deadline_s=10.0, initial_s=0.001),
                on_attempt,
                cancelled=lambda attempt: "incident acknowledged",
            )
        )

    assert receiver.attempts == 0


def test_group_wait_page_sent_once() -> None:
    incident = stored((1, "opened"), (2, "escalated"), (3, "resolved"))
    first_page = make_notification(kind=EventKind.ESCALATED, seq=2, level=0)

    assert cancel_reason(first_page, incident, attempt=1) is None
    assert cancel_reason(first_page, incident, attempt=2) is not None

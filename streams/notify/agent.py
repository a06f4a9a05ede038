"""faust glue for notify: notifications in, deliveries and timeline records out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from handlers.base import ChecksEarlierPosts, DeliveryError
from schemas.records import (
    Command,
    CommandKind,
    DeliveryResult,
    DeliveryStatus,
    EventKind,
    FailedNotification,
    Notification,
)
from streams import topics
from streams.notify.breaker import CircuitBreaker
from streams.notify.delivery import (
    CircuitOpenError,
    DeliveryCancelled,
    RetryPolicy,
    deliver_with_retries,
)
from streams.notify.receivers import build_receivers

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    notifier = Notifier(pipeline)

    async def notify(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            notification = await pipeline.dead_letters.parse(
                "notify", event, Notification.model_validate_json
            )
            if notification is not None:
                await notifier.handle(event, notification)

    pipeline.app.agent(pipeline.topic(topics.NOTIFICATIONS), name="notify")(notify)


class Notifier:
    """Deliver notifications once each, keeping each receiver's state per incident."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.receivers = build_receivers(pipeline.config, pipeline.settings)
        settings = pipeline.settings
        self.policy = RetryPolicy(
            max_attempts=settings.delivery_attempts,
            deadline_s=settings.delivery_deadline_s,
        )
        self.breakers = {
            name: CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
            for name in self.receivers
        }
        self.delivered = pipeline.table("notify-delivered", default=None)
        # Notifications whose delivery started and has not ended. One found
        # here at the start is a redelivery after a worker stopped mid-way.
        self.in_flight = pipeline.table("notify-in-flight", default=None)
        self.receiver_state = pipeline.table("notify-receiver-state", default=None)
        pipeline.counters.update(delivered=0, failed=0)

    async def handle(
        self, event: faust.EventT[bytes], notification: Notification
    ) -> None:
        pipeline = self.pipeline
        if self.delivered.get(notification.notification_id) is not None:
            log.debug("duplicate skipped id=%s", notification.notification_id)
            return
        receiver = self.receivers.get(notification.receiver)
        if receiver is None:
            await pipeline.dead_letters.send(
                "notify", event, f"unknown receiver {notification.receiver!r}"
            )
            return
        notification_id = notification.notification_id
        restarted = self.in_flight.get(notification_id) is not None
        if restarted:
            log.info(
                "delivery restarted after an interrupted attempt "
                "receiver=%s notification_id=%s",
                receiver.name,
                notification_id,
            )
            if isinstance(receiver, ChecksEarlierPosts):
                receiver.assume_outcome_unknown(notification_id)
        else:
            self.in_flight[notification_id] = pipeline.clock.now().isoformat()
            # The mark must reach the changelog before the first attempt, so
            # a worker killed during that attempt leaves it for the next one.
            await pipeline.app.producer.flush()
        state_key = f"{notification.event.incident_id}:{receiver.name}"
        stored_state = self.receiver_state.get(state_key)
        never_paged = stored_state == NEVER_PAGED
        state: dict[str, Any] = {} if never_paged else stored_state or {}
        if never_paged and is_follow_up(notification):
            reason = "no page to this receiver was sent for the incident"
            skipped = DeliveryCancelled(notification_id, reason)
            await _report_cancelled(pipeline, notification, receiver.kind, skipped)
            self._finish(notification_id, "cancelled")
            return

        attempts_made = 0

        async def on_attempt(attempt: int, error: DeliveryError | None) -> None:
            nonlocal attempts_made
            attempts_made += 1
            await _report_attempt(pipeline, notification, receiver.kind, attempt, error)

        incidents = pipeline.tables.get("incidents")

        def cancelled(attempt: int) -> str | None:
            if incidents is None:
                return None
            stored = incidents.get(notification.event.incident_id)
            return cancel_reason(notification, stored, attempt)

        try:
            new_state = await deliver_with_retries(
                receiver,
                notification,
                state,
                self.policy,
                on_attempt,
                self.breakers[notification.receiver],
                cancelled,
            )
        except DeliveryCancelled as exc:
            await _report_cancelled(pipeline, notification, receiver.kind, exc)
            # Only a page cancelled before any attempt surely never arrived.
            if stored_state is None and attempts_made == 0 and not restarted:
                self.receiver_state[state_key] = dict(NEVER_PAGED)
            self._finish(notification_id, "cancelled")
            return
        except DeliveryError as exc:
            await _give_up(pipeline, notification, exc)
            self._finish(notification_id, "failed")
            return
        self.receiver_state[state_key] = new_state
        self._finish(notification_id, "delivered")
        pipeline.counters["delivered"] += 1
        details = {"message_update": True} if notification.message_update else {}
        await _record(pipeline, notification, EventKind.NOTIFIED, details)

    def _finish(self, notification_id: str, outcome: str) -> None:
        # A worker stopped during the delivery leaves it in flight, so the
        # next worker checks whether an attempt reached the receiver.
        self.delivered[notification_id] = outcome
        self.in_flight.pop(notification_id, None)


# Transitions that page someone; a later acknowledgement or resolve of the
# incident cancels their notifications while they are still pending.
PAGING_KINDS = frozenset(
    {
        EventKind.OPENED,
        EventKind.ESCALATED,
        EventKind.REPEATED,
        EventKind.RELEASED,
        EventKind.REOPENED,
        EventKind.STABILIZED,
        EventKind.GROUP_UPDATED,
        EventKind.ACK_TIMED_OUT,
    }
)
# Pages that start a receiver's record of an incident. Each is sent at least
# once, so a receiver that gets the resolve has had the opening first.
FIRST_PAGES = frozenset({EventKind.OPENED, EventKind.REOPENED})
ENDING_KINDS = frozenset({EventKind.ACKNOWLEDGED.value, EventKind.RESOLVED.value})
# The receiver state of an incident whose every page to that receiver was
# cancelled before its first attempt. Its acknowledgement and resolve are not
# sent, because the receiver never learned of the incident. A page with a
# failed attempt is not marked, since it may have reached the receiver.
NEVER_PAGED = {"never_paged": True}


def is_follow_up(notification: Notification) -> bool:
    """Return whether `notification` reports an acknowledgement or resolve."""
    if notification.message_update:
        return False
    return notification.event.kind.value in ENDING_KINDS


def cancel_reason(
    notification: Notification, incident: dict[str, Any] | None, attempt: int = 1
) -> str | None:
    """Return why a page is moot before its `attempt`, given the stored incident.

    A page is moot once the incident's timeline has an acknowledgement or a
    resolve after the transition it pages for: an escalation, a repeat or an
    update then never goes out, and an opening is not retried.
    Acknowledgements and resolves themselves are never cancelled. An
    incident this worker does not store cancels nothing.
    """
    event = notification.event
    if event.kind not in PAGING_KINDS or incident is None:
        return None
    # Level 0 reached when the group wait ends is the opening page too.
    opening = event.kind in FIRST_PAGES or (
        event.kind is EventKind.ESCALATED and event.level == 0
    )
    if opening and attempt <= 1:
        return None
    for entry in reversed(incident.get("timeline") or []):
        if entry.get("seq", 0) <= event.seq:
            break
        if entry.get("kind") in ENDING_KINDS:
            return f"incident {entry['kind']} at seq {entry['seq']} by {entry['actor']}"
    return None


async def _report_cancelled(
    pipeline: Pipeline,
    notification: Notification,
    kind: str,
    cancelled: DeliveryCancelled,
) -> None:
    log.info(
        "notification cancelled receiver=%s notification_id=%s: %s",
        notification.receiver,
        notification.notification_id,
        cancelled.reason,
    )
    error = f"cancelled: {cancelled.reason}"
    await _publish_result(
        pipeline, notification, kind, 0, DeliveryStatus.SKIPPED, error
    )


async def _report_attempt(
    pipeline: Pipeline,
    notification: Notification,
    kind: str,
    attempt: int,
    error: DeliveryError | None,
) -> None:
    if isinstance(error, CircuitOpenError):
        status = DeliveryStatus.SKIPPED
    elif error is not None:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.DELIVERED
    message = str(error) if error else None
    await _publish_result(pipeline, notification, kind, attempt, status, message)


async def _publish_result(
    pipeline: Pipeline,
    notification: Notification,
    kind: str,
    attempt: int,
    status: DeliveryStatus,
    error: str | None,
) -> None:
    """Count one delivery outcome and publish it as a delivery record."""
    pipeline.metrics.delivery_attempts.labels(
        receiver=notification.receiver, status=status
    ).inc()
    result = DeliveryResult(
        notification_id=notification.notification_id,
        incident_id=notification.event.incident_id,
        receiver=notification.receiver,
        kind=kind,
        attempt=attempt,
        status=status,
        at=pipeline.clock.stamp(notification.event.at),
        error=error,
    )
    await pipeline.publish(topics.DELIVERIES, notification.event.group_key, result)


async def _give_up(
    pipeline: Pipeline, notification: Notification, error: DeliveryError
) -> None:
    pipeline.counters["failed"] += 1
    pipeline.metrics.deliveries_abandoned.labels(receiver=notification.receiver).inc()
    log.error(
        "delivery gave up receiver=%s notification_id=%s: %s",
        notification.receiver,
        notification.notification_id,
        error,
    )
    group_key = notification.event.group_key
    failed = FailedNotification(
        notification=notification,
        error=str(error),
        at=pipeline.clock.stamp(notification.event.at),
    )
    await pipeline.publish(topics.NOTIFICATIONS_DEAD, group_key, failed)
    await _record(
        pipeline, notification, EventKind.NOTIFY_FAILED, {"error": str(error)}
    )


async def _record(
    pipeline: Pipeline,
    notification: Notification,
    kind: EventKind,
    details: dict[str, Any],
) -> None:
    event = notification.event
    command = Command(
        command_id=f"{notification.notification_id}:{kind}",
        kind=CommandKind.RECORD,
        incident_id=event.incident_id,
        actor=notification.receiver,
        source="notify",
        at=pipeline.clock.stamp(event.at),
        event_kind=kind,
        details={
            "receiver": notification.receiver,
            "transition": event.kind,
            "transition_seq": event.seq,
            **details,
        },
    )
    await pipeline.publish(topics.COMMANDS, event.group_key, command)

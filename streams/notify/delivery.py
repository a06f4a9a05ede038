"""Deliver one notification with the shared retry policy."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from handlers.base import DeliveryError, Receiver
from schemas.records import Notification
from streams.notify.breaker import CircuitBreaker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and a deadline.

    A Retry-After the receiver sent replaces the backoff and is waited in
    full. The policy never starts a wait that would end past `deadline_s`
    from the first attempt, so a Retry-After longer than what is left of the
    deadline gives up at once.
    """

    max_attempts: int = 4
    deadline_s: float = 120.0
    initial_s: float = 0.5
    max_wait_s: float = 30.0

    def wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return retry_after_s
        ceiling = min(self.max_wait_s, self.initial_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


class CircuitOpenError(DeliveryError):
    """The receiver's circuit breaker is open, so no request was sent."""

    def __init__(self, receiver: str, wait_s: float) -> None:
        super().__init__(
            f"circuit breaker of receiver {receiver} is open; "
            f"next try in {wait_s:.1f} s",
            retriable=True,
            retry_after_s=wait_s,
        )


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retriable


AttemptHook = Callable[[int, DeliveryError | None], Awaitable[None]]
# Returns why a notification must no longer be sent before the attempt
# numbered by its argument, or None to go on.
CancelCheck = Callable[[int], str | None]


class DeliveryCancelled(Exception):
    """A later transition of the incident made the notification pointless."""

    def __init__(self, notification_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"notification {notification_id} cancelled: {reason}")


async def deliver_with_retries(
    receiver: Receiver,
    notification: Notification,
    state: dict[str, Any],
    policy: RetryPolicy,
    on_attempt: AttemptHook,
    breaker: CircuitBreaker | None = None,
    cancelled: CancelCheck | None = None,
) -> dict[str, Any]:
    """Deliver, retrying retriable failures, and report every attempt.

    Before each attempt `cancelled` is asked whether the notification still
    matters; if not, DeliveryCancelled is raised and nothing more is sent.

    An attempt that the open `breaker` stops reports a CircuitOpenError and
    waits for the breaker's cool-down like a Retry-After. Only retriable
    failures count against the breaker: a permanent error shows that the
    receiver is up. Raises the last DeliveryError once the policy gives up.
    """

    def wait(retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, DeliveryError) else None
        return policy.wait_s(retry_state.attempt_number, retry_after)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts)
        | stop_before_delay(policy.deadline_s),
        wait=wait,
        retry=retry_if_exception(_is_retriable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            number = attempt.retry_state.attempt_number
            reason = cancelled(number) if cancelled is not None else None
            if reason is not None:
                raise DeliveryCancelled(notification.notification_id, reason)
            closed_for = breaker.before_attempt() if breaker is not None else None
            if closed_for is not None:
                stopped = CircuitOpenError(receiver.name, closed_for)
                await on_attempt(number, stopped)
                raise stopped
            try:
                new_state = await receiver.deliver(notification, state)
            except DeliveryError as exc:
                _record_outcome(breaker, exc)
                await on_attempt(number, exc)
                if exc.retriable:
                    log.warning(
                        "delivery failed, will retry receiver=%s attempt=%d "
                        "notification_id=%s: %s",
                        receiver.name,
                        number,
                        notification.notification_id,
                        exc,
                    )
                raise
            except Exception as exc:
                _record_outcome(breaker, exc)
                raise
            _record_outcome(breaker, None)
            await on_attempt(number, None)
            return new_state
    raise AssertionError("unreachable: tenacity either returns or raises")


def _record_outcome(breaker: CircuitBreaker | None, error: Exception | None) -> None:
    if breaker is None:
        return
    if error is None or (isinstance(error, DeliveryError) and not error.retriable):
        breaker.record_success()
    else:
        breaker.record_failure()

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
    stop_after_delay,
)

from handlers.base import DeliveryError, Receiver
from schemas.records import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and a deadline."""

    max_attempts: int = 4
    deadline_s: float = 120.0
    initial_s: float = 0.5
    max_wait_s: float = 30.0

    def wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_wait_s)
        ceiling = min(self.max_wait_s, self.initial_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retriable


AttemptHook = Callable[[int, DeliveryError | None], Awaitable[None]]


async def deliver_with_retries(
    receiver: Receiver,
    notification: Notification,
    state: dict[str, Any],
    policy: RetryPolicy,
    on_attempt: AttemptHook,
) -> dict[str, Any]:
    """Deliver, retrying retriable failures, and report every attempt.

    Raises the last DeliveryError once the policy gives up.
    """

    def wait(retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, DeliveryError) else None
        return policy.wait_s(retry_state.attempt_number, retry_after)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts)
        | stop_after_delay(policy.deadline_s),
        wait=wait,
        retry=retry_if_exception(_is_retriable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            number = attempt.retry_state.attempt_number
            try:
                new_state = await receiver.deliver(notification, state)
            except DeliveryError as exc:
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
            await on_attempt(number, None)
            return new_state
    raise AssertionError("unreachable: tenacity either returns or raises")

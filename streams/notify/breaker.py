"""A circuit breaker per receiver: stop calling a receiver that keeps failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """A breaker that opens after consecutive failures and half-opens after a cool-down.

    It opens after `failure_threshold` consecutive failures. While open,
    `before_attempt` returns the seconds left of `cooldown_s`, after which
    the breaker is half-open and lets one trial attempt through at a time.
    The trial's success closes the breaker, and its failure opens it again
    for another cool-down. `clock` returns monotonic seconds.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(
                f"failure_threshold must be at least 1, got {failure_threshold}"
            )
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must not be negative, got {cooldown_s}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        """The state now, moving from open to half-open once the cool-down passed."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() >= self._opened_at + self.cooldown_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._trial_running = False
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_attempt(self) -> float | None:
        """Admit an attempt and return None, or return the seconds to wait first."""
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return None
        if state is BreakerState.HALF_OPEN:
            # Another trial is running; its outcome decides, so ask again soon.
            return min(1.0, self.cooldown_s)
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        was_trial = self._state is BreakerState.HALF_OPEN
        if was_trial or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
        self._trial_running = False

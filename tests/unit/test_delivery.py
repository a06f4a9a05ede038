"""The notify stage's retry loop, driven by an in-memory receiver."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from factories import make_notification

from handlers.base import DeliveryError
from schemas.records import Notification
from streams.notify.breaker import BreakerState, CircuitBreaker
from streams.notify.delivery import CircuitOpenError, RetryPolicy, deliver_with_retries

FAST = RetryPolicy(max_attempts=4, deadline_s=5.0, initial_s=0.0001, max_wait_s=0.001)


def retriable(retry_after_s: float | None = None) -> DeliveryError:
    return DeliveryError("HTTP 503", retriable=True, retry_after_s=retry_after_s)


def permanent() -> DeliveryError:
    return DeliveryError("HTTP 400", retriable=False)


class ScriptedReceiver:
    """A receiver that raises the scripted errors in order, then delivers."""

    kind = "scripted"

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.name = "scripted"
        self.errors = list(errors)
        self.calls = 0

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {**state, "delivered_on": self.calls}


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """A policy that records every wait it is asked for and waits 0 s."""

    waits: list[tuple[int, float | None]] = field(default_factory=list)

    def wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        self.waits.append((attempt, retry_after_s))
        return 0.0


def run(
    receiver: ScriptedReceiver, policy: RetryPolicy = FAST
) -> tuple[dict[str, Any] | BaseException, list[tuple[int, DeliveryError | None]]]:
    """Deliver once and return the new state or the raised error, and every attempt."""
    attempts: list[tuple[int, DeliveryError | None]] = []

    async def on_attempt(number: int, error: DeliveryError | None) -> None:
        attempts.append((number, error))

    async def deliver() -> dict[str, Any]:
        return await deliver_with_retries(
            receiver, make_notification(), {"ts": "1.0"}, policy, on_attempt
        )

    try:
        outcome: dict[str, Any] | BaseException = asyncio.run(deliver())
    except Exception as exc:
        outcome = exc
    return outcome, attempts


# deliver_with_retries


def test_delivery_returns_new_state() -> None:
    state, _ = run(ScriptedReceiver([]))

    assert state == {"ts": "1.0", "delivered_on": 1}


def test_retriable_error_is_retried() -> None:
    receiver = ScriptedReceiver([retriable(), retriable()])
    state, _ = run(receiver)

    assert state == {"ts": "1.0", "delivered_on": 3}
    assert receiver.calls == 3


def test_retries_stop_at_max_attempts() -> None:
    receiver = ScriptedReceiver([retriable() for _ in range(6)])
    outcome, _ = run(receiver)

    assert isinstance(outcome, DeliveryError)
    assert receiver.calls == FAST.max_attempts


def test_last_error_raised_after_retries() -> None:
    errors = [retriable() for _ in range(4)]
    outcome, _ = run(ScriptedReceiver(errors))

    assert outcome is errors[-1]


def test_permanent_error_stops_at_once() -> None:
    error = permanent()
    receiver = ScriptedReceiver([error, retriable()])
    outcome, _ = run(receiver)

    assert outcome is error
    assert receiver.calls == 1


def test_deadline_stops_retries() -> None:
    policy = RetryPolicy(max_attempts=10, deadline_s=0.0, initial_s=0.0001)
    receiver = ScriptedReceiver([retriable(), retriable()])
    outcome, _ = run(receiver, policy)

    assert isinstance(outcome, DeliveryError)
    assert receiver.calls == 1


def test_unexpected_error_is_not_retried() -> None:
    receiver = ScriptedReceiver([KeyError("ts")])
    outcome, attempts = run(receiver)

    assert isinstance(outcome, KeyError)
    assert receiver.calls == 1
    assert attempts == []


def test_every_attempt_reported() -> None:
    first, second = retriable(), retriable()
    _, attempts = run(ScriptedReceiver([first, second]))

    assert attempts == [(1, first), (2, second), (3, None)]


def test_failed_attempts_reported_before_giving_up() -> None:
    errors = [retriable() for _ in range(4)]
    _, attempts = run(ScriptedReceiver(errors))

    assert attempts == list(enumerate(errors, start=1))


def test_permanent_error_reported_once() -> None:
    error = permanent()
    _, attempts = run(ScriptedReceiver([error]))

    assert attempts == [(1, error)]


def test_retry_wait_gets_retry_after() -> None:
    policy = RecordingPolicy(max_attempts=3)
    run(ScriptedReceiver([retriable(retry_after_s=2.5), retriable()]), policy)

    assert policy.waits == [(1, 2.5), (2, None)]


# RetryPolicy.wait_s


def test_wait_honours_retry_after() -> None:
    assert RetryPolicy(max_wait_s=30.0).wait_s(1, 2.0) == 2.0


def test_wait_keeps_long_retry_after() -> None:
    assert RetryPolicy(max_wait_s=30.0).wait_s(1, 120.0) == 120.0


def test_wait_zero_retry_after_kept() -> None:
    assert RetryPolicy().wait_s(3, 0.0) == 0.0


def test_backoff_ceiling_doubles_per_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    policy = RetryPolicy(initial_s=0.5, max_wait_s=30.0)

    waits = [policy.wait_s(attempt, None) for attempt in range(1, 5)]

    assert waits == [0.5, 1.0, 2.0, 4.0]


def test_backoff_ceiling_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)

    assert RetryPolicy(initial_s=0.5, max_wait_s=30.0).wait_s(20, None) == 30.0


def test_backoff_jitter_starts_at_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)

    assert RetryPolicy().wait_s(3, None) == 0.0


# Circuit breaker and deadline


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_with_breaker(
    receiver: ScriptedReceiver, breaker: CircuitBreaker, policy: RetryPolicy = FAST
) -> tuple[dict[str, Any] | BaseException, list[tuple[int, DeliveryError | None]]]:
    attempts: list[tuple[int, DeliveryError | None]] = []

    async def on_attempt(number: int, error: DeliveryError | None) -> None:
        attempts.append((number, error))

    async def deliver() -> dict[str, Any]:
        return await deliver_with_retries(
            receiver, make_notification(), {}, policy, on_attempt, breaker
        )

    try:
        outcome: dict[str, Any] | BaseException = asyncio.run(deliver())
    except Exception as exc:
        outcome = exc
    return outcome, attempts


def test_open_breaker_skips_the_receiver() -> None:
    breaker = CircuitBreaker(1, cooldown_s=60.0, clock=StepClock())
    breaker.record_failure()
    receiver = ScriptedReceiver([])
    outcome, attempts = run_with_breaker(receiver, breaker, RecordingPolicy())

    assert isinstance(outcome, CircuitOpenError)
    assert receiver.calls == 0
    assert len(attempts) == RecordingPolicy().max_attempts
    assert all(isinstance(error, CircuitOpenError) for _, error in attempts)


def test_open_breaker_wait_is_its_cooldown() -> None:
    breaker = CircuitBreaker(1, cooldown_s=60.0, clock=StepClock())
    breaker.record_failure()
    policy = RecordingPolicy(max_attempts=2)
    run_with_breaker(ScriptedReceiver([]), breaker, policy)

    assert policy.waits[0] == (1, 60.0)


def test_retriable_failures_open_breaker() -> None:
    breaker = CircuitBreaker(2, cooldown_s=60.0, clock=StepClock())
    receiver = ScriptedReceiver([retriable(), retriable(), retriable()])
    outcome, _ = run_with_breaker(receiver, breaker)

    assert isinstance(outcome, CircuitOpenError)
    assert receiver.calls == 2
    assert breaker.state is BreakerState.OPEN


def test_permanent_error_leaves_breaker_closed() -> None:
    breaker = CircuitBreaker(1, cooldown_s=60.0, clock=StepClock())
    outcome, _ = run_with_breaker(ScriptedReceiver([permanent()]), breaker)

    assert isinstance(outcome, DeliveryError)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_trial_success_delivers() -> None:
    clock = StepClock()
    breaker = CircuitBreaker(1, cooldown_s=60.0, clock=clock)
    breaker.record_failure()
    clock.now = 60.0
    state, attempts = run_with_breaker(ScriptedReceiver([]), breaker)

    assert state == {"delivered_on": 1}
    assert attempts == [(1, None)]
    assert breaker.state is BreakerState.CLOSED


def test_retry_after_past_deadline_gives_up() -> None:
    policy = RetryPolicy(max_attempts=5, deadline_s=10.0, initial_s=0.0001)
    receiver = ScriptedReceiver([retriable(retry_after_s=60.0), retriable()])
    outcome, _ = run(receiver, policy)

    assert isinstance(outcome, DeliveryError)
    assert outcome.retry_after_s == 60.0
    assert receiver.calls == 1

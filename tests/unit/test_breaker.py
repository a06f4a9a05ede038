"""The per-receiver circuit breaker, on an injected clock."""

from __future__ import annotations

import pytest

from streams.notify.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(
    threshold: int = 3, cooldown_s: float = 30.0
) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(threshold, cooldown_s, clock), clock


def test_breaker_starts_closed() -> None:
    subject, _ = breaker()

    assert subject.state is BreakerState.CLOSED
    assert subject.before_attempt() is None


def test_breaker_opens_after_threshold() -> None:
    subject, _ = breaker(threshold=3)
    subject.record_failure()
    subject.record_failure()

    assert subject.state is BreakerState.CLOSED
    subject.record_failure()
    assert subject.state is BreakerState.OPEN


def test_success_resets_failure_count() -> None:
    subject, _ = breaker(threshold=3)
    subject.record_failure()
    subject.record_failure()
    subject.record_success()
    subject.record_failure()
    subject.record_failure()

    assert subject.state is BreakerState.CLOSED
    assert subject.consecutive_failures == 2


def test_open_breaker_returns_remaining_cooldown() -> None:
    subject, clock = breaker(threshold=1, cooldown_s=30.0)
    subject.record_failure()
    clock.now += 12.0

    assert subject.before_attempt() == pytest.approx(18.0)


def test_breaker_half_open_after_cooldown() -> None:
    subject, clock = breaker(threshold=1, cooldown_s=30.0)
    subject.record_failure()
    clock.now += 30.0

    assert subject.state is BreakerState.HALF_OPEN
    assert subject.before_attempt() is None


def test_half_open_admits_one_trial() -> None:
    subject, clock = breaker(threshold=1, cooldown_s=30.0)
    subject.record_failure()
    clock.now += 30.0

    assert subject.before_attempt() is None
    second = subject.before_attempt()
    assert second is not None
    assert second > 0


def test_trial_success_closes_breaker() -> None:
    subject, clock = breaker(threshold=1, cooldown_s=30.0)
    subject.record_failure()
    clock.now += 30.0
    subject.before_attempt()
    subject.record_success()

    assert subject.state is BreakerState.CLOSED
    assert subject.before_attempt() is None


def test_trial_failure_reopens_for_full_cooldown() -> None:
    subject, clock = breaker(threshold=3, cooldown_s=30.0)
    for _ in range(3):
        subject.record_failure()
    clock.now += 31.0
    subject.before_attempt()
    subject.record_failure()

    assert subject.state is BreakerState.OPEN
    assert subject.before_attempt() == pytest.approx(30.0)


def test_zero_cooldown_half_opens_at_once() -> None:
    subject, _ = breaker(threshold=1, cooldown_s=0.0)
    subject.record_failure()

    assert subject.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize(
    ("threshold", "cooldown_s", "message"),
    [
        (0, 1.0, "failure_threshold must be at least 1, got 0"),
        (1, -1.0, "cooldown_s must not be negative, got -1.0"),
    ],
)
def test_invalid_breaker_settings_rejected(
    threshold: int, cooldown_s: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(threshold, cooldown_s)

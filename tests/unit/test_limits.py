"""The keyed rate limiter that spaces Slack messages per channel."""

from __future__ import annotations

import asyncio

import pytest

from handlers.limits import KeyedRateLimiter


class FakeTime:
    """A clock whose sleep advances it, so waits take no real time."""

    def __init__(self) -> None:
        self.now = 500.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(interval_s: float = 1.0) -> tuple[KeyedRateLimiter, FakeTime]:
    fake = FakeTime()
    return KeyedRateLimiter(interval_s, fake.clock, fake.sleep), fake


def test_first_call_does_not_wait() -> None:
    subject, fake = limiter()

    assert asyncio.run(subject.acquire("#oncall")) == 0.0
    assert fake.sleeps == []


def test_calls_spaced_by_interval() -> None:
    subject, fake = limiter(1.0)

    async def three() -> None:
        for _ in range(3):
            await subject.acquire("#oncall")

    asyncio.run(three())

    assert fake.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]
    assert fake.now == pytest.approx(502.0)


def test_keys_limited_apart() -> None:
    subject, fake = limiter(1.0)

    async def two_channels() -> None:
        await subject.acquire("#oncall")
        await subject.acquire("#ml")

    asyncio.run(two_channels())

    assert fake.sleeps == []


def test_call_after_interval_does_not_wait() -> None:
    subject, fake = limiter(1.0)
    asyncio.run(subject.acquire("#oncall"))
    fake.now += 5.0

    assert asyncio.run(subject.acquire("#oncall")) == 0.0


def test_hold_delays_next_call() -> None:
    subject, _ = limiter(1.0)
    subject.hold("#oncall", 7.0)

    assert asyncio.run(subject.acquire("#oncall")) == pytest.approx(7.0)


def test_hold_never_shortens_a_wait() -> None:
    subject, _ = limiter(10.0)
    asyncio.run(subject.acquire("#oncall"))
    subject.hold("#oncall", 2.0)

    assert asyncio.run(subject.acquire("#oncall")) == pytest.approx(10.0)


def test_concurrent_callers_queue_in_order() -> None:
    fake = FakeTime()

    async def sleep_without_advancing(seconds: float) -> None:
        fake.sleeps.append(seconds)

    subject = KeyedRateLimiter(1.0, fake.clock, sleep_without_advancing)

    async def together() -> list[float]:
        return list(
            await asyncio.gather(*(subject.acquire("#oncall") for _ in range(3)))
        )

    waits = asyncio.run(together())

    assert waits == [0.0, pytest.approx(1.0), pytest.approx(2.0)]


def test_negative_interval_rejected() -> None:
    with pytest.raises(ValueError, match="interval_s must not be negative, got -1"):
        KeyedRateLimiter(-1)


def test_alias_carries_reserved_slot() -> None:
    subject, fake = limiter(1.0)

    async def by_name_then_id() -> None:
        await subject.acquire("#oncall")
        subject.alias("#oncall", "C0ONCALL001")
        await subject.acquire("C0ONCALL001")
        await subject.acquire("#oncall")

    asyncio.run(by_name_then_id())

    assert fake.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]


def test_alias_shares_hold() -> None:
    subject, _ = limiter(0.0)
    subject.alias("#oncall", "C0ONCALL001")
    subject.hold("#oncall", 5.0)

    assert asyncio.run(subject.acquire("C0ONCALL001")) == pytest.approx(5.0)

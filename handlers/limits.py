"""Vendor rate limits that the handlers enforce on their own calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class KeyedRateLimiter:
    """Space calls with the same key at least `interval_s` apart.

    Each call reserves the next free slot of its key before it waits, so
    concurrent callers queue in order without a lock. `clock` returns
    monotonic seconds and `sleep` waits; tests inject both.
    """

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must not be negative, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._next_free: dict[str, float] = {}
        self._aliases: dict[str, str] = {}

    def alias(self, key: str, canonical: str) -> None:
        """Make `key` share the slots of `canonical`, from its next call on.

        A slot `key` has reserved already carries over, so a call made under
        one name and the next under the other are still spaced.
        """
        if key == canonical or self._aliases.get(key) == canonical:
            return
        self._aliases[key] = canonical
        reserved = self._next_free.pop(key, None)
        if reserved is not None:
            current = self._next_free.get(canonical, reserved)
            self._next_free[canonical] = max(current, reserved)

    async def acquire(self, key: str) -> float:
        """Wait for the key's next slot and return the seconds waited."""
        key = self._aliases.get(key, key)
        now = self._clock()
        slot = max(now, self._next_free.get(key, now))
        self._next_free[key] = slot + self.interval_s
        wait_s = slot - now
        if wait_s > 0:
            await self._sleep(wait_s)
        return wait_s

    def hold(self, key: str, seconds: float) -> None:
        """Keep the key's next slot at least `seconds` from now (a Retry-After)."""
        key = self._aliases.get(key, key)
        until = self._clock() + max(0.0, seconds)
        self._next_free[key] = max(self._next_free.get(key, until), until)

"""The pipeline clock: wall time when live, event time when replaying history."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Return the time every deadline in the pipeline is measured against.

    In live mode `now()` is wall time. In replay mode it is the newest event
    time the process has observed, so a replay of weeks of history escalates
    and expires deadlines as if those weeks had passed. Before any event is
    observed, a replay clock reads the Unix epoch.
    """

    def __init__(
        self, mode: str = "live", wall: Callable[[], float] = time.time
    ) -> None:
        if mode not in {"live", "replay"}:
            raise ValueError(f"invalid clock mode {mode!r}: expected live or replay")
        self.mode = mode
        self._wall = wall
        self._watermark = 0.0

    def observe(self, event_time: datetime) -> None:
        """Advance a replay clock to `event_time` if that is later."""
        self._watermark = max(self._watermark, event_time.timestamp())

    def stamp(self, event_time: datetime) -> datetime:
        """Return when an effect of an event at `event_time` happens.

        A replayed effect happens at its cause's event time; a live one now.
        """
        if self.mode == "replay":
            return event_time
        return max(event_time, self.now())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        if self.mode == "live":
            return self._wall()
        return self._watermark

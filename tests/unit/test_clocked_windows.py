"""Analytics windows expire by the pipeline clock, not by wall time."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.analytics.metrics import WINDOWS
from streams.analytics.windows import (
    ClockedHoppingWindow,
    ClockedTumblingWindow,
    clocked_window,
)
from streams.clock import Clock

DAY_S = 86400.0
# 2013-12-21T00:00:00Z, an hour of replayed history.
HOUR_START_S = 1387584000.0
RETENTION_S = 30 * DAY_S


def replay_clock_at(timestamp: float) -> Clock:
    clock = Clock("replay")
    clock.observe(datetime.fromtimestamp(timestamp, UTC))
    return clock


def test_replayed_window_kept_within_retention() -> None:
    clock = replay_clock_at(HOUR_START_S + 10 * DAY_S)
    window = clocked_window(WINDOWS["hourly"], RETENTION_S, clock)
    end = window.ranges(HOUR_START_S)[0][1]

    # faust passes wall time, which is years past this window.
    assert not window.stale(end, 2_000_000_000.0)


def test_replayed_window_dropped_after_retention() -> None:
    clock = replay_clock_at(HOUR_START_S)
    window = clocked_window(WINDOWS["hourly"], RETENTION_S, clock)
    end = window.ranges(HOUR_START_S)[0][1]

    clock.observe(datetime.fromtimestamp(HOUR_START_S + 32 * DAY_S, UTC))

    assert window.stale(end, 0.0)


def test_fresh_replay_clock_drops_nothing() -> None:
    window = clocked_window(WINDOWS["daily"], RETENTION_S, Clock("replay"))
    end = window.ranges(HOUR_START_S)[0][1]

    assert not window.stale(end, 2_000_000_000.0)


def test_live_clock_uses_wall_time() -> None:
    now_s = HOUR_START_S + 40 * DAY_S
    window = clocked_window(
        WINDOWS["hourly"], RETENTION_S, Clock("live", lambda: now_s)
    )
    end = window.ranges(HOUR_START_S)[0][1]

    assert window.stale(end, 0.0)


def test_window_kinds_follow_spec() -> None:
    clock = Clock("replay")
    hourly = clocked_window(WINDOWS["hourly"], RETENTION_S, clock)
    weekly = clocked_window(WINDOWS["weekly"], RETENTION_S, clock)

    assert isinstance(hourly, ClockedTumblingWindow)
    assert isinstance(weekly, ClockedHoppingWindow)
    assert weekly.expires == RETENTION_S + 7 * DAY_S
    assert len(weekly.ranges(HOUR_START_S)) == 7

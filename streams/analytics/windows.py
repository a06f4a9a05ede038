"""faust windows that expire by the pipeline clock instead of wall time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faust.windows import HoppingWindow, TumblingWindow

if TYPE_CHECKING:
    from streams.analytics.metrics import WindowSpec
    from streams.clock import Clock


class ClockedHoppingWindow(HoppingWindow):
    """A hopping window whose staleness is judged against `clock`.

    faust's table cleanup (every `table_cleanup_interval`, 30 s by default)
    calls `stale(range_end, time.time())` and drops every stale window from
    the local store. Against wall time, a replay of last year's history would
    lose its windows within a minute. Against the pipeline clock, a replay
    keeps each window until the replayed time passes its expiry, as a live
    worker would; live, the pipeline clock is wall time and nothing changes.
    """

    def __init__(self, size: float, step: float, expires: float, clock: Clock) -> None:
        super().__init__(size, step, expires)
        self.clock = clock

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        return super().stale(timestamp, self.clock.timestamp())


class ClockedTumblingWindow(TumblingWindow):
    """A tumbling window whose staleness is judged against `clock`."""

    def __init__(self, size: float, expires: float, clock: Clock) -> None:
        super().__init__(size, expires)
        self.clock = clock

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        return super().stale(timestamp, self.clock.timestamp())


def clocked_window(
    spec: WindowSpec, retention_s: float, clock: Clock
) -> ClockedHoppingWindow | ClockedTumblingWindow:
    """Build the window of `spec`, kept `retention_s` past its end by `clock`."""
    expires_s = retention_s + spec.size_s
    if spec.step_s == spec.size_s:
        return ClockedTumblingWindow(spec.size_s, expires_s, clock)
    return ClockedHoppingWindow(spec.size_s, spec.step_s, expires_s, clock)

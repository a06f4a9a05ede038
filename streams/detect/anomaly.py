"""Streaming anomaly scores for one metric series, with JSON-serialisable state.

`AnomalyDetector.update(at, value)` takes each sample once, in event-time
order, and returns a score in [0, 1]. Scores at or above `ALERT_SCORE` are alerts.
Memory is bounded by the sizes in `AnomalyParams`, so the state can be stored
in a table (`to_json`) and restored exactly (`from_json`).

The score combines two surprises, each in [0, 1]:

- level: the residual of the value against the median of the last
  `baseline_size` values, compared with the last `baseline_size` residuals;
- seasonal: the change since the sample closest to one `season_seconds`
  (a day) earlier, compared with the last `baseline_size` such changes. Once
  the series is `week_seconds` long, the same surprise is also taken for the
  change since one week earlier, and the seasonal surprise is the smaller of
  the two. So a value counts as seasonally surprising only if it is unlike both
  yesterday and last week, and a weekday pattern such as a quiet weekend is
  not flagged every week.

Each comparison is the distance from the median of the past residuals (or
changes), divided by the larger of their range and `spread_multiple`
interquartile ranges, and capped at 1. So a residual as far from the median as
the whole recent range scores 1. The larger surprise is an alert when it
exceeds both `min_surprise` and `novelty_ratio` times the largest surprise of
the last `novelty_size` samples, and comes more than `refractory` samples after
the previous alert. Within `suppression` samples of an alert, a new alert must
also exceed `suppression_ratio` times the previous alert's surprise.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

# Alerts score ALERT_SCORE + (1 - ALERT_SCORE) * surprise, at least ALERT_SCORE,
# and other samples QUIET_SCALE * surprise, which stays below it.
ALERT_SCORE = 0.5
QUIET_SCALE = 0.49
STATE_VERSION = 2
# Version 1 states lack the weekly lag. They are restored with an empty
# history of weekly changes.
OLD_STATE_VERSIONS = (1,)
# Sample intervals kept to estimate the spacing used to match seasonal lags.
INTERVAL_HISTORY = 31
# A seasonal lag matches a sample at most this many spacings away from it.
LAG_TOLERANCE = 0.5


@dataclass(frozen=True)
class AnomalyParams:
    """Tuning of `AnomalyDetector`. Sizes are counts of samples.

    The defaults are one set for every series, chosen on the 49 NAB files that
    bench/nab/offline.py scores. NOTE: that makes its NAB score an in-sample
    result. Moving `baseline_size`, `suppression` or `suppression_ratio` by 20%
    costs 4 to 8 points of the standard score.
    """

    baseline_size: int = 1000
    min_history: int = 20
    spread_multiple: float = 20.0
    season_seconds: float = 86_400.0
    # 0 turns the weekly lag off. The lag needs a week of samples, at most
    # `max_season_samples`, so it stays off for series sampled every 30 s or
    # faster.
    week_seconds: float = 604_800.0
    max_season_samples: int = 20_000
    warmup: int = 100
    min_surprise: float = 0.1
    novelty_ratio: float = 0.9
    novelty_size: int = 2000
    refractory: int = 50
    suppression: int = 300
    suppression_ratio: float = 1.1


class RollingWindow:
    """The last `size` values in arrival order and in sorted order."""

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self.size = size
        self._arrivals: deque[float] = deque()
        self._sorted: list[float] = []
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._arrivals)

    def add(self, value: float) -> None:
        self._arrivals.append(value)
        insort(self._sorted, value)
        if len(self._arrivals) > self.size:
            oldest = self._arrivals.popleft()
            del self._sorted[bisect_left(self._sorted, oldest)]

    def quantile(self, fraction: float) -> float:
        """Return the stored value nearest to rank `fraction` (0 to 1)."""
        last = len(self._sorted) - 1
        return self._sorted[min(last, int(fraction * last + 0.5))]

    def surprise(self, value: float, spread_multiple: float) -> float:
        """Return how far `value` is from the median, in [0, 1].

        The distance is divided by the larger of the window's range and
        `spread_multiple` interquartile ranges. A window of equal values scores
        0 for that value and 1 for any other, ignoring rounding error.
        """
        centre = self.quantile(0.5)
        spread = self.quantile(0.75) - self.quantile(0.25)
        full_range = self._sorted[-1] - self._sorted[0]
        scale = max(spread_multiple * spread, full_range)
        distance = abs(value - centre)
        # Differences this small are rounding error, not signal.
        negligible = 1e-9 * max(1.0, abs(centre))
        if scale <= negligible:
            return 0.0 if distance <= negligible else 1.0
        return min(1.0, distance / scale)

    def values(self) -> list[float]:
        return list(self._arrivals)


class AnomalyDetector:
    """The anomaly detector of one series. The module docstring describes the method."""

    def __init__(self, params: AnomalyParams | None = None) -> None:
        self.params = params or AnomalyParams()
        self._levels = RollingWindow(self.params.baseline_size)
        self._residuals = RollingWindow(self.params.baseline_size)
        self._changes = RollingWindow(self.params.baseline_size)
        self._week_changes = RollingWindow(self.params.baseline_size)
        # (at, value) of the last week (or day if the weekly lag is off), for
        # the seasonal lags.
        self._recent: deque[tuple[float, float]] = deque()
        self._intervals: deque[float] = deque(maxlen=INTERVAL_HISTORY)
        # (sample index, surprise) with decreasing surprise: a running maximum.
        self._maxima: deque[tuple[int, float]] = deque()
        self._count = 0
        self._last_at: float | None = None
        self._last_alert: int | None = None
        self._last_alert_surprise = 0.0

    def update(self, at: float, value: float) -> float:
        """Score the sample at `at` (Unix seconds) and add it to the state.

        Raises ValueError if `value` is not finite or `at` is earlier than the
        previous sample's time, and leaves the state unchanged.
        """
        if not math.isfinite(value):
            raise ValueError(f"sample value {value} at {at} is not finite")
        if self._last_at is not None and at < self._last_at:
            raise ValueError(
                f"sample at {at} is earlier than the previous one at "
                f"{self._last_at}; feed samples in event-time order"
            )

        residual = value - self._levels.quantile(0.5) if len(self._levels) else None
        change = self._change(at, value, self.params.season_seconds)
        week_change = self._change(at, value, self.params.week_seconds)
        surprise = self._surprise(residual, change, week_change)
        alert = self._is_alert(surprise)
        self._remember(at, value, residual, change, week_change, surprise)
        if alert:
            self._last_alert = self._count
            self._last_alert_surprise = surprise
        self._count += 1
        if alert:
            return ALERT_SCORE + (1.0 - ALERT_SCORE) * surprise
        return QUIET_SCALE * surprise

    def _change(self, at: float, value: float, lag_seconds: float) -> float | None:
        """Return the change since the sample `lag_seconds` before `at`, if any."""
        if lag_seconds <= 0:
            return None
        lagged = self._lagged_value(at - lag_seconds)
        return None if lagged is None else value - lagged

    def _surprise(
        self,
        residual: float | None,
        change: float | None,
        week_change: float | None,
    ) -> float:
        level = self._window_surprise(self._residuals, residual)
        seasonal = [
            surprise
            for surprise in (
                self._window_surprise(self._changes, change),
                self._window_surprise(self._week_changes, week_change),
            )
            if surprise is not None
        ]
        surprises = [] if level is None else [level]
        if seasonal:
            surprises.append(min(seasonal))
        return max(surprises, default=0.0)

    def _window_surprise(
        self, window: RollingWindow, deviation: float | None
    ) -> float | None:
        """Return the surprise of `deviation`, or None without enough history."""
        if deviation is None or len(window) < self.params.min_history:
            return None
        return window.surprise(deviation, self.params.spread_multiple)

    def _is_alert(self, surprise: float) -> bool:
        params = self.params
        if self._count < params.warmup:
            return False
        start = self._count - params.novelty_size
        while self._maxima and self._maxima[0][0] < start:
            self._maxima.popleft()
        recent_max = self._maxima[0][1] if self._maxima else 0.0
        required = max(params.min_surprise, params.novelty_ratio * recent_max)
        if self._last_alert is not None:
            since = self._count - self._last_alert
            if since <= params.refractory:
                return False
            if since <= params.suppression:
                previous = params.suppression_ratio * self._last_alert_surprise
                required = max(required, previous)
        return surprise > required

    def _remember(
        self,
        at: float,
        value: float,
        residual: float | None,
        change: float | None,
        week_change: float | None,
        surprise: float,
    ) -> None:
        self._levels.add(value)
        if residual is not None:
            self._residuals.add(residual)
        if change is not None:
            self._changes.add(change)
        if week_change is not None:
            self._week_changes.add(week_change)

        while self._maxima and self._maxima[-1][1] <= surprise:
            self._maxima.pop()
        self._maxima.append((self._count, surprise))

        if self._last_at is not None and at > self._last_at:
            self._intervals.append(at - self._last_at)
        self._last_at = at
        self._recent.append((at, value))
        longest_lag = max(self.params.season_seconds, self.params.week_seconds)
        horizon = at - longest_lag - self._tolerance()
        while self._recent and (
            self._recent[0][0] < horizon
            or len(self._recent) > self.params.max_season_samples
        ):
            self._recent.popleft()

    def _tolerance(self) -> float:
        if not self._intervals:
            return 0.0
        return LAG_TOLERANCE * median(self._intervals)

    def _lagged_value(self, target: float) -> float | None:
        """Return the value of the stored sample nearest to `target`, if close."""
        if not self._intervals:
            return None
        tolerance = self._tolerance()
        index = bisect_left(self._recent, target, key=lambda sample: sample[0])
        best: tuple[float, float] | None = None
        for candidate in (index - 1, index):
            if 0 <= candidate < len(self._recent):
                sample = self._recent[candidate]
                distance = abs(sample[0] - target)
                if distance <= tolerance and (
                    best is None or distance < abs(best[0] - target)
                ):
                    best = sample
        return None if best is None else best[1]

    def to_json(self) -> dict[str, Any]:
        """Return the whole state as JSON-compatible values."""
        return {
            "version": STATE_VERSION,
            "params": asdict(self.params),
            "levels": self._levels.values(),
            "residuals": self._residuals.values(),
            "changes": self._changes.values(),
            "week_changes": self._week_changes.values(),
            "recent": [list(sample) for sample in self._recent],
            "intervals": list(self._intervals),
            "maxima": [list(entry) for entry in self._maxima],
            "count": self._count,
            "last_at": self._last_at,
            "last_alert": self._last_alert,
            "last_alert_surprise": self._last_alert_surprise,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnomalyDetector:
        """Restore a detector from `to_json` output.

        A version 1 state gets the default `week_seconds` and an empty history
        of weekly changes. Raises ValueError for a state of any other version.
        """
        version = data.get("version")
        if version != STATE_VERSION and version not in OLD_STATE_VERSIONS:
            raise ValueError(
                f"anomaly detector state version {version!r} is not "
                f"supported; expected {STATE_VERSION}"
            )
        detector = cls(AnomalyParams(**data["params"]))
        size = detector.params.baseline_size
        detector._levels = RollingWindow(size, data["levels"])
        detector._residuals = RollingWindow(size, data["residuals"])
        detector._changes = RollingWindow(size, data["changes"])
        detector._week_changes = RollingWindow(size, data.get("week_changes", []))
        detector._recent = deque((at, value) for at, value in data["recent"])
        detector._intervals = deque(data["intervals"], maxlen=INTERVAL_HISTORY)
        detector._maxima = deque((index, value) for index, value in data["maxima"])
        detector._count = data["count"]
        detector._last_at = data["last_at"]
        detector._last_alert = data["last_alert"]
        detector._last_alert_surprise = data["last_alert_surprise"]
        return detector

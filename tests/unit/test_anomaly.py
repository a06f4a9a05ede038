"""The streaming anomaly detector: alerts, score range, state and causality."""

from __future__ import annotations

import json
import math
import random

import pytest

from streams.detect.anomaly import (
    ALERT_SCORE,
    AnomalyDetector,
    AnomalyParams,
)

T0 = 1_400_000_000.0
FIVE_MINUTES = 300.0
DAY_SAMPLES = 288
WEEK_SAMPLES = 7 * DAY_SAMPLES


def feed(detector: AnomalyDetector, values: list[float], start: int = 0) -> list[float]:
    return [
        detector.update(T0 + (start + index) * FIVE_MINUTES, value)
        for index, value in enumerate(values)
    ]


def daily_series(days: int, seed: int) -> list[float]:
    """Return a noisy daily cycle of 5-minute samples with a few spikes."""
    rng = random.Random(seed)
    values = []
    for index in range(days * DAY_SAMPLES):
        phase = 2 * math.pi * index / DAY_SAMPLES
        values.append(50 + 20 * math.sin(phase) + rng.gauss(0, 2))
    for index in range(DAY_SAMPLES, len(values), 397):
        values[index] += 80
    return values


def weekly_series(weeks: int, seed: int) -> list[float]:
    """Return a noisy daily cycle on weekdays and a flat low level at weekends."""
    rng = random.Random(seed)
    values = []
    for index in range(weeks * WEEK_SAMPLES):
        if (index // DAY_SAMPLES) % 7 in (5, 6):
            values.append(20 + rng.gauss(0, 1))
        else:
            phase = 2 * math.pi * index / DAY_SAMPLES
            values.append(50 + 20 * math.sin(phase) + rng.gauss(0, 1))
    return values


def alert_days(scores: list[float]) -> set[int]:
    return {
        index // DAY_SAMPLES
        for index, score in enumerate(scores)
        if score >= ALERT_SCORE
    }


def test_flat_then_step_alerts_at_step() -> None:
    values = [10.0] * 300 + [20.0] * 20

    scores = feed(AnomalyDetector(), values)

    assert max(scores[:300]) < ALERT_SCORE
    assert scores[300] >= ALERT_SCORE
    assert scores[300] == max(scores)


def test_noisy_step_scores_highest_at_step() -> None:
    rng = random.Random(3)
    values = [100 + rng.gauss(0, 1) for _ in range(600)]
    values += [130 + rng.gauss(0, 1) for _ in range(50)]

    scores = feed(AnomalyDetector(), values)

    assert scores[600] >= ALERT_SCORE
    assert scores[600] > max(scores[:600])


def test_scores_stay_in_unit_interval() -> None:
    rng = random.Random(11)
    values = daily_series(3, seed=5)
    for index in rng.sample(range(len(values)), 40):
        values[index] = rng.choice([0.0, -1e9, 1e12, values[index] * 3])

    scores = feed(AnomalyDetector(), values)

    assert min(scores) >= 0.0
    assert max(scores) <= 1.0
    assert any(score >= ALERT_SCORE for score in scores)


def test_no_warmup_alerts() -> None:
    params = AnomalyParams()
    values = [float(index % 7) for index in range(params.warmup)]
    values[50] = 1e6

    scores = feed(AnomalyDetector(params), values)

    assert max(scores) < ALERT_SCORE


def test_refractory_period_blocks_repeat_alert() -> None:
    params = AnomalyParams()
    values = [10.0] * 300
    values[200] = 50.0
    values[200 + params.refractory // 2] = 500.0

    scores = feed(AnomalyDetector(params), values)

    assert scores[200] >= ALERT_SCORE
    assert scores[200 + params.refractory // 2] < ALERT_SCORE


def test_state_round_trip_continues_exactly() -> None:
    values = daily_series(9, seed=1)
    split = 8 * DAY_SAMPLES + 37
    running = AnomalyDetector()
    feed(running, values[:split])

    stored = json.dumps(running.to_json())
    assert running.to_json()["week_changes"]
    restored = AnomalyDetector.from_json(json.loads(stored))

    assert restored.to_json() == running.to_json()
    assert feed(restored, values[split:], split) == feed(running, values[split:], split)
    assert restored.to_json() == running.to_json()


def test_state_round_trip_keeps_params() -> None:
    params = AnomalyParams(baseline_size=50, refractory=5)
    detector = AnomalyDetector(params)
    feed(detector, [1.0, 2.0, 3.0])

    restored = AnomalyDetector.from_json(detector.to_json())

    assert restored.params == params


def test_version_1_state_is_restored() -> None:
    values = daily_series(2, seed=6)
    detector = AnomalyDetector()
    feed(detector, values)
    state = detector.to_json()
    state["version"] = 1
    del state["week_changes"]
    del state["params"]["week_seconds"]

    restored = AnomalyDetector.from_json(state)

    assert restored.params == AnomalyParams()
    assert restored.to_json()["week_changes"] == []
    more = daily_series(1, seed=7)
    assert feed(restored, more, len(values)) == feed(detector, more, len(values))


def test_unknown_state_version_is_rejected() -> None:
    state = AnomalyDetector().to_json()
    state["version"] = 99

    with pytest.raises(ValueError, match="version 99"):
        AnomalyDetector.from_json(state)


def test_prefix_scores_ignore_later_samples() -> None:
    values = daily_series(3, seed=2)
    prefix = 500
    altered = values[:prefix] + [value * -4 + 1e6 for value in values[prefix:]]

    full = feed(AnomalyDetector(), values)
    other_future = feed(AnomalyDetector(), altered)
    prefix_only = feed(AnomalyDetector(), values[:prefix])

    assert full[:prefix] == prefix_only
    assert other_future[:prefix] == prefix_only


def test_state_size_is_bounded() -> None:
    params = AnomalyParams(baseline_size=200, novelty_size=300)
    detector = AnomalyDetector(params)
    feed(detector, daily_series(9, seed=4))

    state = detector.to_json()

    assert len(state["levels"]) == 200
    assert len(state["residuals"]) == 200
    assert len(state["changes"]) == 200
    assert len(state["week_changes"]) == 200
    assert len(state["maxima"]) <= params.novelty_size + 1
    assert len(state["recent"]) <= WEEK_SAMPLES + 2


def test_state_without_weekly_lag_keeps_one_day() -> None:
    detector = AnomalyDetector(AnomalyParams(week_seconds=0))
    feed(detector, daily_series(3, seed=4))

    state = detector.to_json()

    assert state["week_changes"] == []
    assert len(state["recent"]) <= DAY_SAMPLES + 2


def test_seasonal_change_is_scored() -> None:
    # A daily cycle that flattens on day 4: every value is in range, but the
    # change since the same time yesterday is not.
    values = [50 + 20 * math.sin(2 * math.pi * i / DAY_SAMPLES) for i in range(1152)]
    flat_from = 3 * DAY_SAMPLES + DAY_SAMPLES // 4
    values[flat_from:] = [values[flat_from]] * (len(values) - flat_from)

    scores = feed(AnomalyDetector(), values)

    assert max(scores[flat_from:]) >= ALERT_SCORE


def test_weekly_lag_learns_quiet_weekends() -> None:
    # Weekends are flat and low: unlike the day before, but like a week before.
    values = weekly_series(4, seed=0)
    weekend_days = {day for day in range(7, 28) if day % 7 in (5, 6)}

    with_week = alert_days(feed(AnomalyDetector(), values))
    without_week = alert_days(
        feed(AnomalyDetector(AnomalyParams(week_seconds=0)), values)
    )

    assert not with_week & weekend_days
    assert without_week & weekend_days


def test_out_of_order_sample_is_rejected() -> None:
    detector = AnomalyDetector()
    detector.update(T0, 1.0)
    before = detector.to_json()

    with pytest.raises(ValueError, match="event-time order"):
        detector.update(T0 - 1, 2.0)
    assert detector.to_json() == before


def test_non_finite_value_is_rejected() -> None:
    detector = AnomalyDetector()

    with pytest.raises(ValueError, match="not finite"):
        detector.update(T0, math.nan)
    assert detector.to_json()["count"] == 0

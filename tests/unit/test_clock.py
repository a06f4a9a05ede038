"""The pipeline clock in live and replay mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from factories import T0, at

from streams.clock import Clock

WALL_S = T0.timestamp() + 3600


def live_clock() -> Clock:
    return Clock("live", wall=lambda: WALL_S)


def test_live_clock_reads_wall_time() -> None:
    assert live_clock().timestamp() == WALL_S


def test_live_now_is_aware_utc() -> None:
    now = live_clock().now()

    assert now == datetime.fromtimestamp(WALL_S, UTC)
    assert now.tzinfo is UTC


def test_live_clock_ignores_observed_events() -> None:
    clock = live_clock()
    clock.observe(at(86_400))

    assert clock.timestamp() == WALL_S


def test_replay_clock_starts_at_epoch() -> None:
    assert Clock("replay").now() == datetime(1970, 1, 1, tzinfo=UTC)


def test_replay_clock_follows_observed_events() -> None:
    clock = Clock("replay")
    clock.observe(at(60))

    assert clock.now() == at(60)


def test_replay_clock_never_moves_back() -> None:
    clock = Clock("replay")
    clock.observe(at(60))
    clock.observe(at(30))

    assert clock.now() == at(60)


def test_replay_clock_compares_across_time_zones() -> None:
    clock = Clock("replay")
    plus_two = timezone(timedelta(hours=2))
    clock.observe(at(60).astimezone(plus_two))

    assert clock.now() == at(60)


def test_replay_clock_ignores_wall_time() -> None:
    clock = Clock("replay", wall=lambda: WALL_S)
    clock.observe(at(60))

    assert clock.timestamp() == at(60).timestamp()


def test_replay_stamp_is_event_time() -> None:
    clock = Clock("replay")
    clock.observe(at(600))

    assert clock.stamp(at(60)) == at(60)


def test_live_stamp_of_past_event_is_now() -> None:
    assert live_clock().stamp(at(60)) == datetime.fromtimestamp(WALL_S, UTC)


def test_live_stamp_keeps_future_event_time() -> None:
    future = at(7200)

    assert live_clock().stamp(future) == future


def test_invalid_mode_rejected() -> None:
    with pytest.raises(ValueError, match="invalid clock mode 'later'"):
        Clock("later")

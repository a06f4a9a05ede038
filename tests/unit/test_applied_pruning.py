"""Applied sample ids: the expiry horizon and which ids a prune tick deletes."""

from __future__ import annotations

from streams.analytics.applied import (
    applied_horizon_s,
    applied_key,
    dimension_of,
    prune_applied,
)
from streams.analytics.metrics import WINDOWS, WindowSpec
from streams.keys import partition_of

DAY_S = 86400.0
NOW_S = 1_000 * DAY_S
HORIZON_S = 10 * DAY_S


def test_horizon_covers_weekly_windows() -> None:
    # 30 days of retention, then a weekly window ends 7 days after the
    # sample, expires 7 days after its end, and rounds up to a 1-day step.
    assert applied_horizon_s(30 * DAY_S, WINDOWS.values()) == (30 + 7 + 7 + 1) * DAY_S


def test_horizon_takes_longest_window() -> None:
    windows = [WindowSpec(3600, 3600), WindowSpec(7200, 600)]

    assert applied_horizon_s(100.0, windows) == 100.0 + 2 * 7200 + 600
    assert applied_horizon_s(0.0, WINDOWS.values()) == 15 * DAY_S


def test_old_id_expires() -> None:
    entries = [("all|old", NOW_S - 11 * DAY_S), ("all|new", NOW_S - DAY_S)]

    pruning = prune_applied(entries, NOW_S, HORIZON_S, 100)

    assert pruning.expired == ["all|old"]
    assert pruning.undated == []


def test_id_at_horizon_stays() -> None:
    entries = [("all|edge", NOW_S - HORIZON_S)]

    assert prune_applied(entries, NOW_S, HORIZON_S, 100).expired == []


def test_undated_id_gets_dated() -> None:
    entries = [("all|legacy", True), ("all|old", NOW_S - 20 * DAY_S)]

    pruning = prune_applied(entries, NOW_S, HORIZON_S, 100)

    assert pruning.expired == ["all|old"]
    assert pruning.undated == ["all|legacy"]


def test_limit_takes_oldest_first() -> None:
    entries = [(f"all|s{day}", NOW_S - day * DAY_S) for day in range(11, 21)]
    entries.append(("all|legacy", True))

    pruning = prune_applied(entries, NOW_S, HORIZON_S, 3)

    assert pruning.expired == ["all|s20", "all|s19", "all|s18"]
    assert pruning.undated == []


def test_limit_shared_with_undated() -> None:
    entries = [("all|old", NOW_S - 20 * DAY_S), ("all|a", True), ("all|b", True)]

    pruning = prune_applied(entries, NOW_S, HORIZON_S, 2)

    assert pruning.expired == ["all|old"]
    assert pruning.undated == ["all|a"]


def test_dimension_with_bar_kept_whole() -> None:
    key = applied_key("service:a|b", "0123abcd-1:2")

    assert dimension_of(key) == "service:a|b"


def test_partition_of_spreads_keys() -> None:
    partitions = {partition_of(f"service:s{n}", 4) for n in range(50)}

    assert partitions == {0, 1, 2, 3}

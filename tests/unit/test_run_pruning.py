"""Runbook run pruning: which finished runs leave the table, and admission after it."""

from __future__ import annotations

import random
from typing import Any

from schemas.runbooks import Runbook
from streams.runbooks.engine import (
    TERMINAL,
    RunRetention,
    RunSummary,
    admit,
    expired_runs,
    retention_of,
)

DAY_S = 86400.0
HOUR_S = 3600.0
NOW_S = 1_000 * DAY_S
NOTIFY = {"type": "notify", "receivers": ["pager"], "message": "hi"}


def runbook(name: str = "restart", **safety: Any) -> Runbook:
    return Runbook.model_validate(
        {
            "name": name,
            "owner": "ml",
            "trigger": {"labels": {"team": "ml"}},
            "steps": [{"name": "tell", "action": NOTIFY}],
            "safety": {"target_label": "host", **safety},
        }
    )


def run(
    run_id: str,
    started_s: float,
    status: str = "succeeded",
    target: str = "h1",
    finished_s: float | None = None,
) -> RunSummary:
    finished = started_s if finished_s is None and status in TERMINAL else finished_s
    return RunSummary(run_id, "restart", target, started_s, status, finished)


RETENTION = RunRetention(retention_s=DAY_S, lookback_s=HOUR_S, keep_runs=1)


def test_old_finished_run_expires() -> None:
    history = [run("old", NOW_S - 3 * DAY_S), run("new", NOW_S - HOUR_S / 2)]

    assert expired_runs(history, RETENTION, NOW_S, 100) == ["old"]


def test_recent_finished_run_stays() -> None:
    history = [run("a", NOW_S - DAY_S / 2), run("b", NOW_S - 60)]

    assert expired_runs(history, RETENTION, NOW_S, 100) == []


def test_unfinished_old_run_stays() -> None:
    history = [
        run("waiting", NOW_S - 10 * DAY_S, "awaiting_approval"),
        run("running", NOW_S - 10 * DAY_S, "running"),
        run("queued", NOW_S - 10 * DAY_S, "queued"),
        run("new", NOW_S - 60),
    ]

    assert expired_runs(history, RETENTION, NOW_S, 100) == []


def test_retention_counts_from_finish() -> None:
    started = NOW_S - 3 * DAY_S
    history = [
        run("finished_late", started, finished_s=NOW_S - DAY_S / 2),
        run("finished_early", started + 1, finished_s=started + 60),
        run("new", NOW_S - 60),
    ]

    assert expired_runs(history, RETENTION, NOW_S, 100) == ["finished_early"]


def test_limit_lookback_beyond_retention() -> None:
    retention = RunRetention(retention_s=HOUR_S, lookback_s=3 * DAY_S, keep_runs=1)
    history = [
        run("inside_window", NOW_S - 2 * DAY_S),
        run("outside_window", NOW_S - 4 * DAY_S),
        run("new", NOW_S - 60),
    ]

    assert expired_runs(history, retention, NOW_S, 100) == ["outside_window"]


def test_failure_streak_kept() -> None:
    retention = RunRetention(retention_s=DAY_S, lookback_s=HOUR_S, keep_runs=3)
    history = [
        run("success", NOW_S - 40 * DAY_S),
        run("fail1", NOW_S - 30 * DAY_S, "failed"),
        run("fail2", NOW_S - 20 * DAY_S, "timed_out"),
        run("fail3", NOW_S - 10 * DAY_S, "interrupted"),
    ]

    assert expired_runs(history, retention, NOW_S, 100) == ["success"]


def test_failures_before_success_expire() -> None:
    retention = RunRetention(retention_s=DAY_S, lookback_s=HOUR_S, keep_runs=3)
    history = [
        run("fail1", NOW_S - 30 * DAY_S, "failed"),
        run("fail2", NOW_S - 20 * DAY_S, "failed"),
        run("success", NOW_S - 10 * DAY_S),
    ]

    assert expired_runs(history, retention, NOW_S, 100) == ["fail1", "fail2"]


def test_streak_kept_per_target() -> None:
    history = [
        run("h1_old", NOW_S - 20 * DAY_S, target="h1"),
        run("h1_new", NOW_S - 10 * DAY_S, target="h1"),
        run("h2_only", NOW_S - 30 * DAY_S, target="h2"),
    ]

    assert expired_runs(history, RETENTION, NOW_S, 100) == ["h1_old"]


def test_denied_runs_leave_streak_alone() -> None:
    retention = RunRetention(retention_s=DAY_S, lookback_s=HOUR_S, keep_runs=2)
    history = [
        run("fail1", NOW_S - 30 * DAY_S, "failed"),
        run("fail2", NOW_S - 20 * DAY_S, "failed"),
        run("denied", NOW_S - 10 * DAY_S, "circuit_open"),
        run("limited", NOW_S - 9 * DAY_S, "rate_limited"),
    ]

    assert expired_runs(history, retention, NOW_S, 100) == ["denied", "limited"]


def test_tied_start_times_kept() -> None:
    history = [
        run("older", NOW_S - 20 * DAY_S),
        run("tie_a", NOW_S - 10 * DAY_S),
        run("tie_b", NOW_S - 10 * DAY_S),
    ]

    assert expired_runs(history, RETENTION, NOW_S, 100) == ["older"]


def test_limit_takes_oldest_first() -> None:
    history = [run(f"r{day}", NOW_S - day * DAY_S) for day in range(2, 12)]

    expired = expired_runs(history, RETENTION, NOW_S, 3)

    assert expired == ["r11", "r10", "r9"]


def test_retention_of_takes_longest_limits() -> None:
    books = [
        runbook(
            "a",
            rate_limit={"window": "2h"},
            circuit_breaker={"cooldown": "30m", "max_consecutive_failures": 2},
        ),
        runbook(
            "b",
            rate_limit={"window": "10m"},
            circuit_breaker={"cooldown": "5h", "max_consecutive_failures": 7},
        ),
    ]

    retention = retention_of(books, 30 * DAY_S)

    assert retention.retention_s == 30 * DAY_S
    assert retention.lookback_s == 5 * HOUR_S
    assert retention.keep_runs == 7


def test_retention_of_without_runbooks() -> None:
    retention = retention_of([], DAY_S)

    assert retention.lookback_s == 0.0
    assert retention.keep_runs == 1


def test_pruning_keeps_admission_decisions() -> None:
    """Random histories admit alike with and without the expired runs.

    Only a circuit-open reason may differ: it counts the failures left.
    """
    book = runbook(
        rate_limit={"max_runs": 2, "window": "6h"},
        circuit_breaker={"max_consecutive_failures": 3, "cooldown": "2h"},
    )
    retention = retention_of([book], retention_s=HOUR_S)
    statuses = [*sorted(TERMINAL), "running", "queued", "awaiting_approval"]
    generator = random.Random(7)
    for case in range(300):
        history = [
            run(
                f"r{index}",
                NOW_S - generator.uniform(0, 3 * DAY_S),
                generator.choice(statuses),
                target=generator.choice(["h1", "h2"]),
            )
            for index in range(generator.randint(1, 25))
        ]
        expired = set(expired_runs(history, retention, NOW_S, 1000))
        pruned = [item for item in history if item.run_id not in expired]
        for later_s in (NOW_S, NOW_S + HOUR_S, NOW_S + DAY_S):
            for target in ("h1", "h2"):
                before = admit(book, target, history, later_s)
                after = admit(book, target, pruned, later_s)
                where = (case, target, later_s, sorted(expired))
                assert before.allowed == after.allowed, where
                assert before.status == after.status, where
                assert before.notify_owner == after.notify_owner, where

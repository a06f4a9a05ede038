"""Approval checks of the runbooks stage, on stored run records."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from factories import make_event

from schemas.runbooks import Runbook, RunbookApproval
from streams.runbooks.agent import _approval_problem
from streams.runbooks.runner import Run

NOW = datetime(2024, 3, 1, tzinfo=UTC)
RUNBOOK = Runbook.model_validate(
    {
        "name": "restart",
        "owner": "ml",
        "trigger": {"labels": {"team": "ml"}},
        "steps": [
            {
                "name": "approve",
                "action": {"type": "approval", "approvers": ["alice"], "ttl": "5m"},
            },
            {
                "name": "tell",
                "action": {"type": "notify", "receivers": ["pager"], "message": "hi"},
            },
        ],
    }
)
PIPELINE: Any = SimpleNamespace(clock=SimpleNamespace(now=lambda: NOW))


def stored(status: str) -> dict[str, Any]:
    run = Run(RUNBOOK, make_event(), "run-1", "h1", 0, status=status, started_at=NOW)
    record: dict[str, Any] = run.record().model_dump(mode="json")
    return record


def approval(approver: str) -> RunbookApproval:
    return RunbookApproval(
        approval_id="a-1",
        run_id="run-1",
        group_key="g1",
        approver=approver,
        source="http",
        at=NOW,
    )


def problem(status: str, approver: str, waiting_here: bool = False) -> str | None:
    by_name = {RUNBOOK.name: RUNBOOK}
    return _approval_problem(
        PIPELINE, stored(status), by_name, approval(approver), waiting_here
    )


def test_awaiting_run_accepts_approver() -> None:
    assert problem("awaiting_approval", "alice") is None


def test_running_run_rejects_approval() -> None:
    assert problem("running", "alice") == "the run is running, not awaiting approval"


def test_lagging_table_accepts_waiting_run() -> None:
    # After a rebalance the table can still show the run's earlier record.
    assert problem("running", "alice", waiting_here=True) is None


def test_waiting_run_still_checks_approver() -> None:
    reason = problem("running", "mallory", waiting_here=True)

    assert reason is not None
    assert "'mallory' is not an approver" in reason

"""Runbook decisions: trigger matching, admission, concurrency slots, recovery.

Every function here is pure or keeps only in-memory state, and takes the
time as an argument in Unix seconds, so tests drive the clock directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.records import EventKind, IncidentEvent, group_key_of
from schemas.runbooks import Runbook, Safety, Step

# Statuses after which a run does nothing more.
TERMINAL = frozenset(
    {
        "succeeded",
        "failed",
        "rendered",
        "timed_out",
        "expired",
        "rate_limited",
        "circuit_open",
        "interrupted",
    }
)
# Runs the admission check turned away; they count neither as runs nor failures.
DENIED = frozenset({"rate_limited", "circuit_open"})
# Outcomes the circuit breaker counts as failures.
FAILURES = frozenset({"failed", "timed_out", "interrupted"})


def trigger_matches(runbook: Runbook, event: IncidentEvent) -> bool:
    """Return whether `event` starts a run of `runbook`."""
    return not trigger_mismatches(runbook, event)


def trigger_mismatches(runbook: Runbook, event: IncidentEvent) -> list[str]:
    """List each matcher of the runbook's trigger that `event` does not meet."""
    trigger = runbook.trigger
    problems = []
    if str(event.kind) not in trigger.transitions:
        problems.append(
            f"transition {event.kind} is not in transitions: {trigger.transitions}"
        )
    for name, value in trigger.labels.items():
        if event.labels.get(name) != value:
            found = event.labels.get(name)
            problems.append(f"label {name}={found!r} is not {value!r}")
    if trigger.severity and event.severity not in trigger.severity:
        allowed = [str(s) for s in trigger.severity]
        problems.append(f"severity {event.severity} is not in {allowed}")
    if trigger.rules and event.rule not in trigger.rules:
        problems.append(f"rule {event.rule!r} is not in {trigger.rules}")
    return problems


def target_of(safety: Safety, labels: dict[str, str]) -> str:
    """Return the target an incident's run acts on, or "" without a target label."""
    if safety.target_label is None:
        return ""
    return labels.get(safety.target_label, "")


def run_id_of(event: IncidentEvent, runbook: str) -> str:
    """Return the id of the run an incident event causes; redeliveries share it."""
    return f"{event.idempotency_key}:{runbook}"


def group_key_of_run(run_id: str) -> str:
    """Return the group key of a run id (`<incident id>:<seq>:<runbook>`).

    Raises ValueError naming the value when it is not a run id.
    """
    parts = run_id.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
        raise ValueError(
            f"invalid run id {run_id!r}: expected <incident id>:<seq>:<runbook>"
        )
    return group_key_of(parts[0])


@dataclass(frozen=True)
class RunSummary:
    """An earlier run, as far as admission reads it."""

    run_id: str
    runbook: str
    target: str
    started_s: float
    status: str
    finished_s: float | None = None


@dataclass(frozen=True)
class Admission:
    """Whether a new run may start; `reason` names the limit that stopped it."""

    allowed: bool
    reason: str | None = None
    status: str | None = None
    notify_owner: bool = False


def admit(
    runbook: Runbook, target: str, history: Iterable[RunSummary], now_s: float
) -> Admission:
    """Decide whether a run of `runbook` on `target` may start at `now_s`.

    The rate limit counts admitted runs whose start lies within the window.
    The circuit breaker opens after the configured number of consecutive
    failures and lets one trial run through once `cooldown` has passed
    since the last failure. The owner is notified of a denial unless an
    earlier denial for the same reason lies within one window (or one
    cooldown) of it. Incidents on several partitions arrive out of event
    time order, so that distance is measured both ways.
    """
    runs = sorted(
        (r for r in history if r.runbook == runbook.name and r.target == target),
        key=lambda r: r.started_s,
    )
    admitted = [r for r in runs if r.status not in DENIED]
    safety = runbook.safety

    breaker = _breaker_reason(runbook, admitted, now_s)
    if breaker is not None:
        cooldown_s = safety.circuit_breaker.cooldown.total_seconds()
        notify = _first_denial(runs, "circuit_open", now_s, cooldown_s)
        return Admission(False, breaker, "circuit_open", notify)

    window_s = safety.rate_limit.window.total_seconds()
    recent = [r for r in admitted if r.started_s > now_s - window_s]
    if len(recent) >= safety.rate_limit.max_runs:
        reason = (
            f"rate limit reached: {len(recent)} runs on target {target!r} within "
            f"{window_s:g} s, maximum {safety.rate_limit.max_runs}"
        )
        notify = _first_denial(runs, "rate_limited", now_s, window_s)
        return Admission(False, reason, "rate_limited", notify)
    return Admission(True)


def _first_denial(
    runs: list[RunSummary], status: str, now_s: float, span_s: float
) -> bool:
    return not any(
        r.status == status and abs(now_s - r.started_s) < span_s for r in runs
    )


def _breaker_reason(
    runbook: Runbook, admitted: list[RunSummary], now_s: float
) -> str | None:
    settings = runbook.safety.circuit_breaker
    in_progress = False
    failures: list[RunSummary] = []
    for run in reversed(admitted):
        if run.status not in TERMINAL:
            in_progress = in_progress or not failures
            continue
        if run.status not in FAILURES:
            break
        failures.append(run)
    if len(failures) < settings.max_consecutive_failures:
        return None
    cooldown_s = settings.cooldown.total_seconds()
    if now_s - failures[0].started_s >= cooldown_s:
        if in_progress:
            return "circuit open: a trial run after the cooldown is in progress"
        return None
    return (
        f"circuit open: {len(failures)} consecutive failures, maximum "
        f"{settings.max_consecutive_failures}; it closes for one trial run "
        f"{cooldown_s:g} s after the last failure"
    )


@dataclass(frozen=True)
class RunRetention:
    """How long finished runs stay in the run table before pruning removes them.

    A run goes once it finished more than `retention_s` ago and started more
    than `lookback_s` ago. Per runbook and target, the newest finished runs
    that admission counts stay regardless: up to the first that is not a
    failure, at most `keep_runs` of them.
    """

    retention_s: float
    lookback_s: float
    keep_runs: int


def retention_of(runbooks: Iterable[Runbook], retention_s: float) -> RunRetention:
    """Derive the run retention from the setting and every runbook's limits.

    The rate limit counts runs started within its window, and a denial
    notifies the owner unless an earlier one lies within the window or the
    cooldown, so the look-back is the longest of those. The circuit breaker
    reads the streak of consecutive failures however old it is, up to
    `max_consecutive_failures` runs, so that many newest runs are kept.
    """
    lookback_s = 0.0
    keep_runs = 1
    for runbook in runbooks:
        safety = runbook.safety
        lookback_s = max(
            lookback_s,
            safety.rate_limit.window.total_seconds(),
            safety.circuit_breaker.cooldown.total_seconds(),
        )
        keep_runs = max(keep_runs, safety.circuit_breaker.max_consecutive_failures)
    return RunRetention(retention_s, lookback_s, keep_runs)


def expired_runs(
    history: Iterable[RunSummary],
    retention: RunRetention,
    now_s: float,
    limit: int,
) -> list[str]:
    """List the ids of finished runs that pruning removes at `now_s`, oldest first.

    At most `limit` ids are listed. Removing them leaves every admission at
    `now_s` or later as it was, because admission reads only the runs
    `RunRetention` keeps. Only the reason of an open circuit can change: it
    counts the consecutive failures left, at least `keep_runs`.
    """
    runs = list(history)
    kept = _breaker_streaks(runs, retention.keep_runs)
    expired = [
        run
        for run in runs
        if run.status in TERMINAL
        and run.run_id not in kept
        and now_s - run.started_s > retention.lookback_s
        and now_s - _finished_s(run) > retention.retention_s
    ]
    expired.sort(key=lambda run: run.started_s)
    return [run.run_id for run in expired[:limit]]


def _finished_s(run: RunSummary) -> float:
    return run.started_s if run.finished_s is None else run.finished_s


def _breaker_streaks(runs: list[RunSummary], keep_runs: int) -> set[str]:
    """Return the ids of the finished runs the circuit breaker reads.

    Per runbook and target these are the newest admitted finished runs, up
    to and including the first that is not a failure, at most `keep_runs`.
    Runs that started at the same time as the oldest of those stay too,
    because admission orders such ties arbitrarily.
    """
    groups: dict[tuple[str, str], list[RunSummary]] = {}
    for run in runs:
        if run.status in TERMINAL and run.status not in DENIED:
            groups.setdefault((run.runbook, run.target), []).append(run)
    kept: set[str] = set()
    for group in groups.values():
        group.sort(key=lambda run: run.started_s, reverse=True)
        oldest_kept_s = group[0].started_s
        for run in group[:keep_runs]:
            oldest_kept_s = run.started_s
            if run.status not in FAILURES:
                break
        kept.update(run.run_id for run in group if run.started_s >= oldest_kept_s)
    return kept


@dataclass
class Slots:
    """Concurrency slots held by running runs, per runbook and per target."""

    occupied: dict[str, tuple[str, str]] = field(default_factory=dict)

    def try_acquire(
        self, run_id: str, runbook: str, target: str, safety: Safety
    ) -> bool:
        """Take a slot for `run_id` if both limits allow it; True once taken."""
        if run_id in self.occupied:
            return True
        same_runbook = [t for rb, t in self.occupied.values() if rb == runbook]
        if len(same_runbook) >= safety.max_concurrent:
            return False
        if same_runbook.count(target) >= safety.max_concurrent_per_target:
            return False
        self.occupied[run_id] = (runbook, target)
        return True

    def release(self, run_id: str) -> None:
        self.occupied.pop(run_id, None)


def should_retry(step: Step, attempt: int, outcome: str) -> bool:
    """Return whether a step whose attempt `attempt` (from 1) ended so runs again."""
    return outcome in {"failed", "timed_out"} and attempt <= step.retries


def recovery_of(status: str) -> str:
    """Decide what a restarted worker does with a run it finds in `status`.

    A queued run, or one waiting for an approval, resumes because no step
    of it is in flight. A running run, including one waiting between
    retries, is marked interrupted: its last attempt may or may not have
    taken effect, so running it again is unsafe.
    """
    if status in TERMINAL:
        return "none"
    if status in {"queued", "awaiting_approval"}:
        return "resume"
    return "interrupt"


def waits_end(condition: str, rule: str | None, event: IncidentEvent) -> bool:
    """Return whether `event` meets a wait step's condition."""
    if event.kind is EventKind.RESOLVED:
        return True
    if condition != "alert_resolved" or event.kind is not EventKind.ALERT_RESOLVED:
        return False
    return rule is None or event.rule == rule or event.details.get("rule") == rule

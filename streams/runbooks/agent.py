"""faust glue for runbooks: timeline and approvals in, runbook runs out.

Run state lives in the `runbook-run-state` table, keyed by run id. A run id
derives from the triggering event's idempotency key, so a redelivered event
finds its run and starts nothing. The claim is written while the triggering
event is processed; later changes come back through `runbook-runs`.
Finished runs leave the table once `expired_runs` allows it, and the
`runbook-runs` topic keeps every record of them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from handlers.shell_action import kill_recorded_group
from schemas.records import (
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    ProcessGroup,
    RunbookRun,
)
from schemas.runbooks import ApprovalAction, Runbook, RunbookApproval
from streams import prune, topics
from streams.keys import partition_of
from streams.runbooks.engine import (
    TERMINAL,
    RunRetention,
    RunSummary,
    admit,
    expired_runs,
    group_key_of_run,
    recovery_of,
    retention_of,
    run_id_of,
    target_of,
    trigger_matches,
)
from streams.runbooks.runner import Run, Runner, from_record

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    states = pipeline.table("runbook-run-state", default=None)
    triggers = pipeline.table("runbook-run-trigger", default=None)
    pipeline.tables["runbook-runs"] = states
    runner = Runner(pipeline)
    by_name = {runbook.name: runbook for runbook in pipeline.config.runbooks}
    retention = retention_of(
        pipeline.config.runbooks, pipeline.settings.runbook_run_retention_s
    )
    ticks_name = prune.ticks_name(pipeline)

    async def runbooks(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "runbooks", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            runner.observe(incident_event)
            for runbook in pipeline.config.runbooks:
                if trigger_matches(runbook, incident_event):
                    await _claim(
                        pipeline,
                        runner,
                        states,
                        triggers,
                        runbook,
                        incident_event,
                        event.message.partition,
                    )

    async def run_states(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == ticks_name:
                now_s = await prune.tick_time(pipeline, "runbooks", event)
                if now_s is not None:
                    partition = event.message.partition
                    _prune(pipeline, states, triggers, retention, partition, now_s)
                continue
            run = await pipeline.dead_letters.parse(
                "runbooks", event, RunbookRun.model_validate_json
            )
            if run is None:
                continue
            states[run.run_id] = run.model_dump(mode="json")
            if run.status in TERMINAL:
                triggers.pop(run.run_id, None)
                runner.finishing.discard(run.run_id)

    async def approvals(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            approval = await pipeline.dead_letters.parse(
                "runbooks", event, RunbookApproval.model_validate_json
            )
            if approval is not None:
                await _apply_approval(pipeline, runner, states, by_name, approval)

    async def recover() -> None:
        await _recover(pipeline, runner, states, triggers, by_name)

    async def stop_runs(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runner.stop()

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="runbooks")(runbooks)
    app.agent(prune.with_ticks(pipeline, topics.RUNBOOK_RUNS), name="runbook-states")(
        run_states
    )
    app.agent(pipeline.topic(topics.RUNBOOK_APPROVALS), name="runbook-approvals")(
        approvals
    )
    app.timer(pipeline.settings.tick_interval_s, name="runbook-recovery")(recover)
    # faust's App.on_stop sends it after stopping the consumer and before
    # flushing the producer.
    app.on_before_shutdown.connect(stop_runs)


def _history(states: faust.Table[str, Any]) -> list[RunSummary]:
    return [_summary(run_id, stored) for run_id, stored in states.items()]


def _summary(run_id: str, stored: dict[str, Any]) -> RunSummary:
    started = datetime.fromisoformat(stored["started_at"]).timestamp()
    finished = None
    if stored.get("finished_at"):
        finished = datetime.fromisoformat(stored["finished_at"]).timestamp()
    return RunSummary(
        run_id,
        stored["runbook"],
        stored["target"],
        started,
        stored["status"],
        finished,
    )


def _prune(
    pipeline: Pipeline,
    states: faust.Table[str, Any],
    triggers: faust.Table[str, Any],
    retention: RunRetention,
    partition: int,
    now_s: float,
) -> None:
    """Delete the expired runs stored on `partition`, with their triggers.

    It runs while a tick of `partition` is processed, so the deletions go to
    that partition's changelog. It reads only that partition's runs, because
    after a rebalance a worker may own any set of partitions. So the newest
    runs the limits read are chosen per partition.
    """
    count = pipeline.settings.topic_partitions
    history = [
        _summary(run_id, stored)
        for run_id, stored in states.items()
        if partition_of(stored.get("group_key") or group_key_of_run(run_id), count)
        == partition
    ]
    limit = pipeline.settings.prune_max_keys
    expired = expired_runs(history, retention, now_s, limit)
    for run_id in expired:
        states.pop(run_id, None)
        triggers.pop(run_id, None)
    if expired:
        log.info(
            "runbook runs pruned partition=%d count=%d kept=%d",
            partition,
            len(expired),
            len(history) - len(expired),
        )


async def _claim(
    pipeline: Pipeline,
    runner: Runner,
    states: faust.Table[str, Any],
    triggers: faust.Table[str, Any],
    runbook: Runbook,
    event: IncidentEvent,
    partition: int,
) -> None:
    """Start a run of `runbook` for `event` unless one exists or a limit stops it."""
    run_id = run_id_of(event, runbook.name)
    if states.get(run_id) is not None:
        log.info("runbook run exists, redelivery skipped run_id=%s", run_id)
        return
    target = target_of(runbook.safety, event.labels)
    run = Run(runbook, event, run_id, target, partition)
    now = pipeline.clock.stamp(event.at)
    run.started_at = now
    admission = admit(runbook, target, _history(states), now.timestamp())
    if not admission.allowed:
        run.status = str(admission.status)
        states[run_id] = run.record().model_dump(mode="json")
        log.warning(
            "runbook run denied run_id=%s reason=%s notify_owner=%s",
            run_id,
            admission.reason,
            admission.notify_owner,
        )
        if admission.notify_owner:
            message = f"runbook {runbook.name} stopped: {admission.reason}"
            await runner.notify(run, runbook.owner_receivers, message)
        await runner.finish(run, str(admission.status), admission.reason)
        return
    # The claim and the task start with no await between them, so the
    # recovery timer never finds a claimed run without its task.
    states[run_id] = run.record().model_dump(mode="json")
    triggers[run_id] = {"event": event.model_dump(mode="json"), "partition": partition}
    runner.start(run)


async def _apply_approval(
    pipeline: Pipeline,
    runner: Runner,
    states: faust.Table[str, Any],
    by_name: dict[str, Runbook],
    approval: RunbookApproval,
) -> None:
    """Hand a valid approval to its waiting run, or store it for a resumed run."""
    stored = states.get(approval.run_id)
    # The table can lag the runner's own record after a rebalance, so a run
    # that waits for approval in this worker counts as waiting.
    waiting_here = approval.run_id in runner.approvals
    problem = _approval_problem(pipeline, stored, by_name, approval, waiting_here)
    if problem is not None:
        log.warning(
            "runbook approval rejected run_id=%s approver=%s reason=%s",
            approval.run_id,
            approval.approver,
            problem,
        )
        if stored is not None:
            await _record_rejection(pipeline, stored, approval, problem)
        return
    log.info(
        "runbook approval accepted run_id=%s approver=%s",
        approval.run_id,
        approval.approver,
    )
    if stored is not None and not runner.approve(approval.run_id, approval.approver):
        # The run resumes after a restart and finds the approval stored.
        states[approval.run_id] = {**stored, "approved_by": approval.approver}


async def _record_rejection(
    pipeline: Pipeline,
    stored: dict[str, Any],
    approval: RunbookApproval,
    problem: str,
) -> None:
    """Put a rejected approval on the incident's timeline, for the audit."""
    command = Command(
        command_id=f"{approval.run_id}:approval:{approval.approval_id}",
        kind=CommandKind.RECORD,
        incident_id=stored["incident_id"],
        actor=approval.approver,
        source="runbook",
        at=pipeline.clock.now(),
        event_kind=EventKind.RUNBOOK_STEP,
        details={
            "run_id": approval.run_id,
            "runbook": stored["runbook"],
            "approval": "rejected",
            "approver": approval.approver,
            "via": approval.source,
            "reason": problem,
        },
    )
    await pipeline.publish(topics.COMMANDS, approval.group_key, command)


def _approval_problem(
    pipeline: Pipeline,
    stored: dict[str, Any] | None,
    by_name: dict[str, Runbook],
    approval: RunbookApproval,
    waiting_here: bool = False,
) -> str | None:
    if stored is None:
        return "no such run"
    if stored["status"] != "awaiting_approval" and not waiting_here:
        return f"the run is {stored['status']}, not awaiting approval"
    action = pending_approval(stored, by_name)
    if action is None:
        return "the run's approval step is no longer in the configuration"
    if approval.approver not in action.approvers and (
        approval.user_id not in action.approvers
    ):
        return f"{approval.approver!r} is not an approver; allowed: {action.approvers}"
    deadline = RunbookRun.model_validate(stored).deadline
    if deadline is not None and pipeline.clock.now() >= deadline:
        return "the approval expired"
    return None


def pending_approval(
    stored: dict[str, Any], by_name: dict[str, Runbook]
) -> ApprovalAction | None:
    """Return the approval action a run awaiting approval waits on."""
    runbook = by_name.get(stored["runbook"])
    if runbook is None:
        return None
    name = next_step_name(runbook, stored)
    for step in runbook.steps:
        if step.name == name and isinstance(step.action, ApprovalAction):
            return step.action
    return None


def next_step_name(runbook: Runbook, stored: dict[str, Any]) -> str | None:
    """Return the first main step without a succeeded entry in the stored run."""
    done = {
        entry["step"]
        for entry in stored.get("steps", [])
        if entry.get("status") == "succeeded"
    }
    for step in runbook.steps:
        if step.name not in done:
            return step.name
    return None


async def _recover(
    pipeline: Pipeline,
    runner: Runner,
    states: faust.Table[str, Any],
    triggers: faust.Table[str, Any],
    by_name: dict[str, Runbook],
) -> None:
    """Resume or interrupt the unfinished runs no task of this worker owns.

    It waits for table recovery, because a half-recovered table can show a
    run as running whose terminal record is not replayed yet.
    """
    tables: Any = pipeline.app.tables
    if not tables.recovery.completed.is_set() or pipeline.app.rebalancing:
        return
    source = pipeline.settings.topic(topics.INCIDENT_EVENTS.name)
    actives = {
        tp.partition
        for tp in pipeline.app.assignor.assigned_actives()
        if tp.topic == source
    }
    for run_id, stored in list(states.items()):
        if stored["status"] in TERMINAL:
            continue
        if run_id in runner.tasks or run_id in runner.finishing:
            continue
        trigger = triggers.get(run_id)
        if trigger is None or trigger["partition"] not in actives:
            continue
        event = IncidentEvent.model_validate(trigger["event"])
        # A program the stopped worker left running must end before the run
        # resumes or ends, or a new run on the same target could overlap it.
        killed = _kill_orphan(stored)
        runbook = by_name.get(stored["runbook"])
        if runbook is None:
            await _interrupt_removed(pipeline, stored, killed)
            continue
        run = from_record(stored, runbook, event, trigger["partition"])
        resume_at = None
        if stored["status"] == "awaiting_approval":
            resume_at = next_step_name(runbook, stored)
        if recovery_of(stored["status"]) == "interrupt" or (
            stored["status"] == "awaiting_approval" and resume_at is None
        ):
            log.warning("runbook run interrupted run_id=%s", run_id)
            reason = (
                "the worker restarted while a step was in flight; its effect is "
                "unknown, so the run was not retried" + killed
            )
            await runner.finish(run, "interrupted", reason)
            continue
        log.info("runbook run resumed run_id=%s status=%s", run_id, stored["status"])
        runner.start(run, resume_at)


def _kill_orphan(stored: dict[str, Any]) -> str:
    """Kill the shell step's program that an earlier worker left running.

    Returns a sentence for the run's reason, starting with "; ", or "" when
    there was nothing to kill.
    """
    recorded = stored.get("process_group")
    if recorded is None:
        return ""
    group = ProcessGroup.model_validate(recorded)
    outcome = kill_recorded_group(group)
    if outcome == "killed":
        log.warning(
            "runbook step program killed after restart run_id=%s pgid=%d",
            stored["run_id"],
            group.pgid,
        )
        return f"; its program (process group {group.pgid}) still ran and was killed"
    if outcome == "other_machine":
        # NOTE: a worker on another machine cannot reach the group, so a
        # program left behind there keeps running until it exits.
        log.warning(
            "runbook step program recorded under another boot id, not killed "
            "run_id=%s pgid=%d boot_id=%s",
            stored["run_id"],
            group.pgid,
            group.boot_id,
        )
        return (
            f"; its program (process group {group.pgid}) ran on another machine "
            "or before a reboot and was not checked"
        )
    return ""


async def _interrupt_removed(
    pipeline: Pipeline, stored: dict[str, Any], killed: str = ""
) -> None:
    """End a run whose runbook was removed from the configuration."""
    run = RunbookRun.model_validate(stored)
    log.warning("runbook run interrupted, runbook removed run_id=%s", run.run_id)
    ended = run.model_copy(
        update={
            "status": "interrupted",
            "finished_at": pipeline.clock.now(),
            "reason": f"runbook {run.runbook!r} is no longer configured" + killed,
            "process_group": None,
        }
    )
    await pipeline.publish(topics.RUNBOOK_RUNS, run.group_key, ended)

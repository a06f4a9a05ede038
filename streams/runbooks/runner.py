"""Execute one runbook run: slots, steps with timeouts and retries, rollback.

A run is an asyncio task of the worker that owns the incident's partition.
It never writes tables: every change of its status is published to
`runbook-runs`, where the runbooks state agent stores it, and to the
timeline through `commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiokafka.errors import KafkaError

from handlers.http_action import send_request
from handlers.shell_action import (
    KILL_WAIT_S,
    ShellRejected,
    kill_group,
    process_group_of,
    run_command,
)
from schemas.records import (
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    Notification,
    ProcessGroup,
    RunbookRun,
)
from schemas.runbooks import (
    ApprovalAction,
    HttpAction,
    NotifyAction,
    PublishAction,
    Runbook,
    ShellAction,
    Step,
    WaitAction,
)
from streams import topics
from streams.keys import encode_key
from streams.runbooks.engine import Slots, should_retry, waits_end
from streams.runbooks.render import (
    REDACTED,
    TemplateError,
    redact_values,
    render_action,
    secret_fields,
    secret_forms,
    secret_values,
    template_fields,
)

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

# How often a waiting step looks at the pipeline clock, in wall seconds.
POLL_S = 0.2
# Resolves remembered per incident, and incidents remembered, so a wait step
# that starts after its condition was met ends at once.
ENDINGS_PER_INCIDENT = 16
INCIDENTS_WITH_ENDINGS = 1024
ENDING_KINDS = frozenset({EventKind.RESOLVED, EventKind.ALERT_RESOLVED})


@dataclass
class Run:
    """The in-memory state of one run, published as a RunbookRun on each change."""

    runbook: Runbook
    event: IncidentEvent
    run_id: str
    target: str
    partition: int
    status: str = "queued"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    approved_by: str | None = None
    deadline: datetime | None = None
    records: int = 0
    notices: int = 0
    # Tells the timeline commands of a resumed run from the first ones.
    incarnation: str = "0"
    # Every form of the run's secret values (see `secret_forms`). Records,
    # notifications and logs of the run show them as REDACTED.
    secrets: list[str] = field(default_factory=list, repr=False)
    # The shell step in flight, stored so a restarted worker can kill it.
    process_group: ProcessGroup | None = None

    def redact(self, value: Any) -> Any:
        """Replace the run's secret values inside the strings of a JSON value."""
        return redact_values(value, self.secrets)

    def record(self) -> RunbookRun:
        return RunbookRun(
            run_id=self.run_id,
            runbook=self.runbook.name,
            incident_id=self.event.incident_id,
            dry_run=self.runbook.dry_run,
            status=self.status,
            started_at=self.started_at or self.event.at,
            finished_at=self.finished_at,
            steps=self.redact(self.steps),
            group_key=self.event.group_key,
            target=self.target,
            reason=self.redact(self.reason),
            approved_by=self.approved_by,
            deadline=self.deadline,
            process_group=self.process_group,
        )


@dataclass(frozen=True)
class Stopped:
    """A bounded wait that reached its deadline; `by` names the clock."""

    by: str


class Runner:
    """Start, execute and account for the runs of this worker."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.slots = Slots()
        self.slot_freed = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # Runs whose terminal record is sent but not yet stored in the table.
        self.finishing: set[str] = set()
        self.approvals: dict[str, asyncio.Future[str]] = {}
        self.waits: dict[str, list[tuple[WaitAction, asyncio.Future[None]]]] = {}
        self.endings: OrderedDict[str, deque[IncidentEvent]] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None
        # The process group of each run's shell step in flight, by run id.
        self.process_groups: dict[str, int] = {}
        self.stopping = False

    def start(self, run: Run, resume_at: str | None = None) -> None:
        """Start `run` as a task; `resume_at` names an approval step to resume.

        After `stop` nothing starts: the run stays stored as it is, and
        the worker that owns its partition next resumes or interrupts it.
        """
        if self.stopping:
            log.info("runbook run not started, worker stopping run_id=%s", run.run_id)
            return
        task = asyncio.ensure_future(self._execute(run, resume_at))
        self.tasks[run.run_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(run.run_id, None))

    async def stop(self) -> None:
        """Kill the programs of shell steps in flight, cancel every run, close HTTP.

        The runs stay stored with their last status, as after a crash, so
        the worker that owns their partitions next resumes or interrupts them.
        """
        self.stopping = True
        for run_id, pgid in list(self.process_groups.items()):
            log.warning(
                "runbook shell step killed, worker stopping run_id=%s pgid=%d",
                run_id,
                pgid,
            )
            kill_group(pgid)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=KILL_WAIT_S)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def approve(self, run_id: str, approver: str) -> bool:
        """Resolve the pending approval of `run_id`; False when none waits here."""
        future = self.approvals.get(run_id)
        if future is None or future.done():
            return False
        future.set_result(approver)
        return True

    def observe(self, event: IncidentEvent) -> None:
        """End the wait steps that `event` satisfies, and remember a resolve."""
        for action, future in self.waits.get(event.incident_id, []):
            if not future.done() and waits_end(action.condition, action.rule, event):
                future.set_result(None)
        if event.kind not in ENDING_KINDS:
            return
        seen = self.endings.setdefault(
            event.incident_id, deque(maxlen=ENDINGS_PER_INCIDENT)
        )
        seen.append(event)
        self.endings.move_to_end(event.incident_id)
        while len(self.endings) > INCIDENTS_WITH_ENDINGS:
            self.endings.popitem(last=False)

    def met_before_wait(self, run: Run, action: WaitAction) -> IncidentEvent | None:
        """Return a resolve after the run's trigger that already meets `action`."""
        for seen in self.endings.get(run.event.incident_id, ()):
            if seen.seq <= run.event.seq:
                continue
            if waits_end(action.condition, action.rule, seen):
                return seen
        return None

    async def publish_state(self, run: Run) -> None:
        await self.pipeline.publish(
            topics.RUNBOOK_RUNS, run.event.group_key, run.record()
        )

    async def record(self, run: Run, kind: EventKind, details: dict[str, Any]) -> None:
        """Put an event of the run on the incident's timeline."""
        run.records += 1
        command = Command(
            command_id=f"{run.run_id}:{run.incarnation}:{kind}:{run.records}",
            kind=CommandKind.RECORD,
            incident_id=run.event.incident_id,
            actor=run.runbook.name,
            source="runbook",
            at=self.now(run.event),
            event_kind=kind,
            details={
                "run_id": run.run_id,
                "runbook": run.runbook.name,
                **run.redact(details),
            },
        )
        await self.pipeline.publish(topics.COMMANDS, run.event.group_key, command)

    def now(self, event: IncidentEvent) -> datetime:
        return self.pipeline.clock.stamp(event.at)

    async def finish(self, run: Run, status: str, reason: str | None = None) -> None:
        self.finishing.add(run.run_id)
        run.status = status
        run.reason = reason
        run.finished_at = self.now(run.event)
        log.info(
            "runbook run finished run_id=%s runbook=%s status=%s dry_run=%s",
            run.run_id,
            run.runbook.name,
            status,
            run.runbook.dry_run,
        )
        await self.publish_state(run)
        await self.record(
            run,
            EventKind.RUNBOOK_FINISHED,
            {
                "status": status,
                "dry_run": run.runbook.dry_run,
                "reason": reason,
                "approved_by": run.approved_by,
                "target": run.target,
                "steps": run.steps,
            },
        )

    async def notify(
        self,
        run: Run,
        receivers: list[str],
        message: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Send `message` about the run's incident to `receivers`.

        Secret values in `message` and `extra` are sent redacted.
        """
        details = {
            "runbook": run.runbook.name,
            "run_id": run.run_id,
            "message": run.redact(message),
            **run.redact(extra or {}),
        }
        event = run.event.model_copy(
            update={"kind": EventKind.RUNBOOK_FINISHED, "details": details}
        )
        run.notices += 1
        for receiver in receivers:
            notification = Notification(
                notification_id=(
                    f"{run.run_id}:{run.incarnation}:notify:{run.notices}:{receiver}"
                ),
                receiver=receiver,
                event=event,
            )
            await self.pipeline.publish(
                topics.NOTIFICATIONS, run.event.group_key, notification
            )

    # The run itself.

    async def _execute(self, run: Run, resume_at: str | None) -> None:
        try:
            await self._execute_steps(run, resume_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must fail the run, not leave it running
            trace = "".join(traceback.format_exception(exc))
            log.error(
                "runbook run crashed run_id=%s\n%s", run.run_id, run.redact(trace)
            )
            await self.finish(run, "failed", f"internal error: {exc!r}")
        finally:
            self.slots.release(run.run_id)
            self.slot_freed.set()
            self.approvals.pop(run.run_id, None)

    async def _execute_steps(self, run: Run, resume_at: str | None) -> None:
        if run.runbook.dry_run:
            await self._render_only(run, self._fields(run, redact=True))
            return
        try:
            fields = self._fields(run, redact=False)
        except TemplateError as exc:
            await self.finish(run, "failed", str(exc))
            return
        redacted = self._fields(run, redact=True)
        run.secrets = secret_forms(secret_values(fields, redacted))

        await self._acquire_slot(run)
        await self._mark_running(run, resumed=resume_at is not None)

        for step in self._steps_from(run.runbook, resume_at):
            outcome = await self._run_step(run, step, fields, redacted)
            if outcome == "expired":
                reason = f"approval step {step.name!r} expired"
                await self.finish(run, "expired", reason)
                return
            if outcome != "succeeded":
                await self._rollback(run, fields, redacted)
                await self.finish(run, outcome, f"step {step.name!r} {outcome}")
                return

        await self._verify(run, fields, redacted)

    def _fields(self, run: Run, redact: bool) -> dict[str, str]:
        """Return the template fields, with secrets read or redacted.

        Redacted fields read no environment variable, so a dry run needs no
        secret. Raises TemplateError when a secret's variable is not set.
        """
        fields = template_fields(run.event, run.runbook.name)
        if redact:
            names = run.runbook.secrets
            return {**fields, **{f"secrets.{name}": REDACTED for name in names}}
        return {**fields, **secret_fields(run.runbook, os.environ)}

    async def _mark_running(self, run: Run, resumed: bool) -> None:
        run.status = "running"
        run.started_at = run.started_at or self.now(run.event)
        await self.publish_state(run)
        details = {"dry_run": False, "target": run.target, "resumed": resumed}
        await self.record(run, EventKind.RUNBOOK_STARTED, details)

    @staticmethod
    def _steps_from(runbook: Runbook, resume_at: str | None) -> list[Step]:
        """Return the main steps, from the one named `resume_at` if given."""
        if resume_at is None:
            return list(runbook.steps)
        names = [step.name for step in runbook.steps]
        return list(runbook.steps[names.index(resume_at) :])

    async def _render_only(self, run: Run, redacted: dict[str, str]) -> None:
        """Render and record every step, execute none (dry-run)."""
        run.started_at = self.now(run.event)
        status = "rendered"
        for step in run.runbook.all_steps():
            entry: dict[str, Any] = {"step": step.name, "action": step.action.type}
            try:
                entry["input"] = render_action(step.action, redacted)
                entry["status"] = "rendered"
            except TemplateError as exc:
                entry.update(status="failed", error=str(exc))
                status = "failed"
            run.steps.append(entry)
        await self.finish(
            run, status, None if status == "rendered" else "render failed"
        )

    async def _acquire_slot(self, run: Run) -> None:
        safety = run.runbook.safety
        while not self.slots.try_acquire(
            run.run_id, run.runbook.name, run.target, safety
        ):
            self.slot_freed.clear()
            # Bounded so a missed wake-up costs one poll, not the run.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.slot_freed.wait(), POLL_S * 5)

    async def _run_step(
        self,
        run: Run,
        step: Step,
        fields: dict[str, str],
        redacted: dict[str, str],
    ) -> str:
        """Run a step with its retries and return its final outcome."""
        attempt = 1
        while True:
            entry = await self._attempt(run, step, attempt, fields, redacted)
            outcome = str(entry["status"])
            run.steps.append(entry)
            await self.publish_state(run)
            await self.record(run, EventKind.RUNBOOK_STEP, entry)
            if outcome != "succeeded":
                log.warning(
                    "runbook step %s run_id=%s step=%s attempt=%d error=%s",
                    outcome,
                    run.run_id,
                    step.name,
                    attempt,
                    run.redact(entry.get("error")),
                )
            if not should_retry(step, attempt, outcome):
                return outcome
            attempt += 1
            await self._sleep_on_clock(run, step.retry_delay.total_seconds())

    async def _attempt(
        self,
        run: Run,
        step: Step,
        attempt: int,
        fields: dict[str, str],
        redacted: dict[str, str],
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "step": step.name,
            "action": step.action.type,
            "attempt": attempt,
        }
        try:
            rendered = render_action(step.action, fields)
            entry["input"] = render_action(step.action, redacted)
        except TemplateError as exc:
            entry.update(status="failed", error=str(exc))
            return entry
        started = time.monotonic()
        timeout_s = step.timeout.total_seconds()
        if isinstance(step.action, ApprovalAction):
            entry.update(await self._await_approval(run, step.action, rendered))
        else:
            result = await self._bounded(
                self._act(run, step, rendered), timeout_s, run.event
            )
            if isinstance(result, Stopped):
                entry.update(
                    status="timed_out",
                    stopped_by=result.by,
                    error=f"step timed out after {timeout_s:g} s and was stopped",
                )
            else:
                # The output may echo a secret back. It leaves the runner
                # only through record() and notify(), which redact it.
                entry.update(result)
        entry.setdefault("duration_s", round(time.monotonic() - started, 3))
        return entry

    async def _act(
        self, run: Run, step: Step, rendered: dict[str, Any]
    ) -> dict[str, Any]:
        action = step.action
        if isinstance(action, HttpAction):
            return await send_request(
                await self._http(), rendered, action.expected_status
            )
        if isinstance(action, ShellAction):
            return await self._shell(run, action, rendered)
        if isinstance(action, PublishAction):
            return await self._publish(rendered)
        if isinstance(action, NotifyAction):
            await self.notify(run, rendered["receivers"], rendered["message"])
            return {"status": "succeeded"}
        if isinstance(action, WaitAction):
            return await self._wait(run, action)
        raise TypeError(f"unknown action {action!r}")

    async def _shell(
        self, run: Run, action: ShellAction, rendered: dict[str, Any]
    ) -> dict[str, Any]:
        async def started(pid: int) -> None:
            self.process_groups[run.run_id] = pid
            run.process_group = process_group_of(pid)
            await self.publish_state(run)

        try:
            return await run_command(
                rendered["argv"],
                rendered["env"],
                rendered["cwd"],
                self.pipeline.config.shell_allowlist,
                action.max_output_bytes,
                action.expected_exit_code,
                on_start=started,
                secrets=run.secrets,
            )
        except ShellRejected as exc:
            return {"status": "failed", "error": str(exc)}
        except OSError as exc:
            return {"status": "failed", "error": f"could not start: {exc}"}
        finally:
            self.process_groups.pop(run.run_id, None)
            run.process_group = None

    async def _bounded(
        self, work: Awaitable[dict[str, Any]], timeout_s: float, event: IncidentEvent
    ) -> dict[str, Any] | Stopped:
        """Await `work` until the pipeline clock passes `timeout_s`, else cancel it.

        Returns Stopped when `work` was cancelled. The wall clock bounds the
        wait too, so a replay clock that stops advancing cannot keep a step
        alive past its timeout in real time.
        """
        task = asyncio.ensure_future(work)
        clock_deadline = self.clock_s(event) + timeout_s
        wall_deadline = time.monotonic() + timeout_s
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=POLL_S)
                if done:
                    return task.result()
                by_clock = self.clock_s(event) >= clock_deadline
                if by_clock or time.monotonic() >= wall_deadline:
                    break
        except asyncio.CancelledError:
            # The run itself was cancelled, so `work` must end with it.
            task.cancel()
            await asyncio.wait({task})
            raise
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stopped = Stopped("pipeline clock" if by_clock else "wall clock")
        log.info(
            "runbook wait stopped by the %s after %g s incident_id=%s",
            stopped.by,
            timeout_s,
            event.incident_id,
        )
        return stopped

    def clock_s(self, event: IncidentEvent) -> float:
        """Return the pipeline time in Unix seconds, never before `event`.

        A replay clock reads the newest event time observed, so it moves
        only as telemetry arrives.
        """
        return max(event.at.timestamp(), self.pipeline.clock.timestamp())

    async def _sleep_on_clock(self, run: Run, delay_s: float) -> None:
        async def never() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

        await self._bounded(never(), delay_s, run.event)

    async def _await_approval(
        self, run: Run, action: ApprovalAction, rendered: dict[str, Any]
    ) -> dict[str, Any]:
        if run.approved_by is not None:
            return {"status": "succeeded", "approved_by": run.approved_by}
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.approvals[run.run_id] = future
        now = datetime.fromtimestamp(self.clock_s(run.event), UTC)
        if run.deadline is None:
            run.deadline = now + action.ttl
        run.status = "awaiting_approval"
        await self.publish_state(run)
        request = {"approval_run_id": run.run_id, "approvers": action.approvers}
        await self.notify(
            run, run.runbook.owner_receivers, rendered["message"], request
        )

        async def approved() -> dict[str, Any]:
            return {"approved_by": await future}

        remaining_s = max((run.deadline - now).total_seconds(), 0.0)
        result = await self._bounded(approved(), remaining_s, run.event)
        self.approvals.pop(run.run_id, None)
        run.deadline = None
        if isinstance(result, Stopped):
            ttl_s = action.ttl.total_seconds()
            return {"status": "expired", "error": f"no approval within {ttl_s:g} s"}
        run.approved_by = result["approved_by"]
        run.status = "running"
        return {"status": "succeeded", "approved_by": run.approved_by}

    async def _wait(self, run: Run, action: WaitAction) -> dict[str, Any]:
        met = self.met_before_wait(run, action)
        if met is not None:
            return {
                "status": "succeeded",
                "condition": action.condition,
                "met_at": met.at.isoformat(),
                "met_by": met.kind.value,
            }
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self.waits.setdefault(run.event.incident_id, [])
        waiting.append((action, future))
        try:
            await future
        finally:
            waiting.remove((action, future))
            if not waiting:
                self.waits.pop(run.event.incident_id, None)
        return {"status": "succeeded", "condition": action.condition}

    async def _publish(self, rendered: dict[str, Any]) -> dict[str, Any]:
        app = self.pipeline.app
        topic = app.topic(
            self.pipeline.settings.topic(rendered["topic"]),
            key_serializer="raw",
            value_serializer="raw",
        )
        try:
            await topic.maybe_declare()
            await topic.send(
                key=encode_key(rendered["key"]),
                value=json.dumps(rendered["value"]).encode(),
            )
        except KafkaError as exc:
            error = f"publish to {rendered['topic']} failed: {exc!r}"
            return {"status": "failed", "topic": rendered["topic"], "error": error}
        return {"status": "succeeded", "topic": rendered["topic"]}

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _rollback(
        self, run: Run, fields: dict[str, str], redacted: dict[str, str]
    ) -> None:
        """Run every rollback step once; a failing one does not stop the others."""
        for step in run.runbook.rollback:
            entry = await self._attempt(run, step, 1, fields, redacted)
            entry["rollback"] = True
            run.steps.append(entry)
            await self.record(run, EventKind.RUNBOOK_STEP, entry)

    async def _verify(
        self, run: Run, fields: dict[str, str], redacted: dict[str, str]
    ) -> None:
        verify = run.runbook.verify
        if verify is None:
            await self.finish(run, "succeeded")
            return
        outcome = await self._run_step(run, verify.step, fields, redacted)
        if outcome == "succeeded":
            if verify.resolve_on_success:
                await self._resolve(run)
            await self.finish(run, "succeeded")
            return
        reason = f"verification step {verify.step.name!r} {outcome}"
        if verify.escalate_on_failure:
            await self.notify(run, run.runbook.owner_receivers, reason)
            await self._escalate(run, reason)
        await self.finish(run, "failed", reason)

    async def _escalate(self, run: Run, reason: str) -> None:
        """Move the incident to its next escalation level now, if it is open."""
        command = Command(
            command_id=f"{run.run_id}:escalate",
            kind=CommandKind.ESCALATE,
            incident_id=run.event.incident_id,
            actor=run.runbook.name,
            source="runbook",
            at=self.now(run.event),
            details={"now": True, "reason": f"runbook {run.runbook.name}: {reason}"},
        )
        await self.pipeline.publish(topics.COMMANDS, run.event.group_key, command)

    async def _resolve(self, run: Run) -> None:
        command = Command(
            command_id=f"{run.run_id}:resolve",
            kind=CommandKind.RESOLVE,
            incident_id=run.event.incident_id,
            actor=run.runbook.name,
            source="runbook",
            at=self.now(run.event),
        )
        await self.pipeline.publish(topics.COMMANDS, run.event.group_key, command)


def from_record(
    record: dict[str, Any], runbook: Runbook, event: IncidentEvent, partition: int
) -> Run:
    """Rebuild a run from its stored RunbookRun, to resume it."""
    stored = RunbookRun.model_validate(record)
    return Run(
        runbook=runbook,
        event=event,
        run_id=stored.run_id,
        target=stored.target,
        partition=partition,
        status=stored.status,
        started_at=stored.started_at,
        steps=list(stored.steps),
        approved_by=stored.approved_by,
        deadline=stored.deadline,
        incarnation=f"resumed-{time.time_ns()}",
    )

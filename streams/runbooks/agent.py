"""faust glue for runbooks: opened incidents in, runbook runs out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from handlers.http_action import render_request, send_request
from schemas.config import Runbook
from schemas.records import (
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    RunbookRun,
)
from streams import topics
from streams.detect.rules import matches

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    runs = pipeline.table("runbook-runs-done", default=None)
    sessions: list[aiohttp.ClientSession] = []

    async def session() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        return sessions[0]

    async def runbooks(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "runbooks", event, IncidentEvent.model_validate_json
            )
            if incident_event is None or incident_event.kind is not EventKind.OPENED:
                continue
            for runbook in pipeline.config.runbooks:
                if not matches(runbook.trigger, incident_event.labels):
                    continue
                run_key = f"{incident_event.incident_id}:{runbook.name}"
                if runs.get(run_key) is not None:
                    continue
                run = await _run(pipeline, runbook, incident_event, session)
                runs[run_key] = run.status
                await _publish(pipeline, incident_event, run)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="runbooks")(runbooks)


async def _run(
    pipeline: Pipeline, runbook: Runbook, event: IncidentEvent, session: Any
) -> RunbookRun:
    started = pipeline.clock.stamp(event.at)
    try:
        request = render_request(runbook.action, event)
    except ValueError as exc:
        step: dict[str, Any] = {"action": "http", "status": "failed", "error": str(exc)}
        return _finish(pipeline, runbook, event, started, "failed", step)
    step = {"action": "http", "request": request}
    if runbook.dry_run:
        step["status"] = "rendered"
        return _finish(pipeline, runbook, event, started, "rendered", step)
    step.update(await send_request(await session(), runbook.action, request))
    return _finish(pipeline, runbook, event, started, step["status"], step)


def _finish(
    pipeline: Pipeline,
    runbook: Runbook,
    event: IncidentEvent,
    started: Any,
    status: Any,
    step: dict[str, Any],
) -> RunbookRun:
    log.info(
        "runbook %s runbook=%s incident_id=%s dry_run=%s",
        status,
        runbook.name,
        event.incident_id,
        runbook.dry_run,
    )
    return RunbookRun(
        run_id=f"{event.incident_id}:{runbook.name}",
        runbook=runbook.name,
        incident_id=event.incident_id,
        dry_run=runbook.dry_run,
        status=status,
        started_at=started,
        finished_at=pipeline.clock.stamp(event.at),
        steps=[step],
    )


async def _publish(pipeline: Pipeline, event: IncidentEvent, run: RunbookRun) -> None:
    await pipeline.publish(topics.RUNBOOK_RUNS, event.group_key, run)
    command = Command(
        command_id=f"{run.run_id}:finished",
        kind=CommandKind.RECORD,
        incident_id=event.incident_id,
        actor=run.runbook,
        source="runbook",
        at=pipeline.clock.stamp(event.at),
        event_kind=EventKind.RUNBOOK_FINISHED,
        details={
            "runbook": run.runbook,
            "status": run.status,
            "dry_run": run.dry_run,
            "steps": run.steps,
        },
    )
    await pipeline.publish(topics.COMMANDS, event.group_key, command)

"""faust glue for escalate: timeline in, notifications and escalate commands out."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from schemas.records import (
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    Notification,
)
from streams import topics
from streams.escalate.policy import (
    Plan,
    due_escalation,
    plan_for,
    policy_levels,
    receivers_for,
    repeat_due,
)
from streams.silences.agent import mute_reason

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

# Transitions that page a level, and so are held while the incident is muted.
NOTIFYING_KINDS = frozenset(
    {
        EventKind.OPENED,
        EventKind.REOPENED,
        EventKind.ESCALATED,
        EventKind.STABILIZED,
    }
)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    plans = pipeline.table("escalate-plans", default=None)
    # Escalate commands sent and not yet seen applied, so one tick does not
    # send the same command again on the next tick.
    requested: dict[str, int] = {}
    # Release and repeat commands sent, by command id, for the same reason.
    sent: set[str] = set()

    async def escalate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "escalate", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            await _apply(pipeline, plans, incident_event)
            if incident_event.kind is EventKind.ESCALATED:
                requested.pop(incident_event.incident_id, None)

    async def tick() -> None:
        now = pipeline.clock.timestamp()
        for incident_id, stored in list(plans.items()):
            plan = Plan.model_validate(stored)
            if plan.held and not plan.flapping:
                await _release_if_unmuted(pipeline, plan, sent)
            if repeat_due(plan, now):
                await _request_repeat(pipeline, plan, sent)
            level = due_escalation(plan, now)
            if level is None or requested.get(incident_id) == level:
                continue
            requested[incident_id] = level
            command = Command(
                command_id=f"{incident_id}:escalate:{level}",
                kind=CommandKind.ESCALATE,
                incident_id=incident_id,
                actor="escalation policy",
                source="escalate",
                at=pipeline.clock.now(),
                level=level,
            )
            await pipeline.publish(topics.COMMANDS, plan.group_key, command)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="escalate")(escalate)
    # NOTE: a replay escalates an incident when its next alert or command
    # arrives (correlate catches up on due levels then). A tick would read
    # the newest event time of any series, which runs ahead of the others.
    if pipeline.clock.mode == "live":
        app.timer(pipeline.settings.tick_interval_s, name="escalate-tick")(tick)


async def _apply(
    pipeline: Pipeline,
    plans: faust.Table[str, Any],
    event: IncidentEvent,
) -> None:
    stored = plans.get(event.incident_id)
    if event.kind is EventKind.OPENED and stored is None:
        policy = str(event.details.get("policy", pipeline.config.default_policy))
        plan = plan_for(
            event,
            policy_levels(pipeline.config, policy),
            delays_s=event.details.get("level_delays_s"),
        )
        plan.send_resolved = bool(event.details.get("send_resolved", True))
        plan.labels = event.labels
        found = pipeline.config.route_for(event.labels)
        if found is not None:
            plan.repeat_interval_s = found[1].repeat_interval.total_seconds()
    elif event.kind is EventKind.REOPENED:
        # A reopened incident starts its policy again from the reopening.
        policy = pipeline.config.policy_for(event.labels)
        plan = plan_for(event, policy_levels(pipeline.config, policy), event.at)
        # The reopening itself is the first notification.
        plan.level = 0
        plan.labels = event.labels
    elif stored is None:
        return
    else:
        plan = Plan.model_validate(stored)

    if event.details.get("flapping") is True:
        plan.flapping = True
    muted = None
    if event.kind in NOTIFYING_KINDS:
        muted = mute_reason(pipeline, event.labels, event.at)
        if muted is None and plan.flapping and event.kind is not EventKind.STABILIZED:
            muted = {"reason": "flapping"}
    receivers = receivers_for(plan, event, muted is not None)
    if muted is not None:
        await _record_suppressed(pipeline, event, muted)
    if event.kind is EventKind.RESOLVED:
        plans.pop(event.incident_id, None)
    else:
        plans[event.incident_id] = plan.model_dump(mode="json")
    for receiver in receivers:
        notification = Notification(
            notification_id=f"{event.idempotency_key}:{receiver}",
            receiver=receiver,
            event=event,
        )
        await pipeline.publish(topics.NOTIFICATIONS, event.group_key, notification)


async def _record(
    pipeline: Pipeline,
    incident_id: str,
    group_key: str,
    command_id: str,
    kind: EventKind,
    at: datetime,
    details: dict[str, Any],
) -> None:
    """Ask correlate to put an event of the escalation policy on the timeline."""
    command = Command(
        command_id=command_id,
        kind=CommandKind.RECORD,
        incident_id=incident_id,
        actor="escalation policy",
        source="escalate",
        at=at,
        event_kind=kind,
        details=details,
    )
    await pipeline.publish(topics.COMMANDS, group_key, command)


async def _record_suppressed(
    pipeline: Pipeline, event: IncidentEvent, reason: dict[str, str]
) -> None:
    """Put on the timeline that a transition was not notified, and why."""
    log.info(
        "notifications suppressed incident_id=%s seq=%d reason=%s",
        event.incident_id,
        event.seq,
        reason["reason"],
    )
    await _record(
        pipeline,
        event.incident_id,
        event.group_key,
        f"{event.idempotency_key}:suppressed",
        EventKind.SUPPRESSED,
        pipeline.clock.stamp(event.at),
        {"transition": event.kind, "level": event.level, **reason},
    )


async def _release_if_unmuted(pipeline: Pipeline, plan: Plan, sent: set[str]) -> None:
    """Ask correlate to record that a held notification may now go out."""
    command_id = f"{plan.incident_id}:released:{plan.holds}"
    if command_id in sent:
        return
    if mute_reason(pipeline, plan.labels, pipeline.clock.now()) is not None:
        return
    sent.add(command_id)
    details = {"level": plan.level, "reason": "no longer muted"}
    await _record(
        pipeline,
        plan.incident_id,
        plan.group_key,
        command_id,
        EventKind.RELEASED,
        pipeline.clock.now(),
        details,
    )


async def _request_repeat(pipeline: Pipeline, plan: Plan, sent: set[str]) -> None:
    """Ask correlate to record a repeat, which notifies every paged receiver."""
    command_id = f"{plan.incident_id}:repeated:{plan.repeats + 1}"
    if command_id in sent:
        return
    sent.add(command_id)
    details = {"repeat": plan.repeats + 1, "interval_s": plan.repeat_interval_s}
    await _record(
        pipeline,
        plan.incident_id,
        plan.group_key,
        command_id,
        EventKind.REPEATED,
        pipeline.clock.now(),
        details,
    )

"""faust glue for escalate: timeline in, notifications and escalate commands out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from schemas.config import SlackReceiver as SlackReceiverSpec
from schemas.oncall import EscalationPolicy
from schemas.records import (
    Command,
    CommandKind,
    EventKind,
    IncidentEvent,
    Notification,
)
from streams import topics
from streams.deadletter import describe_validation_error
from streams.escalate.policy import (
    MUTABLE_KINDS,
    Directory,
    LevelPlan,
    Plan,
    ack_timed_out,
    due_escalation,
    hold_reason,
    message_updates,
    plan_for,
    receivers_for,
    repeat_due,
    resolved_policy,
    step_levels,
)
from streams.silences.agent import mute_reason

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    plans = pipeline.table("escalate-plans", default=None)
    directory = Directory(pipeline.config.users, pipeline.config.schedules)
    events_topic = pipeline.settings.topic(topics.INCIDENT_EVENTS.name)
    # Ids of the commands sent for incidents not yet resolved, so one tick
    # does not send the same command again on the next. A command sent twice
    # anyway (after a restart) carries the same id, and correlate drops it.
    sent: set[str] = set()
    # Replay only: the newest event time seen on each incident-events
    # partition, which is that partition's clock.
    watermarks: dict[int, float] = {}

    async def fire_due(now: float, partitions: set[int], live: bool) -> None:
        """Send the commands of every deadline due at `now` on `partitions`."""
        for stored in list(plans.values()):
            plan = Plan.model_validate(stored)
            if plan.partition is not None and plan.partition not in partitions:
                continue
            at = datetime.fromtimestamp(now, UTC)
            if live and plan.held and not plan.flapping:
                await _release_if_unmuted(pipeline, plan, sent)
            # Only a repeat already held waits for the mute to end.
            muted = plan.repeat_held and (
                mute_reason(pipeline, plan.labels, at) is not None
            )
            if live and repeat_due(plan, now, muted):
                await _request_repeat(pipeline, plan, sent)
            if ack_timed_out(plan, now):
                await _request_ack_timeout(pipeline, plan, at, sent)
            level = due_escalation(plan, now)
            if level is not None:
                await _request_escalation(pipeline, plan, level, at, sent)

    async def escalate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "escalate", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            partition = event.message.partition
            await _apply(pipeline, plans, incident_event, partition, directory)
            if incident_event.kind is EventKind.RESOLVED:
                prefix = f"{incident_event.incident_id}:"
                sent.difference_update({c for c in sent if c.startswith(prefix)})
            if pipeline.clock.mode == "replay":
                seen = max(
                    watermarks.get(partition, 0.0), incident_event.at.timestamp()
                )
                watermarks[partition] = seen
                await fire_due(seen, {partition}, live=False)

    async def tick() -> None:
        tables: Any = app.tables
        if not tables.recovery.completed.is_set() or app.rebalancing:
            return
        # Standby partitions are left to the worker that owns them.
        actives = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == events_topic
        }
        await fire_due(pipeline.clock.timestamp(), actives, live=True)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="escalate")(escalate)
    # NOTE: a replay fires deadlines on the event time of each incident-events
    # partition, when the partition's next event arrives. Series replayed one
    # after another on one partition can so escalate the earlier ones early.
    if pipeline.clock.mode == "live":
        app.timer(pipeline.settings.tick_interval_s, name="escalate-tick")(tick)


def _opened_plan(pipeline: Pipeline, event: IncidentEvent) -> Plan:
    """Plan an opened incident from the policy it opened with."""
    policy = _event_policy(pipeline, event)
    plan = plan_for(
        event, step_levels(policy), delays_s=event.details.get("level_delays_s")
    )
    _apply_opening_terms(pipeline, plan, event, policy)
    return plan


def _event_policy(pipeline: Pipeline, event: IncidentEvent) -> EscalationPolicy:
    """Return the policy snapshot an opened or reopened event carries.

    An event without a valid snapshot gets the named policy as configured now.
    """
    name = str(event.details.get("policy", pipeline.config.default_policy))
    policy = resolved_policy(pipeline.config, name)
    snapshot = event.details.get("policy_snapshot")
    if isinstance(snapshot, dict):
        try:
            policy = EscalationPolicy.model_validate(snapshot)
        except ValidationError as exc:
            log.warning(
                "invalid policy snapshot incident_id=%s; following policy %r as "
                "configured now: %s",
                event.incident_id,
                name,
                describe_validation_error(exc),
            )
    return policy


def _apply_opening_terms(
    pipeline: Pipeline, plan: Plan, event: IncidentEvent, policy: EscalationPolicy
) -> None:
    """Set the plan's labels and the policy and route settings of the opening.

    The event's `send_resolved` and `repeat_interval_s` win. Events written
    before correlate carried them fall back to the route as configured now.
    """
    plan.labels = event.labels
    plan.ack_timeout_s = policy.ack_timeout.total_seconds()
    found = pipeline.config.route_for(event.labels)
    send_resolved = event.details.get("send_resolved")
    if isinstance(send_resolved, bool):
        plan.send_resolved = send_resolved
    else:
        plan.send_resolved = found[1].send_resolved if found is not None else True
    interval = event.details.get("repeat_interval_s")
    if isinstance(interval, int | float):
        plan.repeat_interval_s = float(interval)
    elif found is not None:
        plan.repeat_interval_s = found[1].repeat_interval.total_seconds()


def _restarted_plan(pipeline: Pipeline, event: IncidentEvent, stored: Any) -> Plan:
    """Plan a reopened incident, or one whose acknowledgement timed out.

    The policy starts again from the event, which is the first notification.
    The plan of a resolved incident is gone, so a reopening is planned from
    the policy snapshot and route settings it carries from the opening.
    """
    policy = None
    if stored is not None:
        previous = Plan.model_validate(stored)
        levels = [level.model_copy() for level in previous.levels]
    else:
        previous = None
        policy = _event_policy(pipeline, event)
        levels = [
            LevelPlan(delay_s=level.delay.total_seconds(), targets=level.target_keys)
            for level in step_levels(policy)
        ]
    delays = event.details.get("level_delays_s")
    if not isinstance(delays, list) or len(delays) != len(levels):
        delays = [level.delay_s for level in levels]
    plan = Plan(
        incident_id=event.incident_id,
        group_key=event.group_key,
        opened_at=event.at.timestamp(),
        levels=[
            LevelPlan(delay_s=float(delay), targets=level.targets)
            for level, delay in zip(levels, delays, strict=True)
        ],
        level=0,
        labels=event.labels,
    )
    plan.schedule_next()
    if policy is not None:
        _apply_opening_terms(pipeline, plan, event, policy)
    if previous is not None:
        plan.send_resolved = previous.send_resolved
        plan.repeat_interval_s = previous.repeat_interval_s
        plan.ack_timeout_s = previous.ack_timeout_s
        # Acknowledgements and resolves still reach everyone paged before.
        if event.kind is EventKind.ACK_TIMED_OUT:
            plan.notified = previous.notified
    return plan


async def _apply(
    pipeline: Pipeline,
    plans: faust.Table[str, Any],
    event: IncidentEvent,
    partition: int,
    directory: Directory,
) -> None:
    stored = plans.get(event.incident_id)
    if event.kind is EventKind.OPENED and stored is None:
        plan = _opened_plan(pipeline, event)
    elif event.kind in {EventKind.REOPENED, EventKind.ACK_TIMED_OUT}:
        plan = _restarted_plan(pipeline, event, stored)
    elif stored is None:
        return
    else:
        plan = Plan.model_validate(stored)
    plan.partition = partition

    if event.details.get("flapping") is True:
        plan.flapping = True
    mute = None
    if event.kind in MUTABLE_KINDS:
        mute = mute_reason(pipeline, event.labels, event.at)
    muted = hold_reason(plan, event, mute)
    receivers = receivers_for(plan, event, muted is not None, directory)
    if plan.unresolved:
        await _record_unresolved(pipeline, event, plan.unresolved)
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
    await _publish_message_updates(pipeline, plan, event, receivers, muted is not None)


async def _publish_message_updates(
    pipeline: Pipeline,
    plan: Plan,
    event: IncidentEvent,
    receivers: list[str],
    muted: bool,
) -> None:
    """Keep the Slack messages of an incident current on a transition.

    A Slack receiver that posted the incident's message and is not a target
    of `event` gets a message update, with the same id form as a notification.
    """
    # NOTE: the plan of a reopened incident starts with no receivers
    # notified, so a Slack receiver reached only before the resolve is not
    # updated until a level reaches it again.
    slack_receivers = {
        name
        for name, spec in pipeline.config.receivers.items()
        if isinstance(spec, SlackReceiverSpec)
    }
    for receiver in message_updates(plan, event, receivers, slack_receivers, muted):
        notification = Notification(
            notification_id=f"{event.idempotency_key}:{receiver}",
            receiver=receiver,
            event=event,
            message_update=True,
        )
        await pipeline.publish(topics.NOTIFICATIONS, event.group_key, notification)


async def _record_unresolved(
    pipeline: Pipeline, event: IncidentEvent, problems: list[str]
) -> None:
    """Put on the timeline that user or schedule targets reached no receiver."""
    log.warning(
        "escalation targets reached no receiver incident_id=%s seq=%d: %s",
        event.incident_id,
        event.seq,
        "; ".join(problems),
    )
    await _record(
        pipeline,
        event.incident_id,
        event.group_key,
        f"{event.idempotency_key}:unresolved",
        EventKind.NOTIFY_FAILED,
        pipeline.clock.stamp(event.at),
        {"transition": event.kind, "level": event.level, "error": "; ".join(problems)},
    )


async def _request_escalation(
    pipeline: Pipeline, plan: Plan, level: int, at: datetime, sent: set[str]
) -> None:
    """Ask correlate to escalate an incident whose next level is due.

    The id names the plan's start and the level, so a second request for
    one step, from this worker or another, is dropped as a repeat.
    """
    command_id = f"{plan.incident_id}:escalate:{plan.opened_at:.0f}:{level}"
    if command_id in sent:
        return
    sent.add(command_id)
    command = Command(
        command_id=command_id,
        kind=CommandKind.ESCALATE,
        incident_id=plan.incident_id,
        actor="escalation policy",
        source="escalate",
        at=at,
        level=level,
    )
    await pipeline.publish(topics.COMMANDS, plan.group_key, command)


async def _request_ack_timeout(
    pipeline: Pipeline, plan: Plan, at: datetime, sent: set[str]
) -> None:
    """Ask correlate to return an incident whose acknowledgement timed out."""
    command_id = f"{plan.incident_id}:ack_timeout:{plan.ack_seq}"
    if command_id in sent:
        return
    sent.add(command_id)
    log.info(
        "acknowledgement timed out incident_id=%s acknowledged_seq=%s",
        plan.incident_id,
        plan.ack_seq,
    )
    command = Command(
        command_id=command_id,
        kind=CommandKind.ACK_TIMEOUT,
        incident_id=plan.incident_id,
        actor="escalation policy",
        source="escalate",
        at=datetime.fromtimestamp(plan.ack_due or at.timestamp(), UTC),
        details={"acknowledged_seq": plan.ack_seq},
    )
    await pipeline.publish(topics.COMMANDS, plan.group_key, command)


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

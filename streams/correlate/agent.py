"""faust glue for correlate: alerts and commands in, timeline events out."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from schemas.config import Route
from schemas.records import (
    Alert,
    AlertStatus,
    Command,
    CommandKind,
    IncidentEvent,
    group_key_of,
)
from streams import topics
from streams.correlate.grouping import GroupRules, next_check_at
from streams.correlate.lifecycle import (
    Group,
    Incident,
    PolicySnapshot,
    Reopening,
    apply_alert,
    apply_command,
    is_stale_firing,
    resolve_timeout_at,
    trim_timeline,
)
from streams.escalate.policy import resolved_policy, step_delays_s
from streams.silences.agent import track_firing

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

# The grouping settings of alerts that match no route.
DEFAULT_ROUTE = Route(policy="default")


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    settings = pipeline.settings
    groups = pipeline.table("correlate-groups", default=None)
    incidents = pipeline.table("incidents", default=None)
    pipeline.tables["incidents"] = incidents
    # incident id -> when its next group update or end of flapping is due.
    checks = pipeline.table("correlate-checks", default=None)
    # Check commands sent and not yet applied, so a tick sends each once.
    requested: set[str] = set()
    lifecycle = pipeline.config.lifecycle
    reopening = Reopening(
        reopen_window_s=lifecycle.reopen_window.total_seconds(),
        recurrence_window_s=lifecycle.recurrence_window.total_seconds(),
        resolve_timeout_s=lifecycle.resolve_timeout.total_seconds(),
    )
    alerts_name = settings.topic(topics.ALERTS.name)
    # One agent reads both topics so one partition owns a group key's alerts
    # and commands alike; faust assigns the same partition of both together.
    source = app.topic(
        alerts_name,
        settings.topic(topics.COMMANDS.name),
        key_serializer="raw",
        value_serializer="raw",
    )

    async def publish(events: list[IncidentEvent]) -> None:
        for incident_event in events:
            pipeline.metrics.incident_events.labels(kind=incident_event.kind).inc()
            log.info(
                "incident %s incident_id=%s seq=%d actor=%r",
                incident_event.kind,
                incident_event.incident_id,
                incident_event.seq,
                incident_event.actor,
            )
            await pipeline.publish(
                topics.INCIDENT_EVENTS, incident_event.group_key, incident_event
            )

    async def on_alert(event: faust.EventT[bytes]) -> None:
        alert = await pipeline.dead_letters.parse(
            "correlate", event, Alert.model_validate_json
        )
        if alert is None:
            return
        pipeline.clock.observe(alert.at)
        group = _load_group(groups, alert.group_key)
        current = group.open_incident or group.last_incident
        incident = _load_incident(incidents, current)
        # A stale firing report must not make the alert inhibit others again.
        firing = alert.status is AlertStatus.FIRING
        if firing and incident is not None and is_stale_firing(incident, alert):
            firing = False
        track_firing(pipeline, alert.fingerprint, alert.labels if firing else None)
        previous = incident
        policy = pipeline.config.policy_for(alert.labels)
        found = pipeline.config.route_for(alert.labels)
        wait_s = found[1].group_wait.total_seconds() if found else 0.0
        # A new incident follows the policy as it is now, at its opening.
        resolved = resolved_policy(pipeline.config, policy)
        delays = step_delays_s(resolved, alert.at, wait_s)
        route = found[1] if found is not None else DEFAULT_ROUTE
        snapshot = PolicySnapshot(
            resolved.model_dump(mode="json"),
            wait_s,
            repeat_interval_s=route.repeat_interval.total_seconds(),
        )
        send_resolved = found[1].send_resolved if found else True
        rules = GroupRules(
            group_interval_s=route.group_interval.total_seconds(),
            min_alerts=route.min_alerts,
            flapping=route.flapping,
        )
        incident, events = apply_alert(
            group,
            incident,
            alert,
            policy,
            delays,
            replace(reopening, send_resolved=send_resolved),
            snapshot=snapshot,
            rules=rules,
        )
        # Catching up can resolve the group's last incident before the
        # alert opens the next one: both are stored.
        for changed in {id(i): i for i in (previous, incident) if i}.values():
            store(changed)
        groups[group.group_key] = group.model_dump(mode="json")
        await publish(events)

    def store(incident: Incident) -> None:
        stored = incident.model_dump(mode="json")
        dropped = trim_timeline(stored)
        if dropped:
            # The model keeps the trimmed timeline too, for later events.
            incident.timeline = stored["timeline"]
            incident.timeline_dropped = stored["timeline_dropped"]
            log.warning(
                "incident timeline trimmed incident_id=%s dropped=%d",
                incident.incident_id,
                dropped,
            )
        incidents[incident.incident_id] = stored
        candidates = [next_check_at(incident), resolve_timeout_at(incident)]
        due = min((c for c in candidates if c is not None), default=None)
        if due is None:
            checks.pop(incident.incident_id, None)
        else:
            checks[incident.incident_id] = due.timestamp()

    async def on_command(event: faust.EventT[bytes]) -> None:
        command = await pipeline.dead_letters.parse(
            "correlate", event, Command.model_validate_json
        )
        if command is None:
            return
        incident = _load_incident(incidents, command.incident_id)
        if incident is None:
            await pipeline.dead_letters.send(
                "correlate", event, f"incident {command.incident_id!r} not found"
            )
            return
        group = _load_group(groups, group_key_of(command.incident_id))
        events = apply_command(group, incident, command)
        store(incident)
        requested.discard(command.command_id)
        if events:
            groups[group.group_key] = group.model_dump(mode="json")
        await publish(events)

    async def correlate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == alerts_name:
                await on_alert(event)
            else:
                await on_command(event)

    async def tick() -> None:
        """Send a check command for every incident whose update or stability is due."""
        now = pipeline.clock.timestamp()
        for incident_id, due in list(checks.items()):
            if due is None or due > now:
                continue
            command_id = f"{incident_id}:check:{due}"
            if command_id in requested:
                continue
            requested.add(command_id)
            command = Command(
                command_id=command_id,
                kind=CommandKind.CHECK,
                incident_id=incident_id,
                actor="correlate",
                source="correlate",
                at=pipeline.clock.now(),
            )
            await pipeline.publish(topics.COMMANDS, group_key_of(incident_id), command)

    app.agent(source, name="correlate")(correlate)
    # NOTE: like escalations, a replay applies due updates and the end of
    # flapping when the incident's next alert or command arrives.
    if pipeline.clock.mode == "live":
        app.timer(pipeline.settings.tick_interval_s, name="correlate-tick")(tick)


def _load_group(groups: faust.Table[str, Any], group_key: str) -> Group:
    stored = groups.get(group_key)
    if stored is None:
        return Group(group_key=group_key)
    return Group.model_validate(stored)


def _load_incident(
    incidents: faust.Table[str, Any], incident_id: str | None
) -> Incident | None:
    if incident_id is None:
        return None
    stored = incidents.get(incident_id)
    return None if stored is None else Incident.model_validate(stored)

"""Put silences, maintenance windows and inhibitions on incident timelines.

A live timer compares each open incident's mute reason with the one it last
recorded. When a silence is created or expires, a window starts or ends, or
an inhibiting alert fires or clears, the incident gets a muted or unmuted
event that names the cause.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from schemas.records import Command, CommandKind, EventKind, IncidentEvent
from streams import topics
from streams.silences.agent import mute_reason

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

# Transitions that start the watch of an incident; its resolve ends it.
WATCH_FROM = frozenset({EventKind.OPENED, EventKind.REOPENED})
MUTE_KINDS = frozenset({EventKind.MUTED, EventKind.UNMUTED})


def mute_key(reason: dict[str, str] | None) -> str | None:
    """Return what identifies a mute reason: the silence, window or alert."""
    if reason is None:
        return None
    cause = reason.get("silence_id") or reason.get("window") or reason.get("by", "")
    return f"{reason['reason']}:{cause}"


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    # incident id -> labels, group key and the mute reason last recorded.
    watched = pipeline.table("mute-watch", default=None)
    sent: set[str] = set()

    async def watch(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "mute-watch", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            _apply(watched, incident_event, pipeline)

    async def tick() -> None:
        now = pipeline.clock.now()
        for incident_id, entry in list(watched.items()):
            if entry is None:
                continue
            reason = mute_reason(pipeline, entry["labels"], now)
            key = mute_key(reason)
            if key == entry["key"]:
                continue
            command_id = f"{incident_id}:mute:{entry['changes'] + 1}"
            if command_id in sent:
                continue
            sent.add(command_id)
            if reason is None:
                kind = EventKind.UNMUTED
                details: dict[str, Any] = {"ended": entry["reason"]}
            else:
                kind = EventKind.MUTED
                details = dict(reason)
            command = Command(
                command_id=command_id,
                kind=CommandKind.RECORD,
                incident_id=incident_id,
                actor="silences",
                source="silences",
                at=now,
                event_kind=kind,
                details=details,
            )
            log.info("incident %s incident_id=%s key=%s", kind, incident_id, key)
            await pipeline.publish(topics.COMMANDS, entry["group_key"], command)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="mute-watch")(watch)
    # NOTE: only live workers record mute changes: a replay's clock runs
    # with its newest event, not with the silences' own times.
    if pipeline.clock.mode == "live":
        app.timer(pipeline.settings.tick_interval_s, name="mute-watch-tick")(tick)


def _apply(
    watched: faust.Table[str, Any], event: IncidentEvent, pipeline: Pipeline
) -> None:
    incident_id = event.incident_id
    if event.kind is EventKind.RESOLVED:
        watched.pop(incident_id, None)
        return
    if event.kind in WATCH_FROM:
        # An incident muted when it opens has that on its timeline already,
        # as a suppressed notification; the watch records changes from here.
        reason = mute_reason(pipeline, event.labels, event.at)
        watched[incident_id] = {
            "group_key": event.group_key,
            "labels": event.labels,
            "key": mute_key(reason),
            "reason": reason,
            "changes": 0,
        }
        return
    entry = watched.get(incident_id)
    if entry is None or event.kind not in MUTE_KINDS:
        return
    reason = None if event.kind is EventKind.UNMUTED else dict(event.details)
    watched[incident_id] = {
        **entry,
        "key": mute_key(reason),
        "reason": reason,
        "changes": entry["changes"] + 1,
    }

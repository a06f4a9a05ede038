"""Every topic of the pipeline, in flow order, with its key and record schema.

Keys decide partitions, and the invariants depend on them: everything about
one incident (alerts, commands, timeline events, notifications) is keyed by
its group key, so a single partition, and so a single agent, owns it.
Keys are JSON-encoded strings, the encoding faust uses for table keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas import records
from schemas.runbooks import RunbookApproval
from schemas.silences import SilenceCommand


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    schema: type[BaseModel]


METRICS = TopicSpec("telemetry.metrics", "series", records.MetricBatch)
LOGS = TopicSpec("telemetry.logs", "source", records.LogBatch)
DETECT_TICKS = TopicSpec("detect-ticks", "none; one record per partition", records.Tick)
PRUNE_TICKS = TopicSpec("prune-ticks", "none; one record per partition", records.Tick)
ALERTS = TopicSpec("alerts", "group key", records.Alert)
SILENCE_COMMANDS = TopicSpec("silence-commands", "silence id", SilenceCommand)
COMMANDS = TopicSpec("commands", "group key", records.Command)
INCIDENT_EVENTS = TopicSpec("incident-events", "group key", records.IncidentEvent)
NOTIFICATIONS = TopicSpec("notifications", "group key", records.Notification)
DELIVERIES = TopicSpec("deliveries", "group key", records.DeliveryResult)
NOTIFICATIONS_DEAD = TopicSpec(
    "notifications.deadletter", "group key", records.FailedNotification
)
RUNBOOK_APPROVALS = TopicSpec("runbook-approvals", "group key", RunbookApproval)
RUNBOOK_RUNS = TopicSpec("runbook-runs", "group key", records.RunbookRun)
RESPONSE_SAMPLES = TopicSpec("response-samples", "service", records.ResponseSample)
DEAD_LETTER = TopicSpec("deadletter", "source key", records.DeadLetter)

ALL = (
    METRICS,
    LOGS,
    DETECT_TICKS,
    PRUNE_TICKS,
    ALERTS,
    SILENCE_COMMANDS,
    COMMANDS,
    INCIDENT_EVENTS,
    NOTIFICATIONS,
    DELIVERIES,
    NOTIFICATIONS_DEAD,
    RUNBOOK_APPROVALS,
    RUNBOOK_RUNS,
    RESPONSE_SAMPLES,
    DEAD_LETTER,
)

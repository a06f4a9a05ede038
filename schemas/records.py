"""Records carried on Tocsin's topics, one pydantic model per topic."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1


class Record(BaseModel):
    """Base of every topic record: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class MetricSample(BaseModel):
    """One observation of a metric series at an event time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    value: float = Field(allow_inf_nan=False)


class MetricBatch(Record):
    """Samples of one series, in event order as the exporter saw them.

    A batch is the unit of work through detection. Labels identify the series
    and are what rules select on; `service` names the incidents' service, and
    is "unknown" when missing. Publish a batch keyed by its series, so one
    partition owns the series' rule state.
    """

    series: str = Field(min_length=1, max_length=512)
    labels: dict[str, str]
    samples: list[MetricSample] = Field(min_length=1, max_length=10_000)

    @property
    def service(self) -> str:
        return self.labels.get("service", "unknown")


class LogLine(BaseModel):
    """One log line with its event time, level and structured fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    message: str
    level: str = "info"
    fields: dict[str, str] = Field(default_factory=dict)


class LogBatch(Record):
    """Log lines from one source, in the order the shipper read them."""

    source: str = Field(min_length=1, max_length=512)
    labels: dict[str, str]
    lines: list[LogLine] = Field(min_length=1, max_length=10_000)


class Tick(Record):
    """The time on one partition, sent so idle keys age and expired keys go."""

    at: AwareDatetime


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(Record):
    """A rule's firing or resolve for one fingerprint.

    `starts_at` is the start of impact: the event time of the first sample
    that breached the rule. `at` is the event time at which the rule changed
    state. `event_id` is derived from the fingerprint, status and start, so a
    redelivered alert carries the same id.
    """

    event_id: str
    fingerprint: str
    group_key: str
    rule: str
    status: AlertStatus
    severity: Severity
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    at: AwareDatetime
    auto_resolve: bool = False
    source: str = "detect"

    @property
    def service(self) -> str:
        return self.labels.get("service", "unknown")


class IncidentState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    OPENED = "opened"
    ALERT_ADDED = "alert_added"
    ALERT_RESOLVED = "alert_resolved"
    ACKNOWLEDGED = "acknowledged"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    NOTIFIED = "notified"
    NOTIFY_FAILED = "notify_failed"
    SUPPRESSED = "suppressed"
    RELEASED = "released"
    REPEATED = "repeated"
    NOTE_ADDED = "note_added"
    RUNBOOK_FINISHED = "runbook_finished"
    RESOLVED = "resolved"
    GROUP_UPDATED = "group_updated"
    FLAPPING = "flapping"
    STABILIZED = "stabilized"
    MUTED = "muted"
    UNMUTED = "unmuted"
    ACK_TIMED_OUT = "ack_timed_out"
    RUNBOOK_STARTED = "runbook_started"
    RUNBOOK_STEP = "runbook_step"


class IncidentEvent(Record):
    """One transition on an incident's timeline.

    `seq` counts the incident's events from 1; `(incident_id, seq)` is the
    idempotency key of every side effect the event causes.
    """

    incident_id: str
    group_key: str
    seq: int = Field(ge=1)
    kind: EventKind
    at: AwareDatetime
    actor: str
    state: IncidentState
    service: str
    severity: Severity
    title: str
    rule: str
    labels: dict[str, str]
    opened_at: AwareDatetime
    started_at: AwareDatetime
    level: int = 0
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.incident_id}:{self.seq}"


class CommandKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    NOTE = "note"
    ESCALATE = "escalate"
    RECORD = "record"
    CHECK = "check"
    ACK_TIMEOUT = "ack_timeout"


class Command(Record):
    """A request to change or annotate an incident, sent to its owning partition.

    `record` appends an event of `event_kind` (notified, runbook finished, ...)
    to the timeline without changing state. `escalate` moves an unacknowledged
    incident to `level`. `check` applies whatever became due by `at`: a
    batched group update, the end of flapping or a resolve timeout.
    `ack_timeout` returns an acknowledged incident to triggered if
    `details.acknowledged_seq` is still its acknowledgement.
    """

    command_id: str
    kind: CommandKind
    incident_id: str
    actor: str
    source: Literal[
        "http",
        "slack",
        "pagerduty",
        "cli",
        "escalate",
        "notify",
        "runbook",
        "correlate",
        "silences",
    ]
    at: AwareDatetime
    level: int | None = None
    event_kind: EventKind | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Notification(Record):
    """An order to tell one receiver about one incident transition."""

    notification_id: str
    receiver: str
    event: IncidentEvent
    # True when the receiver is not a target of the transition and only keeps
    # the incident's message current: Slack updates a message it has posted
    # and posts nothing new at the top level.
    message_update: bool = False


class FailedNotification(Record):
    """A notification the notify stage gave up on, with the last error."""

    notification: Notification
    error: str
    at: AwareDatetime


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"


class DeliveryResult(Record):
    """The outcome of one delivery attempt of a notification."""

    notification_id: str
    incident_id: str
    receiver: str
    kind: str
    attempt: int
    status: DeliveryStatus
    at: AwareDatetime
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


RunStatus = Literal[
    "succeeded",
    "failed",
    "rendered",
    "queued",
    "running",
    "awaiting_approval",
    "timed_out",
    "expired",
    "rate_limited",
    "circuit_open",
    "interrupted",
]


class ProcessGroup(BaseModel):
    """The process group of a shell step in flight, kept so a restart can kill it.

    `pgid` is the leader's process id. `start_ticks` is the leader's start
    time (field 22 of /proc/PID/stat, in clock ticks after boot), and
    `boot_id` is the kernel's boot id. They keep a later group that reuses
    the id, or a group on another machine, from being mistaken for this one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pgid: int = Field(gt=0)
    start_ticks: int = Field(ge=0)
    boot_id: str


class RunbookRun(Record):
    """One run of a runbook against an incident, with each step's result.

    A run is published at every change of its status; the last record of a
    `run_id` is its current state. `finished_at` is None while it runs.
    Rendered inputs in `steps` have their secrets redacted.
    """

    run_id: str
    runbook: str
    incident_id: str
    dry_run: bool
    status: RunStatus
    started_at: AwareDatetime
    finished_at: AwareDatetime | None
    steps: list[dict[str, Any]]
    group_key: str = ""
    target: str = ""
    reason: str | None = None
    approved_by: str | None = None
    deadline: AwareDatetime | None = Field(
        default=None, description="when a pending approval expires"
    )
    process_group: ProcessGroup | None = Field(
        default=None, description="the process group of the shell step in flight"
    )


class ResponseSample(Record):
    """One incident's contribution to the analytics tables, keyed by `dimension`.

    `seconds` is the time to detect of `opened`, the time to acknowledge of
    `acknowledged` and the time to resolve of `resolved`. A `downtime`
    sample carries a critical incident's span, from `opened_at` to
    `span_end`, into the window of `window_at`. `dimension` is `all`,
    `service:NAME` or `severity:NAME`, and `sample_id` is unique per incident
    event and dimension, so a redelivered sample counts once.
    """

    incident_id: str
    service: str
    severity: Severity
    opened_at: AwareDatetime
    kind: Literal[
        "opened", "acknowledged", "resolved", "escalated", "notified", "downtime"
    ]
    seconds: float | None = None
    acknowledged: bool = False
    dimension: str = ""
    sample_id: str = ""
    at: AwareDatetime | None = None
    recurrence: bool = False
    false_positive: bool = False
    impact: float = 0.0
    span_end: AwareDatetime | None = None
    # The time that places the sample in windows, or the incident's opened
    # time when unset.
    window_at: AwareDatetime | None = None


class DeadLetter(Record):
    """A record a stage could not process, with the reason and the original bytes."""

    stage: str
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    value: str = Field(description="the original value bytes, base64")
    error: str
    at: AwareDatetime


def stable_hash(*parts: object, length: int = 16) -> str:
    """Hash JSON-encodable parts into a hex digest that is stable across runs."""
    encoded = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:length]


def group_key_of(incident_id: str) -> str:
    """Return the group key an incident id was made from (`<group_key>-<n>`)."""
    group_key, _, number = incident_id.rpartition("-")
    if not group_key or not (number.isascii() and number.isdigit()):
        raise ValueError(
            f"invalid incident id {incident_id!r}: expected <group key>-<number>"
        )
    return group_key

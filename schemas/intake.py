"""Payloads of the external alert intake: Alertmanager webhooks and generic JSON.

Both forms normalise to `ExternalAlert`s. Identity, event ids and publishing
live in `streams.web.intake`, which turns each one into a `records.Alert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from schemas.records import AlertStatus, Severity

DEFAULT_SEVERITY = Severity.MEDIUM
EXTERNAL_RULE = "external"

# Severity words of other tools, in lower case, mapped onto Tocsin's five.
SEVERITY_WORDS: dict[str, Severity] = {
    **{severity.value: severity for severity in Severity},
    # PagerDuty Events API v2, whose critical and info are also Tocsin's words.
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    # Values often given to the `severity` label in Prometheus alerting rules.
    "page": Severity.CRITICAL,
    "ticket": Severity.LOW,
    "warn": Severity.MEDIUM,
    "none": Severity.INFO,
    # Syslog severities, Emergency to Debug in RFC 5424, and their short forms.
    "emergency": Severity.CRITICAL,
    "emerg": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "err": Severity.HIGH,
    "notice": Severity.LOW,
    "informational": Severity.INFO,
    "debug": Severity.INFO,
    # Priorities P1 (highest) to P5, as incident tools commonly name them.
    "p1": Severity.CRITICAL,
    "p2": Severity.HIGH,
    "p3": Severity.MEDIUM,
    "p4": Severity.LOW,
    "p5": Severity.INFO,
    "fatal": Severity.CRITICAL,
    "major": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "minor": Severity.LOW,
}

# Go's zero time, which Alertmanager sends as the endsAt of a firing alert.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def parse_severity(word: str) -> Severity | None:
    """Map a severity word onto a Severity, ignoring case, or return None if unknown."""
    return SEVERITY_WORDS.get(word.strip().lower())


def allowed_severities() -> str:
    """Describe the accepted severity words for error messages."""
    own = ", ".join(severity.value for severity in Severity)
    others = ", ".join(sorted(set(SEVERITY_WORDS) - {s.value for s in Severity}))
    return f"{own}, or one of {others}"


def severity_from_labels(labels: dict[str, str]) -> tuple[Severity, str | None]:
    """Return the severity the `severity` label names, and a warning if it is unknown.

    A missing or unknown word gives the default severity, so that an alert
    with a misspelt severity still opens an incident.
    """
    word = labels.get("severity")
    if word is None:
        return DEFAULT_SEVERITY, None
    severity = parse_severity(word)
    if severity is None:
        warning = (
            f"labels.severity: unknown severity {word!r}, so {DEFAULT_SEVERITY} "
            f"was used. Expected {allowed_severities()}"
        )
        return DEFAULT_SEVERITY, warning
    return severity, None


def _reject_number(value: object) -> object:
    if isinstance(value, int | float):
        raise ValueError(
            "expected an RFC 3339 time with a UTC offset, such as "
            f"2024-05-01T12:00:00Z, not the number {value!r}"
        )
    return value


def _check_resolved_end(
    ends_at: datetime | None, starts_at: datetime | None, start_name: str
) -> None:
    """Raise ValueError unless a resolved alert's end is set and not before its start.

    `starts_at` is None when the start itself was invalid, which is reported
    on its own field.
    """
    if ends_at is None:
        raise ValueError("a resolved alert needs its end time")
    if starts_at is not None and ends_at < starts_at:
        raise ValueError(
            f"the end {ends_at.isoformat()} is before {start_name} "
            f"{starts_at.isoformat()}"
        )


def _plausible_time(value: datetime) -> datetime:
    """Reject times before 1970 or more than a day ahead of the wall clock.

    Such times are mistakes, and adding a timeout to a year-9999 time fails.
    """
    latest = datetime.now(UTC) + timedelta(days=1)
    if not EPOCH <= value <= latest:
        raise ValueError(
            f"time {value.isoformat()} is out of range: expected from "
            f"1970-01-01 to one day from now ({latest.isoformat(timespec='seconds')})"
        )
    return value


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# No control characters in label names and values: they end up in logs,
# Slack messages and file names.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# A timezone-aware time, written as text. pydantic would read a bare number as
# Unix seconds or milliseconds, picked by its size, so numbers are rejected.
AnyTimestamp = Annotated[AwareDatetime, BeforeValidator(_reject_number)]
Timestamp = Annotated[AnyTimestamp, AfterValidator(_plausible_time)]
# Labels are copied onto every event of an incident's timeline, so their
# count and lengths are bounded.
LabelName = Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
LabelValue = Annotated[str, Field(max_length=1024, pattern=PRINTABLE)]
Labels = Annotated[dict[LabelName, LabelValue], Field(min_length=1, max_length=64)]
Annotations = Annotated[
    dict[
        Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=16384)]
    ],
    Field(max_length=64),
]


@dataclass(frozen=True)
class ExternalAlert:
    """An alert from outside the pipeline, before it has an identity.

    `labels` are the labels as sent, which decide the alert's identity.
    `at` is the time the alert changed state: its start while firing, its end
    once resolved.
    """

    source: str
    status: AlertStatus
    severity: Severity
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None

    @property
    def rule(self) -> str:
        return self.labels.get("alertname", EXTERNAL_RULE)

    @property
    def at(self) -> datetime:
        if self.status is AlertStatus.RESOLVED and self.ends_at is not None:
            return self.ends_at
        return self.starts_at


@dataclass(frozen=True)
class Intake:
    """The alerts of one valid payload, with warnings about values replaced."""

    alerts: list[ExternalAlert]
    warnings: list[str] = field(default_factory=list)


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager webhook notification.

    Each alert carries its own status: a notification whose status is firing
    can still contain resolved alerts of the same group.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: AlertStatus
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    # Alertmanager always sends endsAt. Without a default, pydantic reports a
    # missing one as endsAt, where a default would make it report ends_at.
    ends_at: AnyTimestamp | None = Field(alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @field_validator("ends_at")
    @classmethod
    def _resolved_has_end(
        cls, ends_at: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        if info.data.get("status") is not AlertStatus.RESOLVED:
            return ends_at
        if ends_at == GO_ZERO_TIME:
            raise ValueError("a resolved alert needs its end time, not the zero time")
        _check_resolved_end(ends_at, info.data.get("starts_at"), "startsAt")
        return _plausible_time(ends_at) if ends_at is not None else None

    def to_external(
        self, webhook: AlertmanagerWebhook
    ) -> tuple[ExternalAlert, str | None]:
        """Normalise this alert and return it with a warning about its severity.

        A firing alert's endsAt is dropped, because Alertmanager sends Go's
        zero time there.
        """
        severity, warning = severity_from_labels(self.labels)
        ends_at = self.ends_at if self.status is AlertStatus.RESOLVED else None
        alert = ExternalAlert(
            source="alertmanager",
            status=self.status,
            severity=severity,
            labels=dict(self.labels),
            annotations=self._annotations(webhook),
            starts_at=self.starts_at,
            ends_at=ends_at,
        )
        return alert, warning

    def _annotations(self, webhook: AlertmanagerWebhook) -> dict[str, str]:
        """Return the annotations with Alertmanager's references added.

        An annotation the sender set keeps its value.
        """
        references = {
            "alertmanager_fingerprint": self.fingerprint,
            "alertmanager_group_key": webhook.group_key,
            "alertmanager_url": webhook.external_url,
            "generator_url": self.generator_url,
        }
        added = {name: value for name, value in references.items() if value}
        return {**added, **self.annotations}


class AlertmanagerWebhook(BaseModel):
    """An Alertmanager webhook notification, payload version 4.

    Unknown fields are ignored, so a newer Alertmanager that adds fields to
    version 4 is still accepted. The group's labels and the common labels and
    annotations repeat what each alert carries, so only the alerts are read.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", title="Alertmanager webhook payload"
    )

    version: Literal["4"]
    group_key: str = Field(alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: AlertStatus
    receiver: str
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(
        default_factory=dict, alias="commonAnnotations"
    )
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)

    def to_intake(self) -> Intake:
        alerts = []
        warnings = []
        for index, sent in enumerate(self.alerts):
            alert, warning = sent.to_external(self)
            alerts.append(alert)
            if warning:
                warnings.append(f"alerts.{index}.{warning}")
        if self.truncated_alerts:
            warnings.append(
                f"truncatedAlerts: Alertmanager left out {self.truncated_alerts} "
                f"alerts of group {self.group_key!r}, which Tocsin did not "
                "receive. Raise max_alerts in its webhook_config, or set it to 0 "
                "for no limit, to send them"
            )
        return Intake(alerts, warnings)


class GenericAlert(BaseModel):
    """One alert of the generic form.

    `severity`, when given, overrides the `severity` label and must be a
    known word. `ends_at` is required for a resolved alert and not allowed
    for a firing one, because Tocsin does not expire firing alerts by time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING
    starts_at: Timestamp
    ends_at: Timestamp | None = Field(default=None, validate_default=True)
    severity: Severity | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _known_severity(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        severity = parse_severity(value)
        if severity is None:
            raise ValueError(
                f"unknown severity {value!r}, expected {allowed_severities()}"
            )
        return severity

    @field_validator("ends_at")
    @classmethod
    def _end_matches_status(
        cls, ends_at: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        status = info.data.get("status")
        if status is AlertStatus.FIRING and ends_at is not None:
            raise ValueError(
                "ends_at is only allowed when status is resolved. To end a "
                "firing alert, send it again with status resolved and ends_at"
            )
        if status is AlertStatus.RESOLVED:
            _check_resolved_end(ends_at, info.data.get("starts_at"), "starts_at")
        return ends_at

    def to_external(self) -> tuple[ExternalAlert, str | None]:
        """Normalise this alert and return it with a warning about its severity."""
        warning = None
        severity = self.severity
        if severity is None:
            severity, warning = severity_from_labels(self.labels)
        alert = ExternalAlert(
            source="http",
            status=self.status,
            severity=severity,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=self.starts_at,
            ends_at=self.ends_at,
        )
        return alert, warning


class GenericPayload(BaseModel):
    """The generic form: `{"alerts": [GenericAlert, ...]}`, at least one alert."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", title="generic alert payload"
    )

    alerts: list[GenericAlert] = Field(min_length=1)

    def to_intake(self) -> Intake:
        alerts = []
        warnings = []
        for index, generic in enumerate(self.alerts):
            alert, warning = generic.to_external()
            alerts.append(alert)
            if warning:
                warnings.append(f"alerts.{index}.{warning}")
        return Intake(alerts, warnings)


def parse_alertmanager(raw: bytes) -> Intake:
    """Validate an Alertmanager webhook body, raising ValidationError if invalid."""
    return AlertmanagerWebhook.model_validate_json(raw).to_intake()


def parse_generic(raw: bytes) -> Intake:
    """Validate a generic-form body, raising ValidationError if invalid."""
    return GenericPayload.model_validate_json(raw).to_intake()

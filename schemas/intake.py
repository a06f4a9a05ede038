"""Payloads of the external alert intake: Alertmanager webhooks and generic JSON.

Both forms normalise to `ExternalAlert`s. Identity, event ids and publishing
live in `streams.web.intake`, which turns each one into a `records.Alert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.records import AlertStatus, Severity

DEFAULT_SEVERITY = Severity.MEDIUM
EXTERNAL_RULE = "external"

# Severity words of other tools, in lower case, mapped onto Tocsin's five.
SEVERITY_WORDS: dict[str, Severity] = {
    **{severity.value: severity for severity in Severity},
    # PagerDuty Events API v2; its critical and info are Tocsin's words too.
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    # Values of the `severity` label common in Prometheus alerting rules.
    "page": Severity.CRITICAL,
    "ticket": Severity.LOW,
    "warn": Severity.MEDIUM,
    "none": Severity.INFO,
    # Syslog severity names and keywords (RFC 5424).
    "emergency": Severity.CRITICAL,
    "emerg": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "crit": Severity.CRITICAL,
    "err": Severity.HIGH,
    "notice": Severity.LOW,
    "informational": Severity.INFO,
    "debug": Severity.INFO,
    # Priorities P1 (highest) to P5, as PagerDuty and Opsgenie name them.
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
    """Map a severity word onto a Severity, ignoring case; None if it is unknown."""
    return SEVERITY_WORDS.get(word.strip().lower())


def allowed_severities() -> str:
    """Describe the accepted severity words for error messages."""
    own = ", ".join(severity.value for severity in Severity)
    others = ", ".join(sorted(set(SEVERITY_WORDS) - {s.value for s in Severity}))
    return f"{own}, or one of {others}"


def severity_from_labels(labels: dict[str, str]) -> tuple[Severity, str | None]:
    """Return the severity the `severity` label names, and a warning if it is unknown.

    A missing or unknown word gives the default severity, so that an alert
    with an odd label still opens an incident.
    """
    word = labels.get("severity")
    if word is None:
        return DEFAULT_SEVERITY, None
    severity = parse_severity(word)
    if severity is None:
        warning = (
            f"labels.severity: unknown severity {word!r}, used {DEFAULT_SEVERITY}; "
            f"allowed: {allowed_severities()}"
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


# A timezone-aware time, written as text: pydantic would read a bare number as
# Unix seconds or milliseconds, and guessing which is worse than rejecting it.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_reject_number)]
LabelName = Annotated[str, Field(min_length=1)]
Labels = Annotated[dict[LabelName, str], Field(min_length=1)]


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
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @model_validator(mode="after")
    def _resolved_has_end(self) -> AlertmanagerAlert:
        if self.status is AlertStatus.FIRING:
            return self
        if self.ends_at is None or self.ends_at == GO_ZERO_TIME:
            sent = "null" if self.ends_at is None else self.ends_at.isoformat()
            raise ValueError(
                f"endsAt: a resolved alert needs its end time, got {sent}"
            )
        if self.ends_at < self.starts_at:
            raise ValueError(
                f"endsAt {self.ends_at.isoformat()} is before startsAt "
                f"{self.starts_at.isoformat()}"
            )
        return self

    def to_external(
        self, webhook: AlertmanagerWebhook
    ) -> tuple[ExternalAlert, str | None]:
        """Normalise this alert; return it with a warning about its severity.

        A firing alert's endsAt is dropped: Alertmanager sends Go's zero time.
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
        """Add Alertmanager's references to the annotations; sent ones win."""
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
                f"alerts of group {self.group_key!r}, which were not received; "
                "raise max_alerts in its webhook_config to send them"
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
    annotations: dict[str, str] = Field(default_factory=dict)
    status: AlertStatus = AlertStatus.FIRING
    starts_at: Timestamp
    ends_at: Timestamp | None = None
    severity: Severity | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _known_severity(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        severity = parse_severity(value)
        if severity is None:
            raise ValueError(
                f"unknown severity {value!r}; allowed: {allowed_severities()}"
            )
        return severity

    @model_validator(mode="after")
    def _end_matches_status(self) -> GenericAlert:
        if self.status is AlertStatus.FIRING:
            if self.ends_at is not None:
                raise ValueError(
                    "ends_at is only allowed when status is resolved; "
                    "send a resolved alert to end a firing one"
                )
            return self
        if self.ends_at is None:
            raise ValueError("ends_at is required when status is resolved")
        if self.ends_at < self.starts_at:
            raise ValueError(
                f"ends_at {self.ends_at.isoformat()} is before starts_at "
                f"{self.starts_at.isoformat()}"
            )
        return self

    def to_external(self) -> tuple[ExternalAlert, str | None]:
        """Normalise this alert; return it with a warning about its severity."""
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
    """Validate an Alertmanager webhook body; raise ValidationError if invalid."""
    return AlertmanagerWebhook.model_validate_json(raw).to_intake()


def parse_generic(raw: bytes) -> Intake:
    """Validate a generic-form body; raise ValidationError if invalid."""
    return GenericPayload.model_validate_json(raw).to_intake()

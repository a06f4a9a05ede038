"""Silences and maintenance windows: label matchers with a time span."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from schemas.durations import Duration, format_duration
from schemas.patterns import Pattern, compile_pattern
from schemas.records import Record
from schemas.rules import Strict

MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _anchored(pattern: str) -> Pattern:
    """Compile `pattern` to match whole values, naming the pattern as written."""
    # Compiled alone first, so an error shows the pattern the user wrote.
    compile_pattern(pattern)
    return compile_pattern(f"^(?:{pattern})$")


class Matcher(Strict):
    """A label matcher as Alertmanager writes it: `name=value`, `!=`, `=~`, `!~`.

    Regular expressions are anchored at both ends; a missing label matches as
    the empty string.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="after")
    def _valid_regex(self) -> Matcher:
        if self.op in {"=~", "!~"}:
            try:
                _anchored(self.value)
            except ValueError as exc:
                raise ValueError(f"matcher {self.name}{self.op}: {exc}") from exc
        return self

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = MATCHER.match(text)
        if found is None:
            raise ValueError(
                f"invalid matcher {text!r}: expected NAME=VALUE, NAME!=VALUE, "
                "NAME=~REGEX or NAME!~REGEX"
            )
        name, op, value = found.groups()
        if op == "=" and value[:1] in ("=", "~"):
            # `name==x` or `name=~~x` is a typo far more often than a value
            # that starts with `=` or `~`; quote such a value to mean it.
            raise ValueError(
                f"invalid matcher {text!r}: the value starts with {value[0]!r}; "
                f'use {name}={value[1:]} or {name}=~..., or quote it: {name}="{value}"'
            )
        return cls(name=name, op=op, value=value.strip('"'))

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _anchored(self.value).search(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def _matchers(value: object) -> object:
    if isinstance(value, list):
        return [Matcher.parse(v) if isinstance(v, str) else v for v in value]
    return value


class Silence(Strict):
    """Mute notifications of incidents whose labels match every matcher."""

    silence_id: str
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)
    expired_at: AwareDatetime | None = None

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        return _matchers(value)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError(
                f"ends_at {self.ends_at.isoformat()} must be after starts_at "
                f"{self.starts_at.isoformat()}"
            )
        return self

    def state(self, at: datetime) -> Literal["pending", "active", "expired"]:
        end = min(self.ends_at, self.expired_at or self.ends_at)
        if at >= end:
            return "expired"
        return "active" if at >= self.starts_at else "pending"

    def mutes(self, labels: dict[str, str], at: datetime) -> bool:
        active = self.state(at) == "active"
        return active and all(m.matches(labels) for m in self.matchers)


class Recurrence(Strict):
    """A weekly window: the given days, from `start` for `duration`, in `timezone`."""

    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: time
    duration: Duration
    timezone: str = "UTC"

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = [d for d in days if d.lower()[:3] not in WEEKDAYS]
        if unknown:
            raise ValueError(f"invalid days {unknown}: use {', '.join(WEEKDAYS)}")
        return [d.lower()[:3] for d in days]

    @field_validator("duration")
    @classmethod
    def _within_week(cls, duration: timedelta) -> timedelta:
        if not timedelta(0) < duration <= timedelta(days=7):
            raise ValueError(
                f"a weekly window lasts more than 0s and at most 7d; got "
                f"{format_duration(duration)}"
            )
        return duration

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone!r}, e.g. UTC or Europe/Paris"
            ) from None
        return zone

    def covers(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        # A window that started on one of the previous days may still be open.
        for days_back in range(0, self.duration.days + 2):
            day = local.date() - timedelta(days=days_back)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            opened = datetime.combine(day, self.start, tzinfo=local.tzinfo)
            if opened <= local < opened + self.duration:
                return True
        return False


class MaintenanceWindow(Strict):
    """Planned work: mute notifications of matching incidents while it lasts.

    A window is one-off (`starts_at` and `ends_at`) or recurring (`every`).
    """

    name: str = Field(min_length=1)
    matchers: list[Matcher] = Field(min_length=1)
    enabled: bool = True
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    every: Recurrence | None = None
    created_by: str = Field(default="", max_length=200)
    comment: str = Field(default="", max_length=2000)

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        return _matchers(value)

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        one_off = self.starts_at is not None and self.ends_at is not None
        if one_off == (self.every is not None):
            raise ValueError(
                f"maintenance window {self.name!r} needs either starts_at and "
                "ends_at, or every"
            )
        if one_off and self.ends_at <= self.starts_at:  # type: ignore[operator]
            raise ValueError(f"maintenance window {self.name!r} ends before it starts")
        return self

    def active(self, at: datetime) -> bool:
        if not self.enabled:
            return False
        if self.every is not None:
            return self.every.covers(at)
        return self.starts_at <= at < self.ends_at  # type: ignore[operator]

    def mutes(self, labels: dict[str, str], at: datetime) -> bool:
        return self.active(at) and all(m.matches(labels) for m in self.matchers)


class InhibitRule(Strict):
    """While a source alert fires, mute targets that share its `equal` labels.

    A rule never mutes an alert that also matches its own source matchers,
    so two alerts cannot inhibit each other through one rule.
    """

    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, value: object) -> object:
        return _matchers(value)

    def inhibits(self, source: dict[str, str], target: dict[str, str]) -> bool:
        if not all(m.matches(source) for m in self.source_matchers):
            return False
        if not all(m.matches(target) for m in self.target_matchers):
            return False
        if all(m.matches(target) for m in self.source_matchers):
            return False
        return all(source.get(name, "") == target.get(name, "") for name in self.equal)


class SilenceCommand(Record):
    """Create a silence or a maintenance window, or end one early, for `actor`.

    `silence_id` is the silence's id, or the window's name for the window
    actions.
    """

    action: Literal["create", "expire", "create_window", "delete_window"]
    silence_id: str
    silence: Silence | None = None
    window: MaintenanceWindow | None = None
    actor: str
    at: AwareDatetime

"""On-call configuration: users, schedules with rotation layers, escalation policies."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from schemas.durations import Duration
from schemas.rules import Strict
from schemas.silences import WEEKDAYS

# Prefixes of the target keys a plan stores for user and schedule targets.
# A key without one is a receiver name.
USER_PREFIX = "user:"
SCHEDULE_PREFIX = "schedule:"
MAX_REPEAT = 9


def _zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None
    return zone


def _days(days: list[str]) -> list[str]:
    unknown = [d for d in days if d.lower()[:3] not in WEEKDAYS]
    if unknown:
        raise ValueError(f"invalid days {unknown}: use {', '.join(WEEKDAYS)}")
    return [d.lower()[:3] for d in days]


class DailyWindow(Strict):
    """Hours of the given weekdays, from `start` to `end` in local time.

    An `end` at or before `start` makes a window that runs past midnight,
    and it belongs to the day it starts on.
    """

    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: time = time(9)
    end: time = time(17)

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        return _days(days)

    def contains_local(self, local: datetime) -> bool:
        """Return whether the wall time `local` lies in the window."""
        clock = local.time().replace(tzinfo=None)
        today = WEEKDAYS[local.weekday()] in self.days
        if self.start < self.end:
            return today and self.start <= clock < self.end
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7] in self.days
        return (today and clock >= self.start) or (yesterday and clock < self.end)


class BusinessHours(DailyWindow):
    """A weekly window of working hours in `timezone`."""

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        return _zone(zone)

    def contains(self, at: datetime) -> bool:
        return self.contains_local(at.astimezone(ZoneInfo(self.timezone)))

    def next_start(self, at: datetime) -> datetime:
        """Return `at` if it lies in the window, else the window's next start."""
        if self.contains(at):
            return at
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        # Eight days always include a listed weekday after `at`.
        for days_ahead in range(8):
            day = local.date() + timedelta(days=days_ahead)
            if WEEKDAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, self.start, tzinfo=zone)
            if opens > at:
                return opens
        raise AssertionError("a listed weekday falls within eight days")


class Layer(Strict):
    """One rotation of a schedule: users take turns, handing off at `handoff`.

    `start` is the local date of the first hand-off, when `users[0]` goes on
    call. A `daily` shift lasts one day, a `weekly` one seven, and a `custom`
    one `length`. Lengths in whole days keep the local hand-off time across
    daylight-saving changes, and other lengths count elapsed time.
    """

    name: str = Field(default="", max_length=200)
    rotation: Literal["daily", "weekly", "custom"] = "weekly"
    length: Duration | None = None
    handoff: time = time(9)
    start: date
    users: list[str] = Field(min_length=1)
    restriction: DailyWindow | None = Field(
        default=None,
        description="when set, the layer has someone on call only in these hours",
    )

    @model_validator(mode="after")
    def _length_fits_rotation(self) -> Layer:
        if self.rotation == "custom":
            if self.length is None or self.length < timedelta(minutes=1):
                raise ValueError(
                    "a custom rotation needs a length of at least 1m, such as 3d or 12h"
                )
        elif self.length is not None:
            raise ValueError(
                f"length applies to custom rotations only; remove it or set "
                f"rotation: custom (rotation is {self.rotation!r})"
            )
        return self

    @property
    def shift_length(self) -> timedelta:
        if self.rotation == "daily":
            return timedelta(days=1)
        if self.rotation == "weekly":
            return timedelta(days=7)
        assert self.length is not None
        return self.length


class Override(Strict):
    """`user` is on call in place of the layers from `start` until `end`."""

    user: str = Field(min_length=1)
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Override:
        if self.end <= self.start:
            raise ValueError(
                f"override of {self.user!r}: end {self.end.isoformat()} must be "
                f"after start {self.start.isoformat()}"
            )
        return self


class Schedule(Strict):
    """An on-call rotation made of layers and overrides, in `timezone`.

    An override wins over every layer, and a later override over an earlier
    one. Among layers the last one listed that has someone on call wins.
    """

    timezone: str = "UTC"
    layers: list[Layer] = Field(min_length=1, max_length=20)
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        return _zone(zone)


class User(Strict):
    """A person who can be paged, and the receivers that reach them."""

    receivers: list[str] = Field(min_length=1)
    name: str = Field(default="", max_length=200)


class Target(Strict):
    """A level's target: exactly one of a receiver, a user or a schedule.

    In the file a plain string is a receiver name.
    """

    receiver: str | None = Field(default=None, min_length=1)
    user: str | None = Field(default=None, min_length=1)
    schedule: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        named = [v for v in (self.receiver, self.user, self.schedule) if v is not None]
        if len(named) != 1:
            raise ValueError(
                "a target names exactly one of receiver, user or schedule, e.g. "
                "{schedule: primary}"
            )
        return self

    @property
    def key(self) -> str:
        """The target as a plan stores it: a receiver name, `user:X` or `schedule:X`."""
        if self.user is not None:
            return USER_PREFIX + self.user
        if self.schedule is not None:
            return SCHEDULE_PREFIX + self.schedule
        assert self.receiver is not None
        return self.receiver


class Snapshot(Strict):
    """A model that incidents store as JSON, with durations as seconds.

    Seconds parse back as durations, but pydantic's default ISO 8601 form
    (`PT5M`) does not.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, ser_json_timedelta="float"
    )


class EscalationLevel(Snapshot):
    """Targets notified once the incident has been unacknowledged for `delay`."""

    delay: Duration = timedelta(0)
    targets: list[Target] = Field(min_length=1)

    @field_validator("targets", mode="before")
    @classmethod
    def _receiver_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"receiver": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def target_keys(self) -> list[str]:
        return [target.key for target in self.targets]


class EscalationPolicy(Snapshot):
    """Levels an unacknowledged incident escalates through, and when.

    `urgency: high` escalates through the levels, and `low` notifies the
    first level only. With `business_hours`, an incident is low urgency outside
    them: a level that comes due outside waits for the next start of the
    hours, and the later levels count their delays from there. `repeat` runs
    the levels again that many times, `repeat_after` after the last level.
    `ack_timeout` returns an acknowledged incident to triggered when it is
    neither resolved nor acknowledged again in time, and 0 turns it off.
    """

    levels: list[EscalationLevel] = Field(min_length=1, max_length=20)
    repeat: int = Field(default=0, ge=0, le=MAX_REPEAT)
    repeat_after: Duration = timedelta(minutes=30)
    urgency: Literal["high", "low"] = "high"
    business_hours: BusinessHours | None = None
    ack_timeout: Duration = timedelta(0)

    @model_validator(mode="after")
    def _levels_in_order(self) -> EscalationPolicy:
        delays = [level.delay for level in self.levels]
        if delays != sorted(delays):
            delays_text = [f"{d.total_seconds():g}s" for d in delays]
            raise ValueError(
                f"level delays must not decrease, because each counts from the "
                f"opening; got {delays_text}"
            )
        if self.repeat and self.repeat_after <= timedelta(0):
            raise ValueError("repeat_after must be more than 0s when repeat is set")
        return self


def oncall_reference_problems(data: dict[str, Any]) -> list[str]:
    """List user, schedule and receiver names in the parsed YAML that name nothing.

    Entries of the wrong shape are left to the model.
    """
    users = data.get("users") or {}
    schedules = data.get("schedules") or {}
    receivers = data.get("receivers") or {}
    policies = data.get("policies") or {}
    if not all(isinstance(v, dict) for v in (users, schedules, receivers, policies)):
        return []
    problems = []
    for name in receivers:
        if str(name).startswith((USER_PREFIX, SCHEDULE_PREFIX)):
            problems.append(
                f"receivers.{name}: receiver names must not start with "
                f"{USER_PREFIX!r} or {SCHEDULE_PREFIX!r}"
            )
    for name, user in users.items():
        listed = user.get("receivers") if isinstance(user, dict) else None
        for receiver in listed if isinstance(listed, list) else []:
            if isinstance(receiver, str) and receiver not in receivers:
                problems.append(
                    f"users.{name}.receivers: {receiver!r} is not a receiver; "
                    f"defined: {sorted(receivers)}"
                )
    for name, schedule in schedules.items():
        problems += _schedule_problems(name, schedule, users)
    for name, policy in policies.items():
        levels = policy.get("levels") if isinstance(policy, dict) else None
        for index, level in enumerate(levels if isinstance(levels, list) else []):
            targets = level.get("targets") if isinstance(level, dict) else None
            for target in targets if isinstance(targets, list) else []:
                problems += _target_problems(
                    f"policies.{name}.levels.{index}.targets",
                    target,
                    {"receiver": receivers, "user": users, "schedule": schedules},
                )
    return problems


def _schedule_problems(name: str, schedule: object, users: dict[str, Any]) -> list[str]:
    if not isinstance(schedule, dict):
        return []
    problems = []
    layers = schedule.get("layers")
    for index, layer in enumerate(layers if isinstance(layers, list) else []):
        listed = layer.get("users") if isinstance(layer, dict) else None
        for user in listed if isinstance(listed, list) else []:
            if isinstance(user, str) and user not in users:
                problems.append(
                    f"schedules.{name}.layers.{index}.users: {user!r} is not a "
                    f"user; defined: {sorted(users)}"
                )
    overrides = schedule.get("overrides")
    for index, override in enumerate(overrides if isinstance(overrides, list) else []):
        user = override.get("user") if isinstance(override, dict) else None
        if isinstance(user, str) and user not in users:
            problems.append(
                f"schedules.{name}.overrides.{index}.user: {user!r} is not a user; "
                f"defined: {sorted(users)}"
            )
    return problems


def _target_problems(
    path: str, target: object, defined: dict[str, dict[str, Any]]
) -> list[str]:
    """List what a target in the `{kind: name}` form names that is not defined.

    Plain receiver names are checked with the routes, in the configuration.
    """
    if not isinstance(target, dict):
        return []
    problems = []
    for kind, names in defined.items():
        name = target.get(kind)
        if isinstance(name, str) and name not in names:
            problems.append(
                f"{path}: {kind} {name!r} is not defined; defined: {sorted(names)}"
            )
    return problems

"""On-call resolution at a given time: pure functions over the schedule models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.oncall import (
    SCHEDULE_PREFIX,
    USER_PREFIX,
    DailyWindow,
    Layer,
    Schedule,
    User,
)


@dataclass(frozen=True)
class Shift:
    """One user's turn on call, from `start` until `end`, and where it comes from."""

    user: str
    start: datetime
    end: datetime
    source: str

    def as_json(self) -> dict[str, str]:
        return {
            "user": self.user,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "source": self.source,
        }


def _handoff(layer: Layer, zone: ZoneInfo, shift: int) -> datetime:
    """Return the instant shift number `shift` of a layer begins.

    Whole-day lengths step the local date, so the hand-off keeps its wall
    time through daylight-saving changes. A hand-off time that a change
    skips maps to the instant with the offset before the change (PEP 495,
    fold=0): 02:30 on a night clocks jump from 02:00 to 03:00 is 03:30.
    """
    length = layer.shift_length
    first = datetime.combine(layer.start, layer.handoff, tzinfo=zone)
    if length % timedelta(days=1) == timedelta(0):
        day = layer.start + timedelta(days=shift * length.days)
        local = datetime.combine(day, layer.handoff, tzinfo=zone)
        return local.astimezone(UTC)
    return first.astimezone(UTC) + shift * length


def layer_shift(layer: Layer, zone: ZoneInfo, at: datetime) -> Shift | None:
    """Return the layer's shift at `at`, or None before its start or out of hours.

    The shift ends at the layer's next hand-off, even where the layer's
    restriction ends its hours before then; `on_call` reports the true end.
    """
    first = _handoff(layer, zone, 0)
    if at < first:
        return None
    # An estimate from elapsed time, corrected by at most a step or two
    # where daylight-saving changes move the hand-offs by an hour.
    shift = int((at - first) / layer.shift_length)
    for _ in range(4):
        if _handoff(layer, zone, shift) > at:
            shift -= 1
        elif _handoff(layer, zone, shift + 1) <= at:
            shift += 1
        else:
            break
    restriction = layer.restriction
    if restriction is not None and not restriction.contains_local(at.astimezone(zone)):
        return None
    return Shift(
        user=layer.users[shift % len(layer.users)],
        start=_handoff(layer, zone, shift),
        end=_handoff(layer, zone, shift + 1),
        source=f"layer {layer.name or '(unnamed)'}",
    )


def on_call(schedule: Schedule, at: datetime) -> Shift | None:
    """Return who is on call on `schedule` at `at`, or None when no one is.

    The shift's `end` is the first instant after `at` at which someone else
    is on call, or nobody: an override, another layer or the end of a
    restriction's hours can end it before its layer's next hand-off.
    """
    shift = _winning_shift(schedule, at)
    if shift is None:
        return None
    for boundary in _boundaries(schedule, at, shift.end):
        following = _winning_shift(schedule, boundary)
        if following is None or following.user != shift.user:
            return Shift(shift.user, shift.start, boundary, shift.source)
    return shift


def _boundaries(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Return the instants in (after, until) at which the winning shift can change.

    They are the overrides' starts and ends, the layers' hand-offs and the
    starts and ends of their restrictions' hours.
    """
    zone = ZoneInfo(schedule.timezone)
    found: set[datetime] = set()
    for override in schedule.overrides:
        found.update({override.start, override.end})
    for layer in schedule.layers:
        first = _handoff(layer, zone, 0)
        number = max(0, int((after - first) / layer.shift_length) - 1)
        # Hand-offs from just before `after` up to `until`, bounded in count.
        for _ in range(10_000):
            handoff = _handoff(layer, zone, number)
            if handoff >= until:
                break
            found.add(handoff)
            number += 1
        if layer.restriction is not None:
            found.update(_window_edges(layer.restriction, zone, after, until))
    return sorted(t for t in found if after < t < until)


def _window_edges(
    window: DailyWindow, zone: ZoneInfo, after: datetime, until: datetime
) -> list[datetime]:
    """Return the local starts and ends of a daily window's hours near the range."""
    edges = []
    day = after.astimezone(zone).date() - timedelta(days=1)
    last = until.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for clock in (window.start, window.end):
            edges.append(datetime.combine(day, clock, tzinfo=zone).astimezone(UTC))
        day += timedelta(days=1)
    return edges


def _winning_shift(schedule: Schedule, at: datetime) -> Shift | None:
    for override in reversed(schedule.overrides):
        if override.start <= at < override.end:
            return Shift(override.user, override.start, override.end, "override")
    zone = ZoneInfo(schedule.timezone)
    for layer in reversed(schedule.layers):
        shift = layer_shift(layer, zone, at)
        if shift is not None:
            return shift
    return None


def resolve_targets(
    target_keys: list[str],
    at: datetime,
    users: dict[str, User],
    schedules: dict[str, Schedule],
) -> tuple[list[str], list[str]]:
    """Return the receivers that `target_keys` reach at `at`, and the problems.

    A user target reaches the user's receivers, and a schedule target the
    receivers of the user on call at `at`. A problem is a user or schedule
    that is not configured, or a schedule with nobody on call.
    """
    receivers: list[str] = []
    problems: list[str] = []
    for key in target_keys:
        found: list[str]
        if key.startswith(USER_PREFIX):
            user = key.removeprefix(USER_PREFIX)
            found = users[user].receivers if user in users else []
            if user not in users:
                problems.append(f"user {user!r} is not configured")
        elif key.startswith(SCHEDULE_PREFIX):
            name = key.removeprefix(SCHEDULE_PREFIX)
            found, problem = _schedule_receivers(name, at, users, schedules)
            if problem:
                problems.append(problem)
        else:
            found = [key]
        receivers += [r for r in found if r not in receivers]
    return receivers, problems


def _schedule_receivers(
    name: str, at: datetime, users: dict[str, User], schedules: dict[str, Schedule]
) -> tuple[list[str], str | None]:
    schedule = schedules.get(name)
    if schedule is None:
        return [], f"schedule {name!r} is not configured"
    shift = on_call(schedule, at)
    if shift is None:
        return [], f"nobody is on call on schedule {name!r} at {at.isoformat()}"
    user = users.get(shift.user)
    if user is None:
        return [], f"user {shift.user!r} of schedule {name!r} is not configured"
    return list(user.receivers), None

"""Who is on call: rotations, hand-offs across daylight-saving changes, overrides."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.oncall import Layer, Schedule, User
from streams.escalate.schedules import layer_shift, on_call, resolve_targets

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def paris(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def schedule(*layers: dict[str, Any], **fields: Any) -> Schedule:
    return Schedule.model_validate(
        {"timezone": "Europe/Paris", "layers": layers, **fields}
    )


WEEKLY = {
    "name": "primary",
    "rotation": "weekly",
    "handoff": "09:00",
    "start": "2024-03-04",
    "users": ["alice", "bob", "carol"],
}


# layers and rotations


def test_weekly_first_user_from_start() -> None:
    shift = on_call(schedule(WEEKLY), paris(2024, 3, 4, 9))

    assert shift is not None
    assert shift.user == "alice"
    assert shift.start == paris(2024, 3, 4, 9)
    assert shift.end == paris(2024, 3, 11, 9)


def test_weekly_hands_off_at_handoff_time() -> None:
    before = on_call(schedule(WEEKLY), paris(2024, 3, 11, 8, 59))
    after = on_call(schedule(WEEKLY), paris(2024, 3, 11, 9))

    assert before is not None and before.user == "alice"
    assert after is not None and after.user == "bob"


def test_weekly_rotation_wraps_around() -> None:
    shift = on_call(schedule(WEEKLY), paris(2024, 3, 25, 12))

    assert shift is not None
    assert shift.user == "alice"


def test_nobody_before_layer_start() -> None:
    assert on_call(schedule(WEEKLY), paris(2024, 3, 4, 8, 59)) is None


def test_daily_rotation_changes_every_day() -> None:
    daily = {**WEEKLY, "rotation": "daily", "users": ["alice", "bob"]}
    users = [on_call(schedule(daily), paris(2024, 3, 4 + day, 10)) for day in range(4)]

    assert [s.user if s else None for s in users] == ["alice", "bob", "alice", "bob"]


def test_custom_days_rotation() -> None:
    custom = {**WEEKLY, "rotation": "custom", "length": "3d", "users": ["a", "b"]}
    day2 = on_call(schedule(custom), paris(2024, 3, 6, 10))
    day3 = on_call(schedule(custom), paris(2024, 3, 7, 10))

    assert day2 is not None and day2.user == "a"
    assert day3 is not None and day3.user == "b"


def test_custom_hours_rotation_counts_elapsed_time() -> None:
    custom = {**WEEKLY, "rotation": "custom", "length": "12h", "users": ["a", "b"]}
    night = on_call(schedule(custom), paris(2024, 3, 4, 21, 30))

    assert night is not None
    assert night.user == "b"
    assert night.start == paris(2024, 3, 4, 21)


# daylight-saving changes


def test_weekly_handoff_keeps_local_time_after_spring_change() -> None:
    # Clocks in Paris went from 02:00 to 03:00 on 31 March 2024.
    layer = {**WEEKLY, "start": "2024-03-25"}
    before = on_call(schedule(layer), paris(2024, 4, 1, 8, 59))
    after = on_call(schedule(layer), paris(2024, 4, 1, 9))

    assert before is not None and before.user == "alice"
    assert after is not None and after.user == "bob"
    assert after.start.astimezone(UTC) == datetime(2024, 4, 1, 7, tzinfo=UTC)
    assert before.start.astimezone(UTC) == datetime(2024, 3, 25, 8, tzinfo=UTC)


def test_daily_shift_across_spring_change_lasts_23_hours() -> None:
    daily = {**WEEKLY, "rotation": "daily", "start": "2024-03-30"}
    shift = on_call(schedule(daily), paris(2024, 3, 30, 12))

    assert shift is not None
    assert shift.end - shift.start == timedelta(hours=23)


def test_daily_shift_across_autumn_change_lasts_25_hours() -> None:
    # Clocks in Paris went from 03:00 back to 02:00 on 27 October 2024.
    daily = {**WEEKLY, "rotation": "daily", "start": "2024-10-26"}
    shift = on_call(schedule(daily), paris(2024, 10, 26, 12))

    assert shift is not None
    assert shift.end - shift.start == timedelta(hours=25)


def test_handoff_in_skipped_hour_uses_offset_before_change() -> None:
    daily = {**WEEKLY, "rotation": "daily", "handoff": "02:30", "start": "2024-03-30"}
    layer = schedule(daily).layers[0]
    # 02:30 does not exist on 31 March, and fold=0 maps it to 01:30 UTC (03:30 CEST).
    early = layer_shift(layer, PARIS, datetime(2024, 3, 31, 1, 29, tzinfo=UTC))
    late = layer_shift(layer, PARIS, datetime(2024, 3, 31, 1, 30, tzinfo=UTC))

    assert early is not None and early.user == "alice"
    assert late is not None and late.user == "bob"


def test_handoff_in_repeated_hour_happens_once() -> None:
    daily = {**WEEKLY, "rotation": "daily", "handoff": "02:30", "start": "2024-10-26"}
    layer = schedule(daily).layers[0]
    # 02:30 happens twice on 27 October, and the hand-off is at the first, 00:30 UTC.
    first = layer_shift(layer, PARIS, datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    second = layer_shift(layer, PARIS, datetime(2024, 10, 27, 1, 30, tzinfo=UTC))

    assert first is not None and first.user == "bob"
    assert second is not None and second.user == "bob"
    assert first.start == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_time_zone_of_schedule_decides_handoff() -> None:
    layer = Layer(
        rotation="daily", handoff=time(9), start=date(2024, 3, 4), users=["a", "b"]
    )
    shift = layer_shift(layer, NEW_YORK, datetime(2024, 3, 5, 13, 59, tzinfo=UTC))

    # 09:00 in New York on 5 March is 14:00 UTC, so "a" is still on call.
    assert shift is not None
    assert shift.user == "a"


# several layers and overrides


NIGHTS = {
    "name": "nights",
    "rotation": "weekly",
    "start": "2024-03-04",
    "users": ["dave"],
    "restriction": {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "20:00",
        "end": "08:00",
    },
}


def test_later_layer_wins_inside_its_restriction() -> None:
    night = on_call(schedule(WEEKLY, NIGHTS), paris(2024, 3, 5, 23))
    early = on_call(schedule(WEEKLY, NIGHTS), paris(2024, 3, 6, 7, 59))

    assert night is not None and night.user == "dave"
    assert early is not None and early.user == "dave"


def test_earlier_layer_fills_outside_restriction() -> None:
    day = on_call(schedule(WEEKLY, NIGHTS), paris(2024, 3, 5, 12))

    assert day is not None
    assert day.user == "alice"
    assert day.source == "layer primary"


def test_override_wins_over_layers() -> None:
    override = {
        "user": "erin",
        "start": "2024-03-05T10:00:00+01:00",
        "end": "2024-03-05T12:00:00+01:00",
    }
    plan = schedule(WEEKLY, NIGHTS, overrides=[override])
    inside = on_call(plan, paris(2024, 3, 5, 11))
    after = on_call(plan, paris(2024, 3, 5, 12))

    assert inside is not None and inside.user == "erin"
    assert inside.source == "override"
    assert after is not None and after.user == "alice"


def test_later_override_wins_over_earlier() -> None:
    overrides = [
        {
            "user": "erin",
            "start": "2024-03-05T00:00:00Z",
            "end": "2024-03-06T00:00:00Z",
        },
        {
            "user": "frank",
            "start": "2024-03-05T10:00:00Z",
            "end": "2024-03-05T11:00:00Z",
        },
    ]
    shift = on_call(schedule(WEEKLY, overrides=overrides), paris(2024, 3, 5, 11, 30))

    assert shift is not None
    assert shift.user == "frank"


# validation


def test_custom_rotation_needs_length() -> None:
    with pytest.raises(ValidationError, match="custom rotation needs a length"):
        schedule({**WEEKLY, "rotation": "custom"})


def test_length_rejected_without_custom_rotation() -> None:
    with pytest.raises(ValidationError, match="length applies to custom"):
        schedule({**WEEKLY, "length": "3d"})


def test_unknown_time_zone_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        schedule(WEEKLY, timezone="Mars/Olympus")


def test_override_ending_before_start_rejected() -> None:
    override = {
        "user": "a",
        "start": "2024-03-05T10:00:00Z",
        "end": "2024-03-05T09:00:00Z",
    }
    with pytest.raises(ValidationError, match="must be after start"):
        schedule(WEEKLY, overrides=[override])


# resolve_targets


USERS = {
    "alice": User(receivers=["slack-alice", "pd-alice"]),
    "bob": User(receivers=["slack-bob"]),
    "carol": User(receivers=["slack-carol"]),
}


def test_receiver_target_is_itself() -> None:
    receivers, problems = resolve_targets(
        ["slack-oncall"], paris(2024, 3, 5, 9), {}, {}
    )

    assert receivers == ["slack-oncall"]
    assert problems == []


def test_user_target_reaches_user_receivers() -> None:
    receivers, problems = resolve_targets(
        ["user:alice"], paris(2024, 3, 5, 9), USERS, {}
    )

    assert receivers == ["slack-alice", "pd-alice"]
    assert problems == []


def test_schedule_target_reaches_on_call_user() -> None:
    schedules = {"primary": schedule(WEEKLY)}
    receivers, _ = resolve_targets(
        ["schedule:primary"], paris(2024, 3, 12, 9), USERS, schedules
    )

    assert receivers == ["slack-bob"]


def test_duplicate_receivers_listed_once() -> None:
    schedules = {"primary": schedule(WEEKLY)}
    receivers, _ = resolve_targets(
        ["schedule:primary", "user:alice", "slack-alice"],
        paris(2024, 3, 5, 9),
        USERS,
        schedules,
    )

    assert receivers == ["slack-alice", "pd-alice"]


def test_schedule_with_nobody_on_call_is_a_problem() -> None:
    schedules = {"primary": schedule(WEEKLY)}
    receivers, problems = resolve_targets(
        ["schedule:primary"], paris(2024, 1, 1, 9), USERS, schedules
    )

    assert receivers == []
    assert len(problems) == 1
    assert "nobody is on call on schedule 'primary'" in problems[0]


def test_unknown_user_is_a_problem() -> None:
    receivers, problems = resolve_targets(["user:zed"], paris(2024, 3, 5, 9), USERS, {})

    assert receivers == []
    assert problems == ["user 'zed' is not configured"]


# when the person on call changes

WEEKNIGHTS = {
    "name": "nights",
    "rotation": "daily",
    "handoff": "20:00",
    "start": "2024-03-04",
    "users": ["dan"],
    "restriction": {
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "start": "20:00",
        "end": "08:00",
    },
}


def test_shift_ends_when_night_layer_starts() -> None:
    # Friday 19:59: alice's week runs to Monday, but dan takes nights at 20:00.
    shift = on_call(schedule(WEEKLY, WEEKNIGHTS), paris(2024, 3, 8, 19, 59))

    assert shift is not None
    assert shift.user == "alice"
    assert shift.end == paris(2024, 3, 8, 20)


def test_restricted_shift_ends_with_its_hours() -> None:
    shift = on_call(schedule(WEEKLY, WEEKNIGHTS), paris(2024, 3, 8, 21))

    assert shift is not None
    assert shift.user == "dan"
    assert shift.end == paris(2024, 3, 9, 8)
    after = on_call(schedule(WEEKLY, WEEKNIGHTS), paris(2024, 3, 9, 8))
    assert after is not None and after.user == "alice"


def test_shift_ends_at_override_start() -> None:
    override = {
        "user": "erin",
        "start": "2024-03-06T12:00:00+01:00",
        "end": "2024-03-06T18:00:00+01:00",
    }
    shift = on_call(schedule(WEEKLY, overrides=[override]), paris(2024, 3, 5, 10))

    assert shift is not None
    assert shift.user == "alice"
    assert shift.end == paris(2024, 3, 6, 12)


def test_same_user_next_layer_keeps_shift() -> None:
    alice_nights = {**WEEKNIGHTS, "users": ["alice"]}
    shift = on_call(schedule(WEEKLY, alice_nights), paris(2024, 3, 8, 19))

    assert shift is not None
    assert shift.user == "alice"
    # Alice stays on call through the night layer, so the shift runs on.
    assert shift.end > paris(2024, 3, 8, 20)

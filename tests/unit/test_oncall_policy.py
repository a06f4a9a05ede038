"""Escalation steps: repeats, urgency, business hours, ack timeouts, references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import GROUP_KEY, at, make_alert, make_command, make_event

from schemas.config import Config, ConfigError, parse_config
from schemas.oncall import BusinessHours, EscalationPolicy
from schemas.records import CommandKind, EventKind, IncidentState
from streams.analytics.metrics import sample_for
from streams.correlate.lifecycle import (
    Group,
    Incident,
    PolicySnapshot,
    apply_alert,
    apply_command,
    catch_up,
)
from streams.escalate.policy import (
    Directory,
    ack_timed_out,
    plan_for,
    receivers_for,
    step_delays_s,
    step_levels,
)

TWO_LEVELS = {
    "levels": [
        {"delay": "0s", "targets": ["first"]},
        {"delay": "5m", "targets": ["second"]},
    ]
}
# Monday 6 May 2024, 07:00 in Paris.
MONDAY_7AM = datetime(2024, 5, 6, 5, 0, tzinfo=UTC)
BUSINESS = {
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "09:00",
    "end": "17:00",
    "timezone": "Europe/Paris",
}


def policy(**fields: Any) -> EscalationPolicy:
    return EscalationPolicy.model_validate({**TWO_LEVELS, **fields})


# step_levels and step_delays_s


def test_steps_follow_levels_without_repeat() -> None:
    assert step_delays_s(policy(), MONDAY_7AM, 0) == [0.0, 300.0]


def test_group_wait_delays_every_step() -> None:
    assert step_delays_s(policy(), MONDAY_7AM, 30) == [30.0, 330.0]


def test_repeat_runs_levels_again_after_last() -> None:
    repeated = policy(repeat=2, repeat_after="10m")

    assert [s.target_keys for s in step_levels(repeated)] == [
        ["first"],
        ["second"],
    ] * 3
    assert step_delays_s(repeated, MONDAY_7AM, 0) == [0, 300, 900, 1200, 1800, 2100]


def test_low_urgency_notifies_first_level_only() -> None:
    low = policy(urgency="low", repeat=3)

    assert len(step_levels(low)) == 1
    assert step_delays_s(low, MONDAY_7AM, 0) == [0.0]


def test_step_outside_business_hours_waits_for_start() -> None:
    hours = policy(business_hours=BUSINESS)
    delays = step_delays_s(hours, MONDAY_7AM, 0)

    # Level 1 came due at 07:05, so it waits until 09:00 Paris time, 07:00 UTC.
    assert delays == [0.0, 7200.0]


def test_later_steps_count_from_deferred_step() -> None:
    hours = policy(business_hours=BUSINESS, repeat=1, repeat_after="10m")
    delays = step_delays_s(hours, MONDAY_7AM, 0)

    assert delays == [0.0, 7200.0, 7800.0, 8100.0]


def test_step_inside_business_hours_not_deferred() -> None:
    hours = policy(business_hours=BUSINESS)
    ten_am = MONDAY_7AM + timedelta(hours=3)

    assert step_delays_s(hours, ten_am, 0) == [0.0, 300.0]


def test_friday_evening_step_waits_for_monday() -> None:
    hours = policy(business_hours=BUSINESS)
    friday_evening = datetime(2024, 5, 10, 16, 0, tzinfo=UTC)  # 18:00 in Paris
    delays = step_delays_s(hours, friday_evening, 0)

    monday_nine = datetime(2024, 5, 13, 7, 0, tzinfo=UTC)
    assert delays[1] == (monday_nine - friday_evening).total_seconds()


def test_business_hours_contain_start_not_end() -> None:
    hours = BusinessHours.model_validate(BUSINESS)
    nine = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)
    five = datetime(2024, 5, 6, 15, 0, tzinfo=UTC)

    assert hours.contains(nine)
    assert not hours.contains(nine - timedelta(seconds=1))
    assert not hours.contains(five)
    assert hours.next_start(nine) == nine


def test_business_hours_skip_weekend() -> None:
    hours = BusinessHours.model_validate(BUSINESS)
    saturday = datetime(2024, 5, 11, 10, 0, tzinfo=UTC)

    assert hours.next_start(saturday) == datetime(2024, 5, 13, 7, 0, tzinfo=UTC)


def test_overnight_window_belongs_to_start_day() -> None:
    hours = BusinessHours.model_validate(
        {"days": ["fri"], "start": "22:00", "end": "06:00", "timezone": "UTC"}
    )

    assert hours.contains(datetime(2024, 5, 11, 5, 59, tzinfo=UTC))
    assert not hours.contains(datetime(2024, 5, 11, 22, 0, tzinfo=UTC))
    assert not hours.contains(datetime(2024, 5, 10, 5, 0, tzinfo=UTC))


def test_repeat_above_nine_rejected() -> None:
    with pytest.raises(ValueError, match="less than or equal to 9"):
        policy(repeat=10)


def test_decreasing_delays_rejected() -> None:
    levels = [{"delay": "10m", "targets": ["a"]}, {"delay": "5m", "targets": ["b"]}]
    with pytest.raises(ValueError, match="level delays must not decrease"):
        EscalationPolicy.model_validate({"levels": levels})


def test_target_naming_two_kinds_rejected() -> None:
    levels = [{"targets": [{"user": "alice", "schedule": "primary"}]}]
    with pytest.raises(ValueError, match="exactly one of receiver, user or schedule"):
        EscalationPolicy.model_validate({"levels": levels})


# correlate: the snapshot and the ack timeout


def open_with(snapshot_policy: EscalationPolicy) -> tuple[Group, Incident]:
    group = Group(group_key=GROUP_KEY)
    alert = make_alert()
    delays = step_delays_s(snapshot_policy, alert.at, 0)
    snapshot = PolicySnapshot(snapshot_policy.model_dump(mode="json"))
    incident, events = apply_alert(
        group, None, alert, "default", delays, snapshot=snapshot
    )
    assert incident is not None
    assert events[0].details["policy_snapshot"] == snapshot.policy
    return group, incident


def test_opened_incident_keeps_policy_snapshot() -> None:
    _, incident = open_with(policy(ack_timeout="30m"))

    assert incident.policy_snapshot is not None
    assert incident.policy_snapshot["ack_timeout"] == 1800.0


def acknowledged(seconds: float = 60) -> tuple[Group, Incident, int]:
    group, incident = open_with(policy(ack_timeout="30m"))
    [ack] = apply_command(
        group, incident, make_command(CommandKind.ACKNOWLEDGE, seconds)
    )
    return group, incident, ack.seq


def timeout_command(seq: int, seconds: float = 1860) -> Any:
    return make_command(
        CommandKind.ACK_TIMEOUT,
        seconds,
        command_id=f"g1-1:ack_timeout:{seq}",
        actor="escalation policy",
        source="escalate",
        details={"acknowledged_seq": seq},
    )


def test_ack_timeout_returns_incident_to_triggered() -> None:
    group, incident, seq = acknowledged()
    events = apply_command(group, incident, timeout_command(seq))

    assert [e.kind for e in events] == [EventKind.ACK_TIMED_OUT]
    assert incident.state is IncidentState.OPEN
    assert incident.level == 0
    assert incident.escalation_base == at(1860)


def test_ack_timeout_restarts_escalation_from_timeout() -> None:
    group, incident, seq = acknowledged()
    apply_command(group, incident, timeout_command(seq))
    early = catch_up(incident, at(1860 + 299))
    due = catch_up(incident, at(1860 + 300))

    assert early == []
    assert [e.level for e in due] == [1]
    assert due[0].at == at(2160)


def test_repeat_step_names_policy_level_and_run() -> None:
    _, incident = open_with(policy(repeat=1, repeat_after="10m"))
    events = catch_up(incident, at(1200))

    assert [e.level for e in events] == [1, 2, 3]
    assert [e.details["policy_level"] for e in events] == [1, 0, 1]
    assert [e.details["run"] for e in events] == [0, 1, 1]


def test_ack_timeout_of_earlier_ack_changes_nothing() -> None:
    group, incident, seq = acknowledged()
    apply_command(group, incident, timeout_command(seq))
    apply_command(group, incident, make_command(CommandKind.ACKNOWLEDGE, 2000))
    events = apply_command(
        group,
        incident,
        timeout_command(seq, 4000).model_copy(update={"command_id": "x"}),
    )

    assert events == []
    assert incident.state is IncidentState.ACKNOWLEDGED


def test_ack_timeout_after_resolve_changes_nothing() -> None:
    group, incident, seq = acknowledged()
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 100))
    events = apply_command(group, incident, timeout_command(seq))

    assert events == []
    assert incident.state is IncidentState.RESOLVED


def test_repeated_ack_timeout_command_dropped() -> None:
    group, incident, seq = acknowledged()
    apply_command(group, incident, timeout_command(seq))
    again = apply_command(group, incident, timeout_command(seq))

    assert again == []


def test_second_ack_keeps_first_ack_time() -> None:
    group, incident, seq = acknowledged(60)
    apply_command(group, incident, timeout_command(seq))
    [second] = apply_command(
        group, incident, make_command(CommandKind.ACKNOWLEDGE, 2000)
    )

    assert second.details == {"again": True}
    assert incident.acknowledged_at == at(60)


def test_second_ack_adds_no_mtta_sample() -> None:
    first = make_event(kind=EventKind.ACKNOWLEDGED, seq=2, at=at(60))
    again = make_event(
        kind=EventKind.ACKNOWLEDGED, seq=4, at=at(2000), details={"again": True}
    )

    assert sample_for(first) is not None
    assert sample_for(again) is None


# escalate: who a step reaches, and the ack deadline


def test_ack_sets_deadline_in_plan() -> None:
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, step_levels(policy()))
    plan.ack_timeout_s = 1800
    receivers_for(plan, opened)
    ack = make_event(kind=EventKind.ACKNOWLEDGED, seq=2, at=at(60))
    receivers_for(plan, ack)

    assert plan.ack_due == at(1860).timestamp()
    assert plan.ack_seq == 2
    assert not ack_timed_out(plan, at(1859).timestamp())
    assert ack_timed_out(plan, at(1860).timestamp())


def test_resolve_clears_ack_deadline() -> None:
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, step_levels(policy()))
    plan.ack_timeout_s = 1800
    receivers_for(plan, make_event(kind=EventKind.ACKNOWLEDGED, seq=2, at=at(60)))
    receivers_for(plan, make_event(kind=EventKind.RESOLVED, seq=3, at=at(120)))

    assert not ack_timed_out(plan, at(4000).timestamp())


def test_schedule_target_pages_on_call_user() -> None:
    config = Config.model_validate(
        {
            "receivers": {"pd-bob": {"type": "pagerduty"}},
            "users": {"bob": {"receivers": ["pd-bob"]}},
            "schedules": {
                "primary": {
                    "layers": [
                        {"rotation": "daily", "start": "2024-04-01", "users": ["bob"]}
                    ]
                }
            },
        }
    )
    levels = EscalationPolicy.model_validate(
        {"levels": [{"targets": [{"schedule": "primary"}]}]}
    ).levels
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, levels)
    directory = Directory(config.users, config.schedules)

    assert receivers_for(plan, opened, directory=directory) == ["pd-bob"]
    assert plan.notified == ["pd-bob"]


def test_unresolved_targets_cleared_on_next_event() -> None:
    levels = EscalationPolicy.model_validate(
        {"levels": [{"targets": [{"user": "ghost"}]}]}
    ).levels
    opened = make_event(kind=EventKind.OPENED)
    plan = plan_for(opened, levels)

    assert receivers_for(plan, opened) == []
    assert plan.unresolved == ["user 'ghost' is not configured"]
    receivers_for(plan, make_event(kind=EventKind.ACKNOWLEDGED, seq=2, at=at(60)))
    assert plan.unresolved == []


# configuration references


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, Path("config.yaml"))
    return raised.value.problems


def test_undefined_schedule_and_user_listed() -> None:
    problems = problems_of(
        {
            "receivers": {"pager": {"type": "console"}},
            "users": {"alice": {"receivers": ["ghost"]}},
            "schedules": {
                "primary": {"layers": [{"start": "2024-01-01", "users": ["zed"]}]}
            },
            "policies": {
                "default": {
                    "levels": [{"targets": [{"schedule": "nope"}, {"user": "bob"}]}]
                }
            },
        }
    )

    assert problems == [
        "users.alice.receivers: 'ghost' is not a receiver; defined: ['pager']",
        "schedules.primary.layers.0.users: 'zed' is not a user; defined: ['alice']",
        "policies.default.levels.0.targets: schedule 'nope' is not defined; "
        "defined: ['primary']",
        "policies.default.levels.0.targets: user 'bob' is not defined; "
        "defined: ['alice']",
    ]


def test_policy_with_schedule_target_accepted() -> None:
    config = parse_config(
        {
            "receivers": {"pager": {"type": "console"}},
            "users": {"alice": {"receivers": ["pager"]}},
            "schedules": {
                "primary": {"layers": [{"start": "2024-01-01", "users": ["alice"]}]}
            },
            "policies": {
                "default": {
                    "levels": [{"targets": [{"schedule": "primary"}, "pager"]}],
                    "repeat": 2,
                    "ack_timeout": "30m",
                    "business_hours": BUSINESS,
                }
            },
        },
        Path("config.yaml"),
    )

    levels = config.policies["default"].levels
    assert levels[0].target_keys == ["schedule:primary", "pager"]

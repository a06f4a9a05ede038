"""A reopened incident follows the policy it opened with, not the current one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factories import GROUP_KEY, at, make_alert, make_command, make_event

from schemas.config import Config
from schemas.records import CommandKind, EventKind, IncidentEvent
from streams.correlate.lifecycle import (
    Group,
    PolicySnapshot,
    Reopening,
    apply_alert,
    apply_command,
)
from streams.escalate.agent import _opened_plan, _restarted_plan
from streams.escalate.policy import Plan, receivers_for, step_delays_s

RECEIVERS = {
    "slack-oncall": {"type": "slack", "channel": "#oncall"},
    "pagerduty-primary": {"type": "pagerduty"},
    "secondary": {"type": "console"},
    "manager": {"type": "console"},
}
AT_OPENING = Config.model_validate(
    {
        "routes": [
            {
                "match": {"service": "api"},
                "policy": "default",
                "send_resolved": False,
                "repeat_interval": "1h",
            }
        ],
        "policies": {
            "default": {
                "repeat": 1,
                "repeat_after": "10m",
                "ack_timeout": "30m",
                "levels": [
                    {"delay": "0s", "targets": ["slack-oncall"]},
                    {"delay": "5m", "targets": ["pagerduty-primary"]},
                ],
            }
        },
        "receivers": RECEIVERS,
    }
)
# The file as edited after the opening: other targets, no repeats, no ack
# timeout, resolves notified and no repeat interval.
EDITED = Config.model_validate(
    {
        "routes": [{"match": {"service": "api"}, "policy": "default"}],
        "policies": {
            "default": {
                "levels": [{"delay": "0s", "targets": ["manager"]}],
            }
        },
        "receivers": RECEIVERS,
    }
)


@dataclass
class ConfiguredPipeline:
    """The part of a pipeline that escalate's planning reads."""

    config: Config


def open_event(config: Config) -> tuple[Group, Any, IncidentEvent]:
    """Open an incident the way correlate does with `config`."""
    alert = make_alert()
    found = config.route_for(alert.labels)
    assert found is not None
    route = found[1]
    policy = config.policies[route.policy]
    snapshot = PolicySnapshot(
        policy.model_dump(mode="json"),
        repeat_interval_s=route.repeat_interval.total_seconds(),
    )
    group = Group(group_key=GROUP_KEY)
    incident, events = apply_alert(
        group,
        None,
        alert,
        route.policy,
        step_delays_s(policy, alert.at, 0),
        Reopening(send_resolved=route.send_resolved),
        snapshot=snapshot,
    )
    assert incident is not None
    return group, incident, events[0]


def reopened_plan() -> tuple[Plan, Plan]:
    """Return the plans of an opening and of its reopening after an edit."""
    group, incident, opened = open_event(AT_OPENING)
    opened_plan = _opened_plan(ConfiguredPipeline(AT_OPENING), opened)  # type: ignore[arg-type]
    apply_command(group, incident, make_command(CommandKind.RESOLVE, 60))
    [reopened] = apply_command(group, incident, make_command(CommandKind.REOPEN, 600))
    assert reopened.kind is EventKind.REOPENED
    # The resolve dropped the stored plan, so nothing is passed as stored.
    plan = _restarted_plan(ConfiguredPipeline(EDITED), reopened, None)  # type: ignore[arg-type]
    return opened_plan, plan


def test_reopened_plan_keeps_original_levels() -> None:
    opened, reopened = reopened_plan()

    targets = [level.targets for level in reopened.levels]
    assert targets == [level.targets for level in opened.levels]
    assert targets == [
        ["slack-oncall"],
        ["pagerduty-primary"],
        ["slack-oncall"],
        ["pagerduty-primary"],
    ]


def test_reopened_plan_keeps_repeat_runs() -> None:
    _, reopened = reopened_plan()

    # Two levels in two runs, the second run 10 min after the last level.
    assert [level.delay_s for level in reopened.levels] == [0.0, 300.0, 900.0, 1200.0]
    assert reopened.opened_at == at(600).timestamp()


def test_reopened_plan_keeps_ack_timeout() -> None:
    _, reopened = reopened_plan()

    assert reopened.ack_timeout_s == 1800.0


def test_reopened_plan_keeps_send_resolved() -> None:
    _, reopened = reopened_plan()

    assert reopened.send_resolved is False


def test_reopened_plan_keeps_repeat_interval() -> None:
    _, reopened = reopened_plan()

    assert reopened.repeat_interval_s == 3600.0


def test_reopened_plan_pages_original_first_level() -> None:
    _, reopened = reopened_plan()
    event = make_event(kind=EventKind.REOPENED, seq=3, at=at(600))

    assert receivers_for(reopened, event) == ["slack-oncall"]


def test_reopen_without_terms_uses_current_route() -> None:
    # A reopening of an incident stored before it carried its terms.
    event = make_event(
        kind=EventKind.REOPENED,
        seq=3,
        at=at(600),
        details={"policy": "default"},
    )

    plan = _restarted_plan(ConfiguredPipeline(AT_OPENING), event, None)  # type: ignore[arg-type]

    assert plan.send_resolved is False
    assert plan.repeat_interval_s == 3600.0
    assert len(plan.levels) == 4

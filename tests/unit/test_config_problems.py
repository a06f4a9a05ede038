"""Problem lines of an invalid configuration: field path, bad value, what is allowed."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schemas.config import ConfigError, parse_config
from schemas.validation_errors import describe_value

PATH = Path("tocsin.yaml")


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(data, PATH)
    return excinfo.value.problems


def runbook(action: dict[str, Any], **step: Any) -> dict[str, Any]:
    return {
        "receivers": {"pager": {"type": "console"}},
        "runbooks": [
            {
                "name": "restart",
                "owner": "web",
                "trigger": {"labels": {"team": "web"}},
                "steps": [{"name": "call", "action": action, **step}],
            }
        ],
    }


HTTP = {"type": "http", "url": "http://127.0.0.1:9/restart"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"rules": {"metrics": [{"name": "cpu", "threshold": 90, "op": "up"}]}},
            "rules.metrics.0.op: invalid value 'up'; allowed: 'above' or 'below'",
        ),
        (
            {"rules": {"metrics": [{"name": "cpu", "threshold": 90, "for": [1]}]}},
            "rules.metrics.0.for: invalid duration [1]: use a number with a unit",
        ),
        (
            {"receivers": {"ops": {"type": "slack", "channel": 5}}},
            "receivers.ops.channel: invalid value 5; expected text, so write it "
            "in quotes: '5'",
        ),
        (
            {"receivers": {"ops": "slack"}},
            "receivers.ops: invalid value 'slack'; expected a mapping of fields",
        ),
        (
            {"receivers": {"ops": {"channel": "#ops"}}},
            "receivers.ops: missing field type; allowed: 'slack', 'pagerduty', "
            "'console', 'webhook', 'email'",
        ),
        (
            {"policies": {"default": {"levels": [{"targets": "pager"}]}}},
            "policies.default.levels.0.targets: invalid value 'pager'; expected a "
            "list, so write one item as [pager]",
        ),
        (
            {"policies": {"default": {"levels": {"targets": ["pager"]}}}},
            "policies.default.levels: invalid value {'targets': ['pager']}; "
            "expected a list, such as [a, b]",
        ),
        (
            {"schedules": {"primary": {"layers": [{"users": [], "handoff": "9am"}]}}},
            "schedules.primary.layers.0.handoff: invalid value '9am'; expected a "
            "time of day, such as 02:00 or 14:30:00",
        ),
        (
            {"schedules": {"primary": {"layers": [{"start": {"at": 1}}]}}},
            "schedules.primary.layers.0.start: invalid value {'at': 1}; expected a "
            "date, such as 2024-05-01",
        ),
        (
            runbook({**HTTP, "method": "FETCH"}),
            "runbooks.0.steps.0.action.method: invalid value 'FETCH'; allowed: "
            "'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'",
        ),
        (
            runbook(HTTP, retries=20),
            "runbooks.0.steps.0.retries: invalid value 20; expected 10 or less",
        ),
        (
            runbook({"type": "teleport"}),
            "runbooks.0.steps.0.action: invalid type 'teleport'; allowed: 'http', "
            "'shell', 'publish', 'notify', 'wait', 'approval'",
        ),
        (
            {"rules": {"metrics": [{"name": "cpu", "type": "magic"}]}},
            "rules.metrics.0: invalid type 'magic'; allowed: 'threshold', 'change', "
            "'absence', 'anomaly', 'burn_rate'",
        ),
        (
            {"lifecycle": "often"},
            "lifecycle: invalid value 'often'; expected a mapping of fields",
        ),
        (["rules"], "(top level): invalid value ['rules']; expected a mapping"),
    ],
)
def test_problem_names_path_value_and_allowed(data: object, expected: str) -> None:
    problems = problems_of(data)

    assert any(problem.startswith(expected) for problem in problems), problems


def test_union_tag_left_out_of_path() -> None:
    problems = problems_of(runbook({**HTTP, "expected_status": "ok"}))

    assert problems == [
        "runbooks.0.steps.0.action.expected_status: invalid value 'ok'; "
        "expected a whole number"
    ]


def test_alias_field_found_in_path() -> None:
    rule = {"name": "cpu", "threshold": 90, "for": "10 minutes"}

    problems = problems_of({"rules": {"metrics": [rule]}})

    assert problems[0].startswith("rules.metrics.0.for: invalid duration '10 minutes'")


def test_unknown_field_lists_allowed_fields() -> None:
    level = {"dealy": "5m", "targets": ["pager"]}
    data = {"receivers": {"pager": {"type": "console"}}}

    problems = problems_of({**data, "policies": {"default": {"levels": [level]}}})

    assert len(problems) == 1
    assert problems[0] == (
        "policies.default.levels.0.dealy: unknown field; allowed: delay, targets"
    )


def test_unknown_field_lists_alias() -> None:
    rule = {"name": "cpu", "threshold": 90, "fro": "5m"}

    [problem] = problems_of({"rules": {"metrics": [rule]}})

    allowed = problem.split("allowed: ")[1].split(". ")[0].split(", ")
    assert "for" in allowed
    assert "for_" not in allowed


def test_missing_field_shows_no_value() -> None:
    receiver = {"type": "email", "to": ["a@example.com"], "password": "hunter2"}

    problems = problems_of({"receivers": {"mail": receiver}})

    assert "receivers.mail.host: missing required field" in problems
    assert all("hunter2" not in problem for problem in problems)


@pytest.mark.parametrize(
    "data",
    [
        {"rules": {"metrics": [{"name": "cpu", "threshold": "high"}]}},
        {"receivers": {"ops": {"type": "slack"}}},
        {"receivers": {"ops": ["slack"]}},
        {"schedules": {"primary": {"layers": "weekly"}}},
        {"targets": {"recurrence_rate": 5}},
        {"routes": [{"policy": "default", "match": [1]}]},
    ],
)
def test_problem_has_no_pydantic_wording(data: object) -> None:
    for problem in problems_of(data):
        assert "Input should" not in problem
        assert "Field required" not in problem
        assert "instance of" not in problem
        assert "discriminator" not in problem


def test_long_string_cut_with_length() -> None:
    text = describe_value("x" * 300)

    assert text == repr("x" * 40) + "... (300 characters)"


def test_long_list_cut_between_items() -> None:
    text = describe_value([f"item-{number}" for number in range(40)])

    assert text.startswith("['item-0', 'item-1', ")
    assert text.endswith(" more]")
    assert len(text) < 90


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (None, "null"),
        (date(2024, 5, 1), "2024-05-01"),
        ({"a": [1, False]}, "{'a': [1, false]}"),
        (2.5, "2.5"),
    ],
)
def test_value_shown_as_yaml_writes_it(value: object, text: str) -> None:
    assert describe_value(value) == text


def test_unknown_secret_field_names_env_settings() -> None:
    data = {"receivers": {"slack": {"type": "slack", "channel": "#x", "token": "t"}}}

    [problem] = problems_of(data)

    assert problem.startswith("receivers.slack.token: unknown field; allowed:")
    assert "put secrets in environment variables named by token_env" in problem
    assert "'t'" not in problem


def test_unknown_plain_field_has_no_secret_hint() -> None:
    [problem] = problems_of({"silences_bogus": 1})

    assert problem.startswith("silences_bogus: unknown field; allowed: rules,")
    assert "secrets" not in problem

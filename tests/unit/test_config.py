"""The configuration file model: durations, field errors and references."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.config import Config, ConfigError, load_config, parse_config
from schemas.durations import parse_duration
from tocsin.settings import DEFAULT_CONFIG

PATH = Path("tocsin.yaml")
UNITS = "units ms, s, m, h, d, w"

RECEIVERS = {
    "slack-oncall": {"type": "slack", "channel": "#oncall"},
    "secondary": {"type": "console"},
}
POLICIES = {"default": {"levels": [{"delay": "0s", "targets": ["slack-oncall"]}]}}


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(data, PATH)
    return excinfo.value.problems


def metric_rule(**overrides: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": "cpu_high", "threshold": 90}
    rule.update(overrides)
    return rule


# parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172_800),
        ("1w", 604_800),
        ("250ms", 0.25),
        ("1.5h", 5400),
        (" 5m ", 300),
        ("0s", 0),
        (30, 30),
        (2.5, 2.5),
        ("3600", 3600),
        (" 1.5 ", 1.5),
        (timedelta(minutes=1), 60),
    ],
)
def test_duration_parsed(value: object, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value", ["", "m", "5x", "5 m", "1h 30m", "PT5M", "5m!", "5.", "1e3"]
)
def test_invalid_duration_names_value_and_units(value: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)

    assert repr(value) in str(excinfo.value)
    assert UNITS in str(excinfo.value)


@pytest.mark.parametrize("value", [-5, -0.5, "-5m", "-30"])
def test_negative_duration_rejected(value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)

    assert f"invalid duration {value!r}: must not be negative" in str(excinfo.value)


def test_boolean_duration_rejected() -> None:
    assert problems_of({"rules": {"metrics": [metric_rule(**{"for": True})]}})


@pytest.mark.parametrize("value", [math.inf, 10**15, "99999999999d"])
def test_out_of_range_duration_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_out_of_range_duration_listed_as_problem() -> None:
    problems = problems_of({"rules": {"metrics": [metric_rule(**{"for": math.inf})]}})

    assert problems[0].startswith("rules.metrics.0.for:")


# parse_config: field errors


def test_empty_file_gives_defaults() -> None:
    assert parse_config(None, PATH) == Config()


def test_field_error_names_path_and_value() -> None:
    problems = problems_of({"rules": {"metrics": [metric_rule(threshold="high")]}})

    assert len(problems) == 1
    assert problems[0].startswith("rules.metrics.0.threshold:")
    assert problems[0].endswith("invalid value 'high'; expected a number")


def test_every_field_error_listed() -> None:
    data = {
        "rules": {
            "metrics": [metric_rule(threshold="high"), metric_rule(name="x", op="up")]
        },
        "targets": {"mtta": "soon"},
    }

    problems = problems_of(data)

    paths = [problem.split(":")[0] for problem in problems]
    assert paths == ["rules.metrics.0.threshold", "rules.metrics.1.op", "targets.mtta"]


def test_invalid_duration_names_config_path() -> None:
    problems = problems_of({"rules": {"metrics": [metric_rule(**{"for": "5 min"})]}})

    assert problems[0].startswith("rules.metrics.0.for: invalid duration '5 min'")


def test_unknown_field_rejected() -> None:
    problems = problems_of({"rules": {"metrics": [metric_rule(thresold=90)]}})

    assert any(p.startswith("rules.metrics.0.thresold:") for p in problems)


def test_unknown_receiver_type_rejected() -> None:
    problems = problems_of({"receivers": {"pager": {"type": "carrier-pigeon"}}})

    assert problems[0].startswith("receivers.pager:")


def test_invalid_regex_rejected() -> None:
    data = {"rules": {"logs": [{"name": "bad", "regex": "job (failed"}]}}

    problems = problems_of(data)

    assert problems[0].startswith(
        "rules.logs.0.regex: invalid regular expression 'job (failed'"
    )


def test_duplicate_rule_names_rejected() -> None:
    data = {"rules": {"metrics": [metric_rule(), metric_rule(threshold=95)]}}

    problems = problems_of(data)

    assert problems == ["rules: rule names must be unique, repeated: ['cpu_high']"]


def test_rule_names_unique_across_metrics_and_logs() -> None:
    data = {
        "rules": {
            "metrics": [metric_rule()],
            "logs": [{"name": "cpu_high", "regex": "panic"}],
        }
    }

    assert "repeated: ['cpu_high']" in problems_of(data)[0]


# parse_config: references


def test_route_to_unknown_policy_rejected() -> None:
    data = {
        "routes": [{"match": {"team": "ml"}, "policy": "ml-oncall"}],
        "policies": POLICIES,
        "receivers": RECEIVERS,
    }

    problems = problems_of(data)

    assert any("'ml-oncall' is not a policy" in p for p in problems)


def test_unknown_default_policy_rejected() -> None:
    data = {"default_policy": "nightly", "policies": POLICIES, "receivers": RECEIVERS}

    problems = problems_of(data)

    assert any("'nightly' is not a policy" in p for p in problems)


def test_policy_target_must_be_receiver() -> None:
    policies = {"default": {"levels": [{"targets": ["slack-oncall", "ghost"]}]}}

    problems = problems_of({"policies": policies, "receivers": RECEIVERS})

    assert any("'ghost' is not a receiver" in p for p in problems)


def test_reference_error_lists_defined_names() -> None:
    data = {"routes": [{"policy": "missing"}], "policies": POLICIES}

    problems = problems_of(data)

    assert any("defined: ['default']" in p for p in problems)


def test_each_reference_error_listed_with_its_path() -> None:
    data = {
        "routes": [{"policy": "missing"}],
        "policies": {"default": {"levels": [{"targets": ["ghost"]}]}},
    }

    paths = [problem.split(":")[0] for problem in problems_of(data)]

    assert paths == ["routes.0.policy", "policies.default.levels.0.targets"]


def test_reference_errors_listed_with_field_errors() -> None:
    data = {
        "rules": {"metrics": [metric_rule(threshold="high")]},
        "routes": [{"policy": "missing"}],
        "policies": POLICIES,
        "receivers": RECEIVERS,
    }

    assert any("'missing'" in problem for problem in problems_of(data))


def test_route_picks_first_matching_policy() -> None:
    config = parse_config(
        {
            "routes": [
                {"match": {"team": "ml"}, "policy": "ml"},
                {"match": {}, "policy": "default"},
            ],
            "policies": {"default": POLICIES["default"], "ml": POLICIES["default"]},
            "receivers": RECEIVERS,
        },
        PATH,
    )

    assert config.policy_for({"team": "ml", "service": "api"}) == "ml"
    assert config.policy_for({"team": "web"}) == "default"


def test_unrouted_labels_get_default_policy() -> None:
    assert Config().policy_for({"team": "ml"}) == "default"


# load_config


def test_missing_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    assert excinfo.value.problems[0].startswith("cannot read the file")
    assert str(path) in str(excinfo.value)


def test_invalid_yaml_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("rules: [unclosed\n", encoding="utf-8")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    assert excinfo.value.problems[0].startswith("invalid YAML")


def test_load_config_lists_problems_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "tocsin.yaml"
    path.write_text(
        "rules:\n"
        "  metrics:\n"
        "    - name: cpu_high\n"
        "      threshold: high\n"
        "      for: 10 minutes\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    paths = [problem.split(":")[0] for problem in excinfo.value.problems]
    assert paths == ["rules.metrics.0.threshold", "rules.metrics.0.for"]


def test_config_error_message_lists_each_problem(tmp_path: Path) -> None:
    error = ConfigError(tmp_path / "tocsin.yaml", ["first: bad", "second: bad"])

    assert str(error).splitlines() == [
        f"invalid configuration file {tmp_path / 'tocsin.yaml'}:",
        "  - first: bad",
        "  - second: bad",
    ]


def test_shipped_default_config_validates() -> None:
    config = load_config(DEFAULT_CONFIG)

    assert config.policies
    assert config.rules.metrics


# limits and duplicates


def test_duration_over_ten_years_rejected() -> None:
    with pytest.raises(ValueError, match="longer than the maximum, 3650d"):
        parse_duration("99999999d")


def test_huge_resolve_timeout_reported() -> None:
    problems = problems_of({"lifecycle": {"resolve_timeout": "99999999d"}})

    assert any("lifecycle.resolve_timeout" in p and "3650d" in p for p in problems)


def test_duplicate_window_names_reported() -> None:
    window = {
        "name": "a",
        "matchers": ["x=y"],
        "every": {"start": "02:00", "duration": "1h"},
    }
    problems = problems_of({"maintenance_windows": [window, window]})

    assert problems == [
        "maintenance_windows.1.name: 'a' is already the name of "
        "maintenance_windows.0; names must be unique"
    ]


def test_weekly_window_longer_than_week_rejected() -> None:
    window = {
        "name": "a",
        "matchers": ["x=y"],
        "every": {"start": "02:00", "duration": "8d"},
    }
    problems = problems_of({"maintenance_windows": [window]})

    assert any("at most 7d" in p for p in problems)


def test_relative_shell_program_rejected() -> None:
    for program in ("tar", "", "/usr/bin/../bin/rm"):
        problems = problems_of({"shell_allowlist": [program]})
        assert any("normalised absolute path" in p for p in problems), program


def test_invalid_yaml_date_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("schedules:\n  primary:\n    layers:\n      - start: 2024-13-02\n")

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    assert excinfo.value.problems[0].startswith("invalid YAML value:")


def test_runbook_problems_listed_apart() -> None:
    data = {
        "receivers": {"pager": {"type": "console"}},
        "shell_allowlist": ["/usr/bin/systemctl"],
        "runbooks": [
            {
                "name": "r1",
                "owner": "sre",
                "trigger": {"labels": {"a": "b"}},
                "steps": [
                    {
                        "name": "s",
                        "action": {"type": "shell", "argv": ["/bin/rm", "x"]},
                    },
                    {
                        "name": "t",
                        "action": {
                            "type": "notify",
                            "receivers": ["nope"],
                            "message": "hi",
                        },
                    },
                ],
            }
        ],
    }

    problems = problems_of(data)

    assert len(problems) == 2
    assert problems[0].startswith("runbooks.0 step 's': executable '/bin/rm'")
    assert problems[1].startswith("runbooks.0 step 't': 'nope' is not a receiver")


@pytest.mark.parametrize("value", [10**400, "9" * 500])
def test_huge_duration_rejected_with_short_message(value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)

    message = str(excinfo.value)
    assert "longer than the maximum, 3650d" in message
    assert len(message) < 120


def test_non_ascii_digits_rejected() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("\u0661h")

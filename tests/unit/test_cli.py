"""`tocsin` command output: listings, broker help and configuration checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from schemas.silences import MaintenanceWindow
from tocsin import client
from tocsin.cli import main


def window_rows() -> list[dict[str, Any]]:
    weekly = MaintenanceWindow.model_validate(
        {
            "name": "nightly",
            "matchers": ["team=ml"],
            "every": {"days": ["mon"], "start": "02:00", "duration": "1h30m"},
        }
    )
    one_off = MaintenanceWindow.model_validate(
        {
            "name": "db-upgrade",
            "matchers": ["service=db"],
            "starts_at": datetime(2024, 7, 1, tzinfo=UTC),
            "ends_at": datetime(2024, 7, 3, tzinfo=UTC),
        }
    )
    return [
        {**weekly.model_dump(mode="json"), "source": "config", "active": False},
        {**one_off.model_dump(mode="json"), "source": "http", "active": True},
    ]


def test_maintenance_list_formats_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    def request(url: str, path: str, body: object = None) -> dict[str, Any]:
        assert path == "/maintenance-windows"
        return {"maintenance_windows": window_rows()}

    monkeypatch.setattr(client, "request", request)

    result = CliRunner().invoke(main, ["maintenance", "list"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "nightly  inactive mon 02:00:00 for 1h30m UTC  team=ml  (config)"
    )
    assert lines[1].startswith("db-upgrade  active   2024-07-01T00:00:00Z to ")
    assert "5400" not in result.output


def test_broker_help_names_tocsin_broker() -> None:
    result = CliRunner().invoke(main, ["broker", "--help"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("usage: tocsin broker ")
    assert "python -m" not in result.output


def test_broker_usage_error_names_tocsin_broker() -> None:
    result = CliRunner().invoke(main, ["broker", "restart"])

    assert result.exit_code == 2
    assert "tocsin broker: error: argument command: invalid choice" in result.output


def check(tmp_path: Path, data: object) -> Any:
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(data))
    return CliRunner().invoke(main, ["config", "check", str(path)])


BROKEN = {
    "rules": {
        "metrics": [
            {"name": "cpu", "threshold": 90, "for": "10 minutes", "thresold": 5}
        ]
    },
    "receivers": {
        "pager": {"type": "console"},
        "ops": {"type": "slack", "channel": 5},
        "mail": {"type": "email", "to": "oncall@example.com"},
    },
    "policies": {"default": {"levels": [{"delay": "soon", "targets": "pager"}]}},
    "schedules": {"primary": {"layers": [{"users": [], "handoff": "25:00"}]}},
    "runbooks": [
        {
            "name": "restart",
            "owner": "web",
            "trigger": {"labels": {"team": "web"}},
            "steps": [
                {
                    "name": "call",
                    "action": {"type": "http", "url": "ftp://x", "method": "FETCH"},
                }
            ],
        }
    ],
}


def test_config_check_lists_each_problem(tmp_path: Path) -> None:
    result = check(tmp_path, BROKEN)

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"Error: invalid configuration file {tmp_path / 'tocsin.yaml'}:"
    problems = [line.removeprefix("  - ") for line in lines[1:]]
    expected = [
        "rules.metrics.0.for: invalid duration '10 minutes': use a number",
        "rules.metrics.0.thresold: unknown field; allowed: name, match,",
        "receivers.ops.channel: invalid value 5; expected text",
        "receivers.mail.host: missing required field",
        "receivers.mail.to: invalid value 'oncall@example.com'; expected a list",
        "policies.default.levels.0.delay: invalid duration 'soon'",
        "policies.default.levels.0.targets: invalid value 'pager'; expected a list",
        "schedules.primary.layers.0.handoff: invalid value '25:00'; expected a time",
        "runbooks.0.steps.0.action.method: invalid value 'FETCH'; allowed: 'GET',",
        "runbooks.0.steps.0.action.url: invalid value 'ftp://x'; expected text",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), start


def test_config_check_has_no_pydantic_noise(tmp_path: Path) -> None:
    result = check(tmp_path, BROKEN)

    assert "Input should" not in result.output
    assert "Field required" not in result.output
    assert "input_value" not in result.output
    assert ".http." not in result.output
    assert "{'type':" not in result.output


def test_config_check_valid_file_counts(tmp_path: Path) -> None:
    result = check(tmp_path, {"receivers": {"pager": {"type": "console"}}})

    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "valid: 0 rules, 0 policies, 1 receiver, 0 schedules, 0 runbooks\n"
    )


def test_silence_add_scheduled_start(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    def request(url: str, path: str, body: Any = None) -> dict[str, Any]:
        assert path == "/silences"
        sent.append(body)
        silence = {
            "silence_id": "s-1",
            "starts_at": "2030-07-01T00:00:00Z",
            "ends_at": "2030-07-01T02:00:00Z",
        }
        return {"silence": silence}

    monkeypatch.setattr(client, "request", request)
    args = ["silence", "add", "service=db", "--start", "2030-07-01T02:00:00+02:00"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    assert sent[0]["starts_at"] == "2030-07-01T02:00:00+02:00"
    assert sent[0]["duration"] == "2h"
    assert result.output == (
        "s-1  from 2030-07-01T00:00:00Z until 2030-07-01T02:00:00Z\n"
    )


def test_silence_add_starts_now_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    def request(url: str, path: str, body: Any = None) -> dict[str, Any]:
        sent.append(body)
        return {"silence": {"silence_id": "s-1", "ends_at": "2030-07-01T02:00:00Z"}}

    monkeypatch.setattr(client, "request", request)

    result = CliRunner().invoke(main, ["silence", "add", "service=db"])

    assert result.exit_code == 0, result.output
    assert "starts_at" not in sent[0]
    assert result.output == "s-1  until 2030-07-01T02:00:00Z\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", "'tomorrow' is not an ISO 8601 date and time"),
        ("2030-07-01T02:00:00", "'2030-07-01T02:00:00' has no time zone"),
    ],
)
def test_silence_add_rejects_invalid_start(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    def request(url: str, path: str, body: Any = None) -> dict[str, Any]:
        raise AssertionError("an invalid start must not reach the web view")

    monkeypatch.setattr(client, "request", request)

    result = CliRunner().invoke(
        main, ["silence", "add", "service=db", "--start", value]
    )

    assert result.exit_code == 2
    assert "Invalid value for '--start'" in result.output
    assert message in result.output
    assert "e.g. 2024-07-01T02:00:00Z" in result.output


@pytest.mark.parametrize("url", ["notaurl", "127.0.0.1:6066"])
def test_web_url_without_scheme_rejected(url: str) -> None:
    result = CliRunner().invoke(main, ["incidents", "--url", url])

    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"invalid web view URL {url!r}: expected http://HOST:PORT" in result.output

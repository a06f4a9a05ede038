"""`tocsin runbook test`: preview a runbook for an incident without running it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tocsin.cli import main

INCIDENT = {
    "incident_id": "g1-1",
    "group_key": "g1",
    "state": "open",
    "service": "api",
    "severity": "critical",
    "title": "Host down",
    "rule": "host_down",
    "labels": {"team": "web", "host": "web-1; rm -rf /"},
    "opened_at": "2024-03-01T00:00:00Z",
    "started_at": "2024-03-01T00:00:00Z",
}


def write_files(tmp_path: Path, incident: dict[str, Any]) -> tuple[Path, Path]:
    canary = tmp_path / "canary"
    config = {
        "shell_allowlist": ["/usr/bin/touch"],
        "receivers": {"pager": {"type": "console"}},
        "runbooks": [
            {
                "name": "restart",
                "owner": "web",
                "trigger": {"labels": {"team": "web"}, "severity": ["critical"]},
                "secrets": {"token": "RESTART_TOKEN"},
                "steps": [
                    {
                        "name": "touch",
                        "action": {
                            "type": "shell",
                            "argv": ["/usr/bin/touch", str(canary), "{labels.host}"],
                        },
                    },
                    {
                        "name": "call",
                        "action": {
                            "type": "http",
                            "url": "http://127.0.0.1:9/hosts/{labels.host}",
                            "headers": {"Authorization": "Bearer {secrets.token}"},
                        },
                    },
                ],
            }
        ],
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    incident_path = tmp_path / "incident.json"
    incident_path.write_text(json.dumps(incident))
    return config_path, incident_path


def run_test(tmp_path: Path, incident: dict[str, Any], *extra: str) -> Any:
    config_path, incident_path = write_files(tmp_path, incident)
    arguments = ["runbook", "test", "restart", "--incident", str(incident_path)]
    arguments += ["--config", str(config_path), *extra]
    return CliRunner().invoke(main, arguments)


def test_match_shows_rendered_steps(tmp_path: Path) -> None:
    result = run_test(tmp_path, INCIDENT)

    assert result.exit_code == 0, result.output
    assert "runbook restart matches incident g1-1" in result.output
    assert '"web-1; rm -rf /"' in result.output
    assert "hosts/web-1%3B%20rm%20-rf%20%2F" in result.output
    assert "would run: yes" in result.output


def test_step_timeout_shown_with_unit(tmp_path: Path) -> None:
    result = run_test(tmp_path, INCIDENT)

    assert result.exit_code == 0, result.output
    assert "1. touch (shell, timeout 1m, retries 0)" in result.output
    assert "timeout 60s" not in result.output


def test_nothing_executed(tmp_path: Path) -> None:
    result = run_test(tmp_path, INCIDENT)

    assert result.exit_code == 0, result.output
    assert not (tmp_path / "canary").exists()


def test_secret_shown_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTART_TOKEN", "cli-secret-value")

    result = run_test(tmp_path, INCIDENT)
    as_json = run_test(tmp_path, INCIDENT, "--json")

    assert result.exit_code == 0, result.output
    assert "Bearer [redacted]" in result.output
    assert "cli-secret-value" not in result.output
    assert as_json.exit_code == 0, as_json.output
    assert "cli-secret-value" not in as_json.output


def test_mismatch_listed(tmp_path: Path) -> None:
    incident = {**INCIDENT, "severity": "low"}

    result = run_test(tmp_path, incident)

    assert result.exit_code == 1
    assert "does not match" in result.output
    assert "severity low is not in ['critical']" in result.output


def test_transition_option(tmp_path: Path) -> None:
    result = run_test(tmp_path, INCIDENT, "--transition", "escalated")

    assert result.exit_code == 1
    assert "transition escalated is not in transitions: ['opened']" in result.output


def test_json_output(tmp_path: Path) -> None:
    result = run_test(tmp_path, INCIDENT, "--json")
    preview = json.loads(result.output)

    assert preview["matches"] is True
    assert preview["steps"][0]["input"]["argv"][-1] == "web-1; rm -rf /"


def test_incident_event_record_accepted(tmp_path: Path) -> None:
    record = {
        **INCIDENT,
        "seq": 3,
        "kind": "opened",
        "at": "2024-03-01T00:00:00Z",
        "actor": "detect",
    }

    result = run_test(tmp_path, record)

    assert result.exit_code == 0, result.output


def test_invalid_incident_names_field(tmp_path: Path) -> None:
    incident = {k: v for k, v in INCIDENT.items() if k != "labels"}

    result = run_test(tmp_path, incident)

    assert result.exit_code == 1
    assert "invalid incident" in result.output
    assert "labels" in result.output


def test_unknown_runbook_lists_defined(tmp_path: Path) -> None:
    config_path, incident_path = write_files(tmp_path, INCIDENT)
    arguments = ["runbook", "test", "drain", "--incident", str(incident_path)]

    result = CliRunner().invoke(main, [*arguments, "--config", str(config_path)])

    assert result.exit_code == 1
    assert "runbook 'drain' not found" in result.output
    assert "['restart']" in result.output

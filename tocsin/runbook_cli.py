"""`tocsin runbook`: preview how a runbook would run, without running it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from schemas.config import ConfigError, load_config
from schemas.durations import format_duration
from streams.deadletter import describe_validation_error
from streams.runbooks.preview import incident_event_from, preview
from tocsin.settings import DEFAULT_CONFIG

TRANSITIONS = ["opened", "reopened", "escalated", "acknowledged", "resolved"]


@click.group()
def runbook() -> None:
    """Inspect the runbooks of a configuration file."""


@runbook.command("test")
@click.argument("name")
@click.option(
    "--incident",
    "incident_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file: an incident as GET /incidents/ID returns it, "
    "or an incident-events record.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("TOCSIN_CONFIG", str(DEFAULT_CONFIG)),
    help="Configuration file (default: $TOCSIN_CONFIG or the shipped one).",
)
@click.option(
    "--transition",
    type=click.Choice(TRANSITIONS),
    default="opened",
    show_default=True,
    help="Transition an incident file is read as; records carry their own.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the preview as JSON.")
def runbook_test(
    name: str, incident_file: Path, config_path: Path, transition: str, as_json: bool
) -> None:
    """Show whether runbook NAME matches an incident and its rendered steps.

    Nothing is executed and no secret is read. Exits with 1 when the
    runbook would not run.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    runbooks = {entry.name: entry for entry in config.runbooks}
    if name not in runbooks:
        raise click.ClickException(
            f"runbook {name!r} not found in {config_path}; defined: {sorted(runbooks)}"
        )
    try:
        data = json.loads(incident_file.read_text())
        if not isinstance(data, dict):
            raise click.ClickException(f"{incident_file}: expected a JSON object")
        event = incident_event_from(data, transition)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{incident_file}: invalid JSON: {exc}") from exc
    except ValidationError as exc:
        problem = describe_validation_error(exc)
        message = f"{incident_file}: invalid incident: {problem}"
        raise click.ClickException(message) from None
    result = preview(runbooks[name], event, config.shell_allowlist)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_preview(result)
    if not result["would_run"]:
        raise SystemExit(1)


def _print_preview(result: dict[str, Any]) -> None:
    verdict = "matches" if result["matches"] else "does not match"
    click.echo(
        f"runbook {result['runbook']} {verdict} incident {result['incident_id']}"
    )
    for mismatch in result["mismatches"]:
        click.echo(f"  - {mismatch}")
    mode = (
        "dry-run: steps are rendered and recorded only" if result["dry_run"] else "live"
    )
    click.echo(f"mode: {mode}")
    click.echo(f"target: {result['target']!r}")
    _print_steps("steps", result["steps"])
    _print_steps("rollback", result["rollback"])
    if result["verify"] is not None:
        _print_steps("verify", [result["verify"]])
    click.echo(f"would run: {'yes' if result['would_run'] else 'no'}")


def _print_steps(title: str, steps: list[dict[str, Any]]) -> None:
    if not steps:
        return
    click.echo(f"{title}:")
    for number, step in enumerate(steps, start=1):
        click.echo(
            f"  {number}. {step['step']} ({step['action']}, timeout "
            f"{format_duration(step['timeout_s'])}, retries {step['retries']})"
        )
        if "input" in step:
            click.echo(f"     {json.dumps(step['input'])}")
        if "error" in step:
            click.echo(f"     error: {step['error']}")

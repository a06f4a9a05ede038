"""The `tocsin` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from schemas.config import ConfigError, load_config
from schemas.durations import format_duration
from tocsin import client
from tocsin.runbook_cli import runbook
from tocsin.settings import DEFAULT_CONFIG

WEB_URL = os.environ.get("TOCSIN_WEB_URL", "http://127.0.0.1:6066")


def _no_broker(bootstrap: str) -> str:
    return (
        f"cannot connect to Kafka at {bootstrap}: start a local broker with "
        "`tocsin broker start` and set TOCSIN_BOOTSTRAP_SERVERS to the address it "
        "prints"
    )


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"invalid label {pair!r}: expected NAME=VALUE")
        labels[name] = value
    return labels


@click.group()
@click.option("--log-level", default="INFO", show_default=True, help="Log level.")
def main(log_level: str) -> None:
    """Tocsin: an event-driven incident-response pipeline on Kafka."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


@main.command(context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def broker(args: tuple[str, ...]) -> None:
    """Run a local Kafka or Tansu broker: start, stop, status or fetch.

    `tocsin broker --help` and `tocsin broker start --help` list the options.
    """
    from tocsin.broker import broker_main

    sys.exit(broker_main(list(args), prog="tocsin broker"))


@main.command()
@click.option("--config", type=click.Path(path_type=Path), help="YAML file.")
@click.option("--clock", type=click.Choice(["live", "replay"]), help="Clock mode.")
@click.option("--web-port", type=int, help="Port of the web view.")
def worker(config: Path | None, clock: str | None, web_port: int | None) -> None:
    """Run a pipeline worker (settings from TOCSIN_* environment variables)."""
    from tocsin.settings import Settings
    from tocsin.worker import run_worker

    overrides: dict[str, Any] = {}
    if config is not None:
        overrides["config"] = config
    if clock is not None:
        overrides["clock"] = clock
    if web_port is not None:
        overrides["web_port"] = web_port
    # The worker re-reads sys.argv through faust; keep only the program name.
    sys.argv = [sys.argv[0], "worker"]
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"TOCSIN_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            f" (got {e['input']!r})"
            for e in exc.errors(include_url=False)
        )
        raise click.ClickException(f"invalid settings: {problems}") from None
    try:
        run_worker(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaConnectionError as exc:
        raise click.ClickException(_no_broker(settings.bootstrap_servers)) from exc


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--logs", is_flag=True, help="Replay a log file, not a metric CSV.")
@click.option("--label", "labels", multiple=True, help="NAME=VALUE, repeatable.")
@click.option("--batch-size", default=100, show_default=True, help="Items a record.")
@click.option(
    "--bootstrap", envvar="TOCSIN_BOOTSTRAP_SERVERS", default="127.0.0.1:9092"
)
@click.option("--topic-prefix", envvar="TOCSIN_TOPIC_PREFIX", default="")
@click.option(
    "--partitions",
    envvar="TOCSIN_TOPIC_PARTITIONS",
    default=4,
    show_default=True,
    help="Partitions of topics created if missing; match the workers' setting.",
)
def replay(
    path: Path,
    logs: bool,
    labels: tuple[str, ...],
    batch_size: int,
    bootstrap: str,
    topic_prefix: str,
    partitions: int,
) -> None:
    """Publish a CSV series (timestamp,value) or a log file as telemetry."""
    from tocsin.replay import ReplayError, replay_logs, replay_metrics

    label_map = _labels(labels)
    if not logs:
        label_map.setdefault("service", path.stem)
        label_map.setdefault("metric", path.stem)
        label_map.setdefault("series", f"{label_map['service']}/{label_map['metric']}")
    run = replay_logs if logs else replay_metrics
    try:
        summary = asyncio.run(
            run(
                bootstrap,
                topic_prefix,
                path,
                label_map,
                batch_size=batch_size,
                partitions=partitions,
            )
        )
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    except KafkaConnectionError as exc:
        raise click.ClickException(_no_broker(bootstrap)) from exc
    click.echo(summary.describe())
    if not logs:
        click.echo(
            f"series {label_map['series']!r}: samples at or before ones this series "
            "already has are dead-lettered as late; replay history again under "
            "another --label series=NAME"
        )


@main.command()
@click.option("--keep-running", is_flag=True, help="Keep the worker serving.")
def demo(keep_running: bool) -> None:
    """Replay shipped NAB series through the default configuration."""
    from tocsin.demo import run_demo

    sys.exit(run_demo(keep_running=keep_running))


@main.command()
@click.option("--state", help="open, acknowledged or resolved.")
@click.option("--service", help="Only this service.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def incidents(state: str | None, service: str | None, url: str) -> None:
    """List incidents, newest first."""
    query = "&".join(
        f"{k}={v}" for k, v in (("state", state), ("service", service)) if v
    )
    try:
        listing = client.request(url, "/incidents" + (f"?{query}" if query else ""))
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    for incident in listing["incidents"]:
        click.echo(
            f"{incident['incident_id']}  {incident['state']:<12} "
            f"{incident['severity']:<8} {incident['service']}: {incident['title']}"
        )
    click.echo(_count(listing["total"], "incident"))


def _command(kind: str, incident_id: str, actor: str, url: str, **extra: str) -> None:
    try:
        answer = client.request(
            url, f"/incidents/{incident_id}/{kind}", {"actor": actor, **extra}
        )
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(answer["accepted"], indent=2))


@main.command()
@click.argument("incident_id")
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def ack(incident_id: str, actor: str, url: str) -> None:
    """Acknowledge an incident."""
    _command("acknowledge", incident_id, actor, url)


@main.command()
@click.argument("incident_id")
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
@click.option(
    "--false-positive",
    is_flag=True,
    help="Record that the incident was a false positive.",
)
def resolve(incident_id: str, actor: str, url: str, false_positive: bool) -> None:
    """Resolve an incident."""
    extra = {"resolution": "false_positive"} if false_positive else {}
    _command("resolve", incident_id, actor, url, **extra)


@main.command()
@click.argument("incident_id")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; - prints it. Default: postmortem-INCIDENT_ID.md.",
)
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def postmortem(incident_id: str, output: Path | None, url: str) -> None:
    """Write a Markdown postmortem draft from an incident's timeline."""
    try:
        markdown = client.request_text(
            url, f"/incidents/{urllib.parse.quote(incident_id)}/postmortem"
        )
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is not None and str(output) == "-":
        click.echo(markdown, nl=False)
        return
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", incident_id)
    path = output or Path(f"postmortem-{safe_id}.md")
    try:
        path.write_text(markdown)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc}") from exc
    click.echo(f"wrote {path}")


@main.command()
@click.argument("schedule", required=False)
@click.option(
    "--at",
    "at_time",
    help="ISO 8601 time (UTC when it names no zone) or Unix seconds; default now.",
)
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def oncall(schedule: str | None, at_time: str | None, url: str) -> None:
    """Show who is on call on SCHEDULE, or on every schedule."""
    path = "/oncall" + (f"/{urllib.parse.quote(schedule, safe='')}" if schedule else "")
    if at_time is not None:
        path += "?" + urllib.parse.urlencode({"at": at_time})
    try:
        answer = client.request(url, path)
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"on call at {answer['at']}:")
    for row in answer["schedules"]:
        shift = row["on_call"]
        if shift is None:
            click.echo(f"  {row['schedule']:<20} nobody")
            continue
        receivers = ", ".join(row["receivers"]) or "no receivers"
        click.echo(
            f"  {row['schedule']:<20} {shift['user']:<16} until {shift['end']} "
            f"({shift['source']}; {receivers})"
        )
    if not answer["schedules"]:
        click.echo("  no schedules configured")


@main.group()
def silence() -> None:
    """Create, list and expire silences."""


def _aware_datetime(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> datetime | None:
    """Parse an ISO 8601 option value that must name its time zone."""
    if value is None:
        return None
    example = "e.g. 2024-07-01T02:00:00Z or 2024-07-01T04:00:00+02:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date and time, {example}"
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone. Add one, {example}")
    return parsed


@silence.command("add")
@click.argument("matchers", nargs=-1, required=True)
@click.option(
    "--start",
    callback=_aware_datetime,
    help="When the silence starts, ISO 8601 with a time zone (default: now).",
)
@click.option(
    "--duration",
    default="2h",
    show_default=True,
    help="How long from its start, e.g. 30m.",
)
@click.option("--comment", default="", help="Why.")
@click.option("--author", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def silence_add(
    matchers: tuple[str, ...],
    start: datetime | None,
    duration: str,
    comment: str,
    author: str,
    url: str,
) -> None:
    """Silence incidents whose labels match every MATCHER (name=value, =~, !=, !~)."""
    body = {
        "matchers": list(matchers),
        "duration": duration,
        "comment": comment,
        "created_by": author,
    }
    if start is not None:
        body["starts_at"] = start.isoformat()
    try:
        answer = client.request(url, "/silences", body)
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    created = answer["silence"]
    span = f"until {created['ends_at']}"
    if start is not None:
        span = f"from {created['starts_at']} {span}"
    click.echo(f"{created['silence_id']}  {span}")


@silence.command("list")
@click.option("--state", type=click.Choice(["active", "pending", "expired"]))
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def silence_list(state: str | None, url: str) -> None:
    """List silences."""
    try:
        listing = client.request(
            url, "/silences" + (f"?state={state}" if state else "")
        )
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    for item in listing["silences"]:
        matchers = ", ".join(
            f"{m['name']}{m['op']}{m['value']}" for m in item["matchers"]
        )
        click.echo(
            f"{item['silence_id']}  {item['state']:<8} until {item['ends_at']}  "
            f"{matchers}  by {item['created_by']}: {item['comment']}"
        )


@silence.command("expire")
@click.argument("silence_id")
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def silence_expire(silence_id: str, actor: str, url: str) -> None:
    """Expire a silence now."""
    try:
        client.request(url, f"/silences/{silence_id}/expire", {"actor": actor})
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{silence_id} expiring")


@main.group()
def maintenance() -> None:
    """Create, list and delete maintenance windows."""


@maintenance.command("add")
@click.argument("name")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--start", help="One-off window start, ISO 8601 with a zone.")
@click.option("--end", help="One-off window end, ISO 8601 with a zone.")
@click.option("--days", help="Recurring window: days, comma-separated, e.g. sat,sun.")
@click.option("--at", "start_time", help="Recurring window: start time, e.g. 02:00.")
@click.option("--duration", help="Recurring window: how long, e.g. 2h.")
@click.option("--timezone", default="UTC", show_default=True, help="Recurring zone.")
@click.option("--comment", default="", help="Why.")
@click.option("--author", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def maintenance_add(
    name: str,
    matchers: tuple[str, ...],
    start: str | None,
    end: str | None,
    days: str | None,
    start_time: str | None,
    duration: str | None,
    timezone: str,
    comment: str,
    author: str,
    url: str,
) -> None:
    """Mute incidents matching every MATCHER during a one-off or weekly window."""
    body: dict[str, Any] = {
        "name": name,
        "matchers": list(matchers),
        "created_by": author,
        "comment": comment,
    }
    if (start_time or duration or days) and (start or end):
        raise click.UsageError(
            "give either --start and --end (one-off) or --at and --duration "
            "(weekly), not both"
        )
    if start_time or duration or days:
        if not (start_time and duration):
            raise click.UsageError("a recurring window needs --at and --duration")
        every: dict[str, Any] = {
            "start": start_time,
            "duration": duration,
            "timezone": timezone,
        }
        if days:
            every["days"] = [d.strip() for d in days.split(",") if d.strip()]
        body["every"] = every
    elif start and end:
        body["starts_at"] = start
        body["ends_at"] = end
    else:
        raise click.UsageError(
            "give --start and --end for a one-off window, or --at and --duration "
            "(and optionally --days) for a weekly one"
        )
    try:
        answer = client.request(url, "/maintenance-windows", body)
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{answer['maintenance_window']['name']}  created")


@maintenance.command("list")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def maintenance_list(url: str) -> None:
    """List maintenance windows, from the configuration file and over HTTP."""
    try:
        listing = client.request(url, "/maintenance-windows")
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    for item in listing["maintenance_windows"]:
        matchers = ", ".join(
            f"{m['name']}{m['op']}{m['value']}" for m in item["matchers"]
        )
        every = item.get("every")
        if every:
            days = ",".join(every["days"])
            duration = format_duration(every["duration"])
            when = f"{days} {every['start']} for {duration} {every['timezone']}"
        else:
            when = f"{item['starts_at']} to {item['ends_at']}"
        state = "active" if item["active"] else "inactive"
        click.echo(f"{item['name']}  {state:<8} {when}  {matchers}  ({item['source']})")


@maintenance.command("delete")
@click.argument("name")
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), help="Who.")
@click.option("--url", default=WEB_URL, show_default=True, help="Web view URL.")
def maintenance_delete(name: str, actor: str, url: str) -> None:
    """Delete a maintenance window created over HTTP."""
    try:
        path = f"/maintenance-windows/{quote(name, safe='')}/delete"
        client.request(url, path, {"actor": actor})
    except client.WebViewError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} deleting")


@main.group()
def config() -> None:
    """Work with the configuration file."""


@config.command("check")
@click.argument(
    "path",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("TOCSIN_CONFIG", str(DEFAULT_CONFIG)),
)
def config_check(path: Path) -> None:
    """Validate a configuration file (default: $TOCSIN_CONFIG or the shipped one)."""
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    rules = len(loaded.rules.metrics) + len(loaded.rules.logs)
    counts = [
        _count(rules, "rule"),
        _count(len(loaded.policies), "policy", "policies"),
        _count(len(loaded.receivers), "receiver"),
        _count(len(loaded.schedules), "schedule"),
        _count(len(loaded.runbooks), "runbook"),
    ]
    click.echo(f"{path}: valid: {', '.join(counts)}")


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


main.add_command(runbook)


if __name__ == "__main__":
    main()

"""The configuration file model: rules, routes, policies, receivers, runbooks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
)

from schemas.analytics import Targets
from schemas.durations import Duration
from schemas.rules import Rules, Strict
from schemas.silences import InhibitRule, MaintenanceWindow


class SlackReceiver(Strict):
    type: Literal["slack"]
    channel: str = Field(min_length=1)
    token_env: str = "TOCSIN_SLACK_TOKEN"


class PagerDutyReceiver(Strict):
    type: Literal["pagerduty"]
    routing_key_env: str = "TOCSIN_PAGERDUTY_ROUTING_KEY"


class ConsoleReceiver(Strict):
    type: Literal["console"]


Receiver = Annotated[
    SlackReceiver | PagerDutyReceiver | ConsoleReceiver, Field(discriminator="type")
]


class EscalationLevel(Strict):
    """Targets notified once the incident has been unacknowledged for `delay`."""

    delay: Duration = timedelta(0)
    targets: list[str] = Field(min_length=1)


class EscalationPolicy(Strict):
    levels: list[EscalationLevel] = Field(min_length=1, max_length=20)


class Route(Strict):
    """Send incidents whose labels equal every `match` entry to `policy`.

    `group_by` names the labels whose values make one group: alerts of a
    group share one incident. Without it each alert is its own group.
    `group_wait` delays the first notification of a new incident, so alerts
    of one group that fire together page once and an alert that clears
    within it pages no one. It also delays every escalation level.
    """

    match: dict[str, str] = Field(default_factory=dict)
    policy: str
    group_by: list[str] | None = None
    group_wait: Duration = timedelta(0)
    send_resolved: bool = True
    repeat_interval: Duration = Field(
        default=timedelta(0),
        description="re-notify an open, unacknowledged incident this often; "
        "0 turns repeats off",
    )


class HttpAction(Strict):
    type: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    expected_status: int = Field(default=200, ge=100, le=599)
    timeout: Duration = timedelta(seconds=10)


class Runbook(Strict):
    """An action run when an incident whose labels match `trigger` opens.

    Runbooks are dry-run until `dry_run: false`: the action is rendered and
    recorded on the timeline, not executed.
    """

    name: str = Field(min_length=1)
    trigger: dict[str, str] = Field(min_length=1)
    dry_run: bool = True
    owner: str = ""
    action: HttpAction


class Lifecycle(Strict):
    """Reopening and recurrence settings of incidents."""

    reopen_window: Duration = Field(
        default=timedelta(0),
        description="a matching alert within this long of the resolve reopens "
        "the incident; later ones open a new incident",
    )
    recurrence_window: Duration = Field(
        default=timedelta(hours=24),
        description="a new incident within this long of the last resolve is "
        "linked to it as a recurrence",
    )


class Config(Strict):
    """The whole configuration file."""

    rules: Rules = Field(default_factory=Rules)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str = "default"
    policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    runbooks: list[Runbook] = Field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    targets: Targets = Field(default_factory=Targets)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)

    def route_for(self, labels: dict[str, str]) -> tuple[int, Route] | None:
        """Return the first route whose `match` the labels satisfy, with its index."""
        for index, route in enumerate(self.routes):
            if all(labels.get(k) == v for k, v in route.match.items()):
                return index, route
        return None

    def policy_for(self, labels: dict[str, str]) -> str:
        found = self.route_for(labels)
        return found[1].policy if found else self.default_policy


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration file {path}:\n{listing}")


def _file_path(loc: tuple[Any, ...]) -> list[str]:
    """Drop the union tags pydantic puts in a location, leaving the file's path.

    A rule's type tag follows its list index; a receiver's follows its name.
    """
    path = []
    for index, part in enumerate(loc):
        after_rule = index > 0 and isinstance(loc[index - 1], int)
        after_receiver = index > 1 and loc[index - 2] == "receivers"
        in_rules = "rules" in loc[:index]
        if (after_rule and in_rules) or after_receiver:
            continue
        path.append(str(part))
    return path


def _format_error(error: Any) -> str:
    location = ".".join(_file_path(tuple(error["loc"]))) or "(top level)"
    message = error["msg"]
    kind = error["type"]
    if kind in {"value_error", "assertion_error"}:
        return f"{location}: {message.removeprefix('Value error, ')}"
    if kind == "extra_forbidden":
        # The value is not shown: an unknown field is often a misplaced secret.
        return (
            f"{location}: unknown field; remove it, and put secrets in environment "
            "variables named by token_env or routing_key_env"
        )
    if kind == "union_tag_invalid":
        context = error.get("ctx", {})
        return (
            f"{location}: invalid type {context.get('tag')!r}; allowed: "
            f"{context.get('expected_tags')}"
        )
    shown = repr(error["input"])
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f"{location}: {message}; got {shown}"


def _reference_problems(data: object) -> list[str]:
    """List the routes, default policy and targets that name nothing defined.

    Reads the parsed YAML, not the model, so the check also runs when other
    fields are invalid. Entries of the wrong shape are left to the model.
    """
    if not isinstance(data, dict):
        return []
    policies = data.get("policies") or {}
    receivers = data.get("receivers") or {}
    if not isinstance(policies, dict) or not isinstance(receivers, dict):
        return []
    problems = []
    default = data.get("default_policy", "default")
    if policies and isinstance(default, str) and default not in policies:
        problems.append(
            f"default_policy: {default!r} is not a policy; defined: {sorted(policies)}"
        )
    routes = data.get("routes") or []
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        policy = route.get("policy") if isinstance(route, dict) else None
        if isinstance(policy, str) and policy not in policies:
            problems.append(
                f"routes.{index}.policy: {policy!r} is not a policy; "
                f"defined: {sorted(policies)}"
            )
    for name, policy in policies.items():
        levels = policy.get("levels") if isinstance(policy, dict) else None
        for level_index, level in enumerate(levels if isinstance(levels, list) else []):
            targets = level.get("targets") if isinstance(level, dict) else None
            for target in targets if isinstance(targets, list) else []:
                if isinstance(target, str) and target not in receivers:
                    problems.append(
                        f"policies.{name}.levels.{level_index}.targets: "
                        f"{target!r} is not a receiver; defined: {sorted(receivers)}"
                    )
    return problems


def parse_config(data: object, path: Path) -> Config:
    """Validate parsed YAML, raising ConfigError that lists every problem."""
    if data is None:
        data = {}
    problems = _reference_problems(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_format_error(e) for e in exc.errors(include_url=False)] + problems
        raise ConfigError(path, problems) from None
    if problems:
        raise ConfigError(path, problems)
    return config


def load_config(path: Path) -> Config:
    """Read and validate the YAML configuration file at `path`."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        with handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"invalid YAML: {exc}"]) from exc
    return parse_config(data, path)

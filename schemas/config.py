"""The configuration file model: rules, routes, policies, receivers, runbooks."""

from __future__ import annotations

import posixpath
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.analytics import Targets
from schemas.durations import Duration
from schemas.grouping import Flapping
from schemas.oncall import (
    EscalationLevel as EscalationLevel,  # re-exported: the policy model's level
)
from schemas.oncall import (
    EscalationPolicy,
    Schedule,
    User,
    oncall_reference_problems,
)
from schemas.receivers import EmailReceiver, WebhookReceiver
from schemas.rules import Rules, Strict
from schemas.runbooks import Runbook, runbook_problems
from schemas.silences import InhibitRule, MaintenanceWindow
from schemas.validation_errors import config_problem


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
    SlackReceiver
    | PagerDutyReceiver
    | ConsoleReceiver
    | WebhookReceiver
    | EmailReceiver,
    Field(discriminator="type"),
]


class Route(Strict):
    """Send incidents whose labels equal every `match` entry to `policy`.

    `group_by` names the labels whose values make one group: alerts of a
    group share one incident. Without it, alerts that Alertmanager sent
    under one groupKey make one group, and any other alert is its own.
    `group_wait` delays the first notification of a new incident, so alerts
    of one group that fire together page once and an alert that clears
    within it pages no one. It also delays every escalation level.
    `group_interval` batches the notifications of later changes to the
    group, and `flapping`, when set, delays the notifications of an alert
    that keeps changing state.
    """

    match: dict[str, str] = Field(default_factory=dict)
    policy: str
    group_by: list[str] | None = None
    fingerprint_by: list[str] | None = Field(
        default=None,
        min_length=1,
        description="the labels that identify an external alert; "
        "by default every label does",
    )
    group_wait: Duration = timedelta(0)
    group_interval: Duration = Field(
        default=timedelta(minutes=5),
        description="once an incident has notified, wait this long between "
        "notifications of alerts joining or leaving it; 0 notifies each change",
    )
    min_alerts: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="open an incident only once this many alerts of the group "
        "fire at the same time",
    )
    flapping: Flapping | None = None
    send_resolved: bool = True
    repeat_interval: Duration = Field(
        default=timedelta(0),
        description="re-notify an open, unacknowledged incident this often; "
        "0 turns repeats off",
    )


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
    resolve_timeout: Duration = Field(
        default=timedelta(0),
        description="resolve an incident still open this long after it opened "
        "or last reopened; 0 turns the timeout off",
    )


class Config(Strict):
    """The whole configuration file."""

    rules: Rules = Field(default_factory=Rules)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str = "default"
    policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    runbooks: list[Runbook] = Field(default_factory=list)
    shell_allowlist: list[str] = Field(default_factory=list)

    @field_validator("shell_allowlist")
    @classmethod
    def _absolute_programs(cls, programs: list[str]) -> list[str]:
        for program in programs:
            if not program.startswith("/") or posixpath.normpath(program) != program:
                raise ValueError(
                    f"invalid program {program!r}: give a normalised absolute path, "
                    "such as /usr/bin/systemctl"
                )
        return programs

    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    targets: Targets = Field(default_factory=Targets)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)

    @model_validator(mode="after")
    def _check_runbooks(self) -> Config:
        kinds = {name: receiver.type for name, receiver in self.receivers.items()}
        problems = runbook_problems(self.runbooks, kinds, self.shell_allowlist)
        if problems:
            # One problem per line; parse_config lists each on its own.
            raise ValueError("\n".join(problems))
        return self

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


def _duplicate_names(data: dict[str, Any], section: str) -> list[str]:
    """List the names used twice in a list section such as `runbooks`."""
    entries = data.get(section)
    if not isinstance(entries, list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                f"{section}.{index}.name: {name!r} is already the name of "
                f"{section}.{seen[name]}; names must be unique"
            )
        else:
            seen[name] = index
    return problems


def _reference_problems(data: object) -> list[str]:
    """List the routes, default policy and targets that name nothing defined.

    Reads the parsed YAML, not the model, so the check also runs when other
    fields are invalid. Entries of the wrong shape are left to the model.
    """
    if not isinstance(data, dict):
        return []
    problems = _duplicate_names(data, "maintenance_windows") + _duplicate_names(
        data, "runbooks"
    )
    policies = data.get("policies") or {}
    receivers = data.get("receivers") or {}
    if not isinstance(policies, dict) or not isinstance(receivers, dict):
        return problems
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
    return problems + oncall_reference_problems(data)


def parse_config(data: object, path: Path) -> Config:
    """Validate parsed YAML, raising ConfigError that lists every problem."""
    if data is None:
        data = {}
    problems = _reference_problems(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        found = []
        for error in exc.errors(include_url=False):
            if not error["loc"] and error["type"] == "value_error":
                # Whole-file checks name each problem's path themselves.
                message = error["msg"].removeprefix("Value error, ")
                found.extend(message.splitlines())
            else:
                found.append(config_problem(error, Config))
        raise ConfigError(path, found + problems) from None
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
    except ValueError as exc:
        # PyYAML raises ValueError for a timestamp such as 2024-13-02.
        raise ConfigError(path, [f"invalid YAML value: {exc}"]) from exc
    return parse_config(data, path)

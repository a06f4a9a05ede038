"""The configuration file model: rules, routes, policies, receivers, runbooks."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.records import Severity

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> object:
    """Parse a Prometheus-style duration (`90s`, `5m`, `1h30m`) or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(_duration_problem(value))
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(_duration_problem(value))
        return _to_timedelta(value, value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(_duration_problem(value))
    return _to_timedelta(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts), value)


def _duration_problem(value: object) -> str:
    return (
        f"invalid duration {value!r}: use a number with a unit, "
        "such as 30s, 5m, 1h30m, 2d (units ms, s, m, h, d, w)"
    )


def _to_timedelta(seconds: float, value: object) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"invalid duration {value!r}: longer than the maximum, "
            f"{timedelta.max.days} days"
        ) from None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThresholdRule(Strict):
    """A metric rule that fires when a series stays above or below a bound.

    It fires once the condition has held for `for_` (Prometheus `for`), and
    resolves at the first sample that no longer breaches it.
    """

    name: str = Field(min_length=1)
    type: Literal["threshold"] = "threshold"
    match: dict[str, str] = Field(default_factory=dict)
    op: Literal["above", "below"] = "above"
    threshold: float
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: Severity = Severity.MEDIUM
    auto_resolve: bool = False
    notify: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""

    def breached(self, value: float) -> bool:
        if self.op == "above":
            return value > self.threshold
        return value < self.threshold


class PatternRule(Strict):
    """A log rule that fires on every line whose message matches `regex`."""

    name: str = Field(min_length=1)
    type: Literal["pattern"] = "pattern"
    match: dict[str, str] = Field(default_factory=dict)
    regex: str
    levels: list[str] = Field(default_factory=list)
    severity: Severity = Severity.MEDIUM
    auto_resolve: bool = False
    notify: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value


class Rules(Strict):
    metrics: list[ThresholdRule] = Field(default_factory=list)
    logs: list[PatternRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Rules:
        names = [r.name for r in self.metrics] + [r.name for r in self.logs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique, repeated: {duplicates}")
        return self


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
    """Send incidents whose labels equal every `match` entry to `policy`."""

    match: dict[str, str] = Field(default_factory=dict)
    policy: str


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


class Targets(Strict):
    mtta: Duration = timedelta(minutes=5)
    mtta_alert: Duration = timedelta(minutes=10)
    mttr: Duration = timedelta(minutes=60)
    mttr_alert: Duration = timedelta(minutes=120)


class Config(Strict):
    """The whole configuration file."""

    rules: Rules = Field(default_factory=Rules)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str = "default"
    policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    receivers: dict[str, Receiver] = Field(default_factory=dict)
    runbooks: list[Runbook] = Field(default_factory=list)
    targets: Targets = Field(default_factory=Targets)

    def policy_for(self, labels: dict[str, str]) -> str:
        for route in self.routes:
            if all(labels.get(k) == v for k, v in route.match.items()):
                return route.policy
        return self.default_policy


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration file {path}:\n{listing}")


def _format_error(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] in {"value_error", "assertion_error"}:
        return f"{location}: {message.removeprefix('Value error, ')}"
    return f"{location}: {message}; got {error['input']!r}"


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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"invalid YAML: {exc}"]) from exc
    return parse_config(data, path)

"""The runbook configuration model: trigger, steps and their actions, safety."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from schemas.durations import Duration
from schemas.records import Record, Severity
from schemas.rules import Strict

# The incident transitions that may start a run.
TriggerTransition = Literal[
    "opened", "reopened", "escalated", "acknowledged", "resolved"
]

_OPENED_ONLY: list[TriggerTransition] = ["opened"]


class Trigger(Strict):
    """The incidents a runbook runs for. Every matcher given must match.

    `labels` entries must equal the incident's labels, `severity` and
    `rules` list the allowed values, and `transitions` those that start a
    run (by default the opening only).
    """

    labels: dict[str, str] = Field(default_factory=dict)
    severity: list[Severity] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    transitions: list[TriggerTransition] = Field(
        default_factory=lambda: _OPENED_ONLY.copy()
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_bare_labels(cls, data: Any) -> Any:
        known = {"labels", "severity", "rules", "transitions"}
        if isinstance(data, dict) and data and not set(data) & known:
            raise ValueError(
                f"trigger {data!r} has no known matcher; put label matchers under "
                "trigger.labels, for example trigger: {labels: {team: ml}}"
            )
        return data


class HttpAction(Strict):
    """An HTTP request; URL values are percent-encoded, body values JSON-encoded."""

    type: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    expected_status: int = Field(default=200, ge=100, le=599)


class ShellAction(Strict):
    """A program run from an argv list, never through a shell.

    `argv[0]` must be an absolute path listed in the top-level
    `shell_allowlist`, and it cannot be templated. The program gets only
    the variables in `env`, runs in `cwd`, and its output is cut at
    `max_output_bytes` per stream.
    """

    type: Literal["shell"]
    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = "/"
    max_output_bytes: int = Field(default=65_536, ge=0, le=10_485_760)
    expected_exit_code: int = 0

    @field_validator("argv")
    @classmethod
    def _fixed_executable(cls, argv: list[str]) -> list[str]:
        if not argv[0].startswith("/"):
            raise ValueError(
                f"argv[0] {argv[0]!r} must be an absolute path to the executable"
            )
        if "{" in argv[0]:
            raise ValueError(f"argv[0] {argv[0]!r} must not contain a template field")
        return argv

    @field_validator("cwd")
    @classmethod
    def _absolute_cwd(cls, cwd: str) -> str:
        if not cwd.startswith("/") or "{" in cwd:
            raise ValueError(f"cwd {cwd!r} must be an absolute path without templates")
        return cwd


class PublishAction(Strict):
    """A JSON record sent to a Kafka topic (the worker's topic prefix applies)."""

    type: Literal["publish"]
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")
    key: str = "{incident_id}"
    value: dict[str, Any] = Field(min_length=1)


class NotifyAction(Strict):
    """A message to receivers of the configuration, about the incident."""

    type: Literal["notify"]
    receivers: list[str] = Field(min_length=1)
    message: str = Field(min_length=1, max_length=2000)


class WaitAction(Strict):
    """Wait until the incident's alerts resolve, bounded by the step's timeout.

    A metric back under its threshold is the resolve of its metric rule's
    alert, so `condition: alert_resolved` with `rule` set waits for it.
    """

    type: Literal["wait"]
    condition: Literal["alert_resolved", "incident_resolved"]
    rule: str | None = None


class ApprovalAction(Strict):
    """Pause the run until one of `approvers` approves, or `ttl` passes."""

    type: Literal["approval"]
    approvers: list[str] = Field(min_length=1)
    ttl: Duration = timedelta(minutes=30)
    message: str = "approve runbook {runbook} for incident {incident_id}"


Action = Annotated[
    HttpAction
    | ShellAction
    | PublishAction
    | NotifyAction
    | WaitAction
    | ApprovalAction,
    Field(discriminator="type"),
]


class Step(Strict):
    """One action with its hard timeout and retries.

    `timeout` counts on the pipeline clock. When it passes, a program is
    killed with its children and a request is cancelled. A failed or timed-out
    attempt is retried `retries` times, `retry_delay` apart.
    """

    name: str = Field(min_length=1, max_length=100)
    action: Action
    timeout: Duration = timedelta(seconds=60)
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay: Duration = timedelta(seconds=10)

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, timeout: timedelta) -> timedelta:
        if timeout <= timedelta(0):
            raise ValueError(f"timeout {timeout} must be longer than 0s")
        return timeout


class Verification(Strict):
    """A final check after the last step.

    Success resolves the incident if `resolve_on_success`. Failure fails the
    run and, with `escalate_on_failure`, notifies the owner's receivers and
    escalates the incident.
    """

    step: Step
    resolve_on_success: bool = False
    escalate_on_failure: bool = True


class RateLimit(Strict):
    max_runs: int = Field(default=5, ge=1, le=10_000)
    window: Duration = timedelta(hours=1)


class CircuitBreaker(Strict):
    """Stop after `max_consecutive_failures`, then allow one trial after `cooldown`."""

    max_consecutive_failures: int = Field(default=3, ge=1, le=1000)
    cooldown: Duration = timedelta(hours=1)


class Safety(Strict):
    """Limits per runbook and per target, the value of `target_label`.

    Incidents without the target label share the target "".
    """

    target_label: str | None = None
    max_concurrent: int = Field(default=1, ge=1, le=1000)
    max_concurrent_per_target: int = Field(default=1, ge=1, le=1000)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)


class Runbook(Strict):
    """Steps run when a matching incident transition happens.

    Runbooks are dry-run until `dry_run: false`: every step is rendered and
    recorded on the timeline, none is executed. `secrets` maps template
    names (`{secrets.NAME}`) to environment variables; their values are
    redacted in every record. `owner_receivers` are notified when the rate
    limit or the circuit breaker stops the runbook.
    """

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    owner: str = Field(min_length=1)
    owner_receivers: list[str] = Field(default_factory=list)
    trigger: Trigger
    dry_run: bool = True
    steps: list[Step] = Field(min_length=1, max_length=50)
    rollback: list[Step] = Field(default_factory=list, max_length=50)
    verify: Verification | None = None
    safety: Safety = Field(default_factory=Safety)
    secrets: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _reject_single_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and "action" in data:
            raise ValueError(
                "a runbook lists its actions under steps; replace action: {...} "
                "with steps: [{name: NAME, action: {...}}]"
            )
        return data

    @model_validator(mode="after")
    def _unique_step_names(self) -> Runbook:
        names = [step.name for step in self.all_steps()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"step names must be unique; repeated: {duplicates}")
        return self

    def all_steps(self) -> list[Step]:
        """Return the steps, rollback steps and the verification step."""
        steps = [*self.steps, *self.rollback]
        if self.verify is not None:
            steps.append(self.verify.step)
        return steps


# Receiver kinds whose notifications show a runbook's message. A PagerDuty
# receiver sends only trigger, acknowledge and resolve events, so a notify
# step to it would succeed while the message is dropped.
MESSAGE_RECEIVER_KINDS = ("console", "slack", "webhook", "email")


def _receiver_problem(receiver: str, receivers: Mapping[str, str]) -> str | None:
    """Describe why runbook messages cannot go to `receiver`, or return None."""
    kind = receivers.get(receiver)
    if kind is None:
        return f"{receiver!r} is not a receiver; defined: {sorted(receivers)}"
    if kind not in MESSAGE_RECEIVER_KINDS:
        return (
            f"receiver {receiver!r} is of type {kind}, which cannot show a "
            f"runbook message; use a receiver of type "
            f"{', '.join(MESSAGE_RECEIVER_KINDS)}"
        )
    return None


def runbook_problems(
    runbooks: list[Runbook], receivers: Mapping[str, str], shell_allowlist: list[str]
) -> list[str]:
    """List references of runbooks to receivers or executables that are not allowed.

    `receivers` maps each receiver's name to its type.
    """
    problems = []
    for index, runbook in enumerate(runbooks):
        where = f"runbooks.{index}"
        for receiver in runbook.owner_receivers:
            problem = _receiver_problem(receiver, receivers)
            if problem is not None:
                problems.append(f"{where}.owner_receivers: {problem}")
        for step in runbook.all_steps():
            action = step.action
            if isinstance(action, NotifyAction):
                for receiver in action.receivers:
                    problem = _receiver_problem(receiver, receivers)
                    if problem is not None:
                        problems.append(f"{where} step {step.name!r}: {problem}")
            if (
                isinstance(action, ShellAction)
                and action.argv[0] not in shell_allowlist
            ):
                problems.append(
                    f"{where} step {step.name!r}: executable {action.argv[0]!r} is "
                    f"not in shell_allowlist {shell_allowlist}"
                )
    return problems


class RunbookApproval(Record):
    """An approval of a run's pending approval step, sent to its partition."""

    approval_id: str
    run_id: str
    group_key: str
    approver: str = Field(min_length=1, max_length=200)
    user_id: str | None = Field(
        default=None, description="the approver's Slack user id, for Slack approvals"
    )
    source: Literal["http", "slack", "cli"]
    at: AwareDatetime

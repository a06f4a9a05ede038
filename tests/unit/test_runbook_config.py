"""Runbook configuration: steps, actions, safety settings and their errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from schemas.config import Config, ConfigError, load_config, parse_config
from schemas.runbooks import ShellAction
from tocsin.settings import DEFAULT_CONFIG

NOTIFY = {"type": "notify", "receivers": ["pager"], "message": "hi"}


def problems_of(data: dict[str, Any]) -> list[str]:
    try:
        parse_config(data, Path("test.yaml"))
    except ConfigError as exc:
        return exc.problems
    return []


def config_with(**runbook: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "restart",
        "owner": "ml",
        "trigger": {"labels": {"team": "ml"}},
        "steps": [{"name": "tell", "action": NOTIFY}],
    }
    fields.update(runbook)
    return {"receivers": {"pager": {"type": "console"}}, "runbooks": [fields]}


def test_runbook_defaults() -> None:
    runbook = Config.model_validate(config_with()).runbooks[0]

    assert runbook.dry_run is True
    assert runbook.steps[0].timeout == timedelta(seconds=60)
    assert runbook.steps[0].retries == 0
    assert runbook.safety.max_concurrent == 1
    assert runbook.safety.rate_limit.max_runs == 5


def test_single_action_form_rejected() -> None:
    data = config_with(action={"type": "http", "url": "http://127.0.0.1/x"})
    del data["runbooks"][0]["steps"]

    problems = problems_of(data)

    assert len(problems) == 1
    assert "runbooks.0" in problems[0]
    assert "replace action: {...} with steps:" in problems[0]


def test_bare_label_trigger_rejected() -> None:
    problems = problems_of(config_with(trigger={"team": "ml"}))

    assert any("put label matchers under trigger.labels" in p for p in problems)


def test_unknown_action_type_listed() -> None:
    steps = [{"name": "x", "action": {"type": "ssh"}}]

    problems = problems_of(config_with(steps=steps))

    assert any("invalid type 'ssh'" in p for p in problems)


def test_shell_executable_must_be_allowlisted() -> None:
    steps = [{"name": "x", "action": {"type": "shell", "argv": ["/bin/rm", "-rf"]}}]

    problems = problems_of(config_with(steps=steps))

    assert any("'/bin/rm' is not in shell_allowlist" in p for p in problems)


def test_shell_allowlisted_executable_accepted() -> None:
    steps = [{"name": "x", "action": {"type": "shell", "argv": ["/bin/echo", "a"]}}]
    data = {**config_with(steps=steps), "shell_allowlist": ["/bin/echo"]}

    action = Config.model_validate(data).runbooks[0].steps[0].action

    assert isinstance(action, ShellAction)


def test_shell_relative_executable_rejected() -> None:
    steps = [{"name": "x", "action": {"type": "shell", "argv": ["echo"]}}]

    problems = problems_of(config_with(steps=steps))

    assert any("must be an absolute path" in p for p in problems)


def test_shell_templated_executable_rejected() -> None:
    steps = [{"name": "x", "action": {"type": "shell", "argv": ["/bin/{rule}"]}}]

    problems = problems_of(config_with(steps=steps))

    assert any("must not contain a template field" in p for p in problems)


def test_notify_receiver_must_exist() -> None:
    action = {**NOTIFY, "receivers": ["nobody"]}

    problems = problems_of(config_with(steps=[{"name": "x", "action": action}]))

    assert any("'nobody' is not a receiver" in p for p in problems)


def test_owner_receiver_must_exist() -> None:
    problems = problems_of(config_with(owner_receivers=["nobody"]))

    assert any("owner_receivers: 'nobody' is not a receiver" in p for p in problems)


def with_receiver(data: dict[str, Any], receiver: dict[str, Any]) -> dict[str, Any]:
    """Return `data` with the runbook's receiver `pager` replaced by `receiver`."""
    return {**data, "receivers": {"pager": receiver}}


PAGERDUTY = {"type": "pagerduty", "routing_key_env": "PD_KEY"}
EMAIL = {
    "type": "email",
    "host": "127.0.0.1",
    "sender": "tocsin@example.com",
    "to": ["oncall@example.com"],
}


def test_notify_to_pagerduty_rejected() -> None:
    problems = problems_of(with_receiver(config_with(), PAGERDUTY))

    assert len(problems) == 1
    assert problems[0].startswith("runbooks.0 step 'tell': receiver 'pager'")
    assert "is of type pagerduty, which cannot show a runbook message" in problems[0]
    assert "use a receiver of type console, slack, webhook, email" in problems[0]


def test_notify_to_email_accepted() -> None:
    assert problems_of(with_receiver(config_with(), EMAIL)) == []


def test_owner_receiver_pagerduty_rejected() -> None:
    data = config_with(owner_receivers=["pager"])
    data["receivers"]["pd"] = PAGERDUTY
    data["runbooks"][0]["owner_receivers"] = ["pd"]

    problems = problems_of(data)

    assert len(problems) == 1
    assert problems[0].startswith("runbooks.0.owner_receivers: receiver 'pd'")
    assert "type pagerduty" in problems[0]


def test_notify_to_webhook_accepted() -> None:
    webhook = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}

    assert problems_of(with_receiver(config_with(), webhook)) == []


def test_duplicate_step_names_rejected() -> None:
    steps = [{"name": "x", "action": NOTIFY}, {"name": "x", "action": NOTIFY}]

    problems = problems_of(config_with(steps=steps))

    assert any("repeated: ['x']" in p for p in problems)


def test_zero_timeout_rejected() -> None:
    steps = [{"name": "x", "action": NOTIFY, "timeout": "0s"}]

    problems = problems_of(config_with(steps=steps))

    assert any("must be longer than 0s" in p for p in problems)


def test_owner_required() -> None:
    data = config_with()
    del data["runbooks"][0]["owner"]

    problems = problems_of(data)

    assert any("runbooks.0.owner" in p for p in problems)


def test_shipped_runbooks_are_dry_run() -> None:
    config = load_config(DEFAULT_CONFIG)
    names = {runbook.name for runbook in config.runbooks}

    assert {"cluster-down", "data-breach", "service-degradation"} <= names
    assert "training-job-failed" in names
    assert all(runbook.dry_run for runbook in config.runbooks)

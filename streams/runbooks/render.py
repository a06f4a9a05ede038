"""Runbook templates: fields from an incident, rendered with escaping per action.

Templates use `str.format` field names (`{incident_id}`, `{labels.host}`,
`{secrets.token}`) and nothing else: no attribute access, indexing or
format specs, so a template cannot reach into Python objects.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from schemas.records import IncidentEvent
from schemas.runbooks import (
    Action,
    ApprovalAction,
    HttpAction,
    NotifyAction,
    PublishAction,
    Runbook,
    ShellAction,
    WaitAction,
)

REDACTED = "[redacted]"


class TemplateError(ValueError):
    """A template names an unknown field or renders a value its action rejects."""


def template_fields(event: IncidentEvent, runbook: str = "") -> dict[str, str]:
    """Return the values a runbook template may use: incident fields and labels."""
    fields = {f"labels.{name}": value for name, value in event.labels.items()}
    fields.update(
        incident_id=event.incident_id,
        service=event.service,
        severity=str(event.severity),
        rule=event.rule,
        title=event.title,
    )
    if runbook:
        fields["runbook"] = runbook
    return fields


def secret_fields(runbook: Runbook, environ: Mapping[str, str]) -> dict[str, str]:
    """Return the runbook's secret fields with their values read from `environ`.

    Raises TemplateError naming the variable when one is not set.
    """
    values = {}
    for name, variable in runbook.secrets.items():
        value = environ.get(variable)
        if value is None:
            raise TemplateError(
                f"secret {name!r} of runbook {runbook.name!r}: environment "
                f"variable {variable} is not set"
            )
        values[f"secrets.{name}"] = value
    return values


def secret_values(fields: Mapping[str, str], redacted: Mapping[str, str]) -> list[str]:
    """Return the values of the fields that `redacted` hides."""
    return [
        value
        for name, value in fields.items()
        if redacted.get(name) == REDACTED and value and value != REDACTED
    ]


def secret_forms(values: Iterable[str]) -> list[str]:
    """Return every form in which the secret `values` may appear, longest first.

    Besides each value as is, these are the value without surrounding
    whitespace and both of them as Python `repr`, JSON and percent-encoding
    write them, without quotes: error messages quote values with `repr`, and
    servers echo request bodies and URLs. Longest first, so a replacement
    never leaves part of a longer form behind.
    """
    forms: set[str] = set()
    for value in values:
        for variant in {value, value.strip()}:
            forms.update(
                {
                    variant,
                    repr(variant)[1:-1],
                    json.dumps(variant)[1:-1],
                    json.dumps(variant, ensure_ascii=False)[1:-1],
                    quote(variant, safe=""),
                    quote(variant),
                }
            )
    forms.discard("")
    return sorted(forms, key=len, reverse=True)


def redact_values(value: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of a secret inside the strings of a JSON value."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: redact_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v, secrets) for v in value]
    return value


def render_template(
    template: str,
    fields: Mapping[str, str],
    escape: Callable[[str], str] = str,
    check: Callable[[str], None] | None = None,
) -> str:
    """Render `template`, passing each field value through `check` and `escape`."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if spec or conversion:
            raise TemplateError(
                f"template field {{{name}}} must not have a format spec or conversion"
            )
        if name not in fields:
            raise TemplateError(
                f"unknown template field {name!r}; known: {sorted(fields)}"
            )
        value = fields[name]
        if check is not None:
            check(value)
        out.append(escape(value))
    return "".join(out)


def _render_json(value: Any, fields: Mapping[str, str]) -> Any:
    """Render every string inside a JSON value; the JSON encoder escapes them."""
    if isinstance(value, str):
        return render_template(value, fields)
    if isinstance(value, dict):
        return {k: _render_json(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, fields) for v in value]
    return value


def _no_line_break(value: str) -> None:
    if "\r" in value or "\n" in value:
        raise TemplateError(f"value {value!r} would put a line break in a header")


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise TemplateError(f"value {value!r} contains a NUL character")


def render_http(action: HttpAction, fields: Mapping[str, str]) -> dict[str, Any]:
    """Render a request: URL values percent-encoded, body values JSON-encoded."""
    url = render_template(action.url, fields, lambda v: quote(v, safe=""))
    headers = {
        name: render_template(value, fields, check=_no_line_break)
        for name, value in action.headers.items()
    }
    body = _render_json(action.body, fields) if action.body is not None else None
    return {"method": action.method, "url": url, "headers": headers, "json": body}


def _render_argument(template: str, fields: Mapping[str, str]) -> str:
    """Render one argv entry; a value cannot start an entry with `-`.

    A program would read such an entry as an option, so a label value of
    `--delete` could change what the command does.
    """
    rendered = render_template(template, fields, check=_no_nul)
    literal_prefix = next(iter(string.Formatter().parse(template)))[0]
    if rendered.startswith("-") and not literal_prefix.startswith("-"):
        raise TemplateError(
            f"argument {rendered!r} starts with '-' from a template value and "
            "would be read as an option; put the value after a literal prefix "
            "or after '--'"
        )
    return rendered


def render_shell(action: ShellAction, fields: Mapping[str, str]) -> dict[str, Any]:
    """Render argv entry by entry; each entry stays one argument, never re-split."""
    argv = [action.argv[0]]
    argv += [_render_argument(template, fields) for template in action.argv[1:]]
    env = {
        name: render_template(value, fields, check=_no_nul)
        for name, value in action.env.items()
    }
    return {"argv": argv, "env": env, "cwd": action.cwd}


def render_publish(action: PublishAction, fields: Mapping[str, str]) -> dict[str, Any]:
    key = render_template(action.key, fields)
    value = _render_json(action.value, fields)
    return {"topic": action.topic, "key": key, "value": json.loads(json.dumps(value))}


def _plain_text(value: str) -> str:
    """Drop control characters other than newline from a message value."""
    return "".join(c for c in value if c == "\n" or c.isprintable())


def render_action(action: Action, fields: Mapping[str, str]) -> dict[str, Any]:
    """Render the inputs of one action. Raises TemplateError."""
    if isinstance(action, HttpAction):
        return render_http(action, fields)
    if isinstance(action, ShellAction):
        return render_shell(action, fields)
    if isinstance(action, PublishAction):
        return render_publish(action, fields)
    if isinstance(action, NotifyAction):
        message = render_template(action.message, fields, _plain_text)
        return {"receivers": list(action.receivers), "message": message}
    if isinstance(action, WaitAction):
        return {"condition": action.condition, "rule": action.rule}
    if isinstance(action, ApprovalAction):
        message = render_template(action.message, fields, _plain_text)
        return {
            "approvers": list(action.approvers),
            "ttl_s": action.ttl.total_seconds(),
            "message": message,
        }
    raise TypeError(f"unknown action {action!r}")

"""Runbook actions rendered from an incident event, escaped per action."""

from __future__ import annotations

import re
from typing import Any

import pytest
from factories import make_event

from schemas.records import IncidentEvent
from schemas.runbooks import HttpAction, Runbook, ShellAction
from streams.runbooks.render import (
    REDACTED,
    TemplateError,
    redact_values,
    render_action,
    render_http,
    render_template,
    secret_fields,
    secret_forms,
    secret_values,
    template_fields,
)

LABELS = {"service": "trainer", "job": "team a/job 7", "zone": "a&b=c#d"}


def action(**overrides: Any) -> HttpAction:
    fields: dict[str, Any] = {
        "method": "POST",
        "url": "http://127.0.0.1:8081/jobs/{labels.job}/restart",
        "headers": {"X-Incident": "{incident_id}"},
        "body": {"incident": "{incident_id}", "job": "{labels.job}"},
    }
    fields.update(overrides)
    return HttpAction(**fields)


def render_request(http: HttpAction, event: IncidentEvent) -> dict[str, Any]:
    return render_http(http, template_fields(event))


def render(**overrides: Any) -> dict[str, Any]:
    return render_request(action(**overrides), make_event(labels=LABELS))


def test_url_values_percent_encoded() -> None:
    assert render()["url"] == "http://127.0.0.1:8081/jobs/team%20a%2Fjob%207/restart"


def test_url_query_values_cannot_add_parameters() -> None:
    request = render(url="http://127.0.0.1:8081/restart?zone={labels.zone}")

    assert request["url"] == "http://127.0.0.1:8081/restart?zone=a%26b%3Dc%23d"


def test_body_values_kept_raw() -> None:
    assert render()["json"] == {"incident": "g1-1", "job": "team a/job 7"}


def test_nested_body_values_rendered() -> None:
    body = {"steps": [{"job": "{labels.job}"}, "{service}"], "retries": 3}

    assert render(body=body)["json"] == {
        "steps": [{"job": "team a/job 7"}, "api"],
        "retries": 3,
    }


def test_missing_body_stays_none() -> None:
    assert render(body=None)["json"] is None


def test_header_values_rendered() -> None:
    assert render()["headers"] == {"X-Incident": "g1-1"}


def test_method_kept() -> None:
    assert render(method="PUT")["method"] == "PUT"


def test_escaped_braces_kept_literal() -> None:
    assert render(body={"text": "{{literal}}"})["json"] == {"text": "{literal}"}


def test_unknown_url_field_rejected() -> None:
    with pytest.raises(
        ValueError, match=re.escape("unknown template field 'labels.host'")
    ):
        render(url="http://127.0.0.1:8081/hosts/{labels.host}")


def test_unknown_body_field_rejected() -> None:
    with pytest.raises(ValueError, match="unknown template field 'owner'"):
        render(body={"owner": "{owner}"})


def test_unknown_field_error_lists_known_fields() -> None:
    with pytest.raises(ValueError, match=r"known: .*'incident_id'"):
        render(body={"owner": "{owner}"})


def test_header_with_line_break_rejected() -> None:
    event = make_event(title="disk full\r\nX-Injected: 1")
    header_action = action(
        url="http://127.0.0.1:8081/restart", headers={"X-Title": "{title}"}, body=None
    )

    with pytest.raises(TemplateError, match="line break in a header"):
        render_request(header_action, event)


def test_header_with_newline_only_rejected() -> None:
    event = make_event(labels={"job": "a\nb"})
    header_action = action(headers={"X-Job": "{labels.job}"}, body=None)

    with pytest.raises(ValueError, match="line break"):
        render_request(header_action, event)


def test_template_fields_include_labels_and_incident() -> None:
    fields = template_fields(make_event(labels={"job": "7"}))

    assert fields == {
        "labels.job": "7",
        "incident_id": "g1-1",
        "service": "api",
        "severity": "high",
        "rule": "cpu_high",
        "title": "CPU above 90 %",
    }


def shell(*argv: str, **overrides: Any) -> ShellAction:
    return ShellAction(type="shell", argv=list(argv), **overrides)


def render_shell_event(action: ShellAction, labels: dict[str, str]) -> Any:
    return render_action(action, template_fields(make_event(labels=labels)))


def test_shell_value_stays_one_argument() -> None:
    rendered = render_shell_event(
        shell("/bin/echo", "{labels.host}"), {"host": "web-1; rm -rf /"}
    )

    assert rendered["argv"] == ["/bin/echo", "web-1; rm -rf /"]


def test_shell_value_with_spaces_not_split() -> None:
    rendered = render_shell_event(
        shell("/bin/echo", "--host={labels.host}"), {"host": "a b  c"}
    )

    assert rendered["argv"] == ["/bin/echo", "--host=a b  c"]


def test_shell_value_cannot_become_option() -> None:
    with pytest.raises(TemplateError, match="would be read as an option"):
        render_shell_event(shell("/bin/echo", "{labels.host}"), {"host": "--all"})


def test_shell_literal_option_prefix_allowed() -> None:
    rendered = render_shell_event(
        shell("/bin/echo", "--name={labels.host}"), {"host": "-x"}
    )

    assert rendered["argv"] == ["/bin/echo", "--name=-x"]


def test_shell_nul_rejected() -> None:
    with pytest.raises(TemplateError, match="NUL"):
        render_shell_event(shell("/bin/echo", "{labels.host}"), {"host": "a\x00b"})


def test_shell_env_rendered() -> None:
    action = shell("/bin/env", env={"HOST": "{labels.host}"}, cwd="/tmp")

    rendered = render_shell_event(action, {"host": "h1"})

    assert rendered["env"] == {"HOST": "h1"}
    assert rendered["cwd"] == "/tmp"


def test_format_spec_rejected() -> None:
    with pytest.raises(TemplateError, match="format spec"):
        render_template("{title!r}", {"title": "x"})


def test_attribute_access_is_unknown_field() -> None:
    with pytest.raises(TemplateError, match="unknown template field"):
        render_template("{title.__class__}", {"title": "x"})


def test_secret_redacted_in_audit_render() -> None:
    http = action(
        url="http://127.0.0.1:8081/restart",
        headers={"Authorization": "Bearer {secrets.token}"},
        body=None,
    )
    fields = {**template_fields(make_event()), "secrets.token": REDACTED}

    assert render_http(http, fields)["headers"] == {
        "Authorization": f"Bearer {REDACTED}"
    }


def secret_runbook() -> Runbook:
    return Runbook.model_validate(
        {
            "name": "restart",
            "owner": "web",
            "trigger": {"labels": {"team": "web"}},
            "secrets": {"token": "RESTART_TOKEN"},
            "steps": [
                {
                    "name": "tell",
                    "action": {
                        "type": "notify",
                        "receivers": ["pager"],
                        "message": "x",
                    },
                }
            ],
        }
    )


def test_secret_read_from_environment() -> None:
    fields = secret_fields(secret_runbook(), {"RESTART_TOKEN": "s3cret"})

    assert fields == {"secrets.token": "s3cret"}


def test_missing_secret_names_variable() -> None:
    with pytest.raises(TemplateError, match="variable RESTART_TOKEN is not set"):
        secret_fields(secret_runbook(), {})


def test_secret_values_listed() -> None:
    fields = {"title": "x", "secrets.token": "s3cret"}
    redacted = {"title": "x", "secrets.token": REDACTED}

    assert secret_values(fields, redacted) == ["s3cret"]


def test_echoed_secret_redacted_in_output() -> None:
    output = {"stdout": "token=s3cret\n", "lines": ["s3cret"], "exit_code": 0}

    assert redact_values(output, ["s3cret"]) == {
        "stdout": f"token={REDACTED}\n",
        "lines": [REDACTED],
        "exit_code": 0,
    }


def test_secret_forms_cover_quoted_and_encoded() -> None:
    forms = secret_forms(["a b\n"])

    assert "a b\n" in forms
    assert "a b" in forms
    assert "a b\\n" in forms
    assert "a%20b%0A" in forms
    assert forms == sorted(forms, key=len, reverse=True)

"""Runbook HTTP actions rendered from an incident event."""

from __future__ import annotations

import re
from typing import Any

import pytest
from factories import make_event

from handlers.http_action import render_request, template_fields
from schemas.config import HttpAction

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

    with pytest.raises(ValueError, match="header 'X-Title' would contain a line"):
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

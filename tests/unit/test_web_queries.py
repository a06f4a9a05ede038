"""Validation of web view request bodies and filters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.deadletter import describe_validation_error
from streams.web.queries import CommandBody, IncidentFilter
from streams.web.silences_views import SilenceRequest


@pytest.mark.parametrize("actor", ["mallory\n[INFO] forged", "a\x00b", "\x1b[31mred"])
def test_actor_with_control_characters_rejected(actor: str) -> None:
    with pytest.raises(ValidationError):
        CommandBody(actor=actor)


def test_note_keeps_line_breaks() -> None:
    body = CommandBody(actor="erin", note="first line\nsecond line")
    assert body.note == "first line\nsecond line"


def test_note_with_escape_rejected() -> None:
    with pytest.raises(ValidationError):
        CommandBody(actor="erin", note="\x1b[2J")


def test_unicode_actor_accepted() -> None:
    assert CommandBody(actor="Zoë Ångström").actor == "Zoë Ångström"


def test_request_errors_name_request_not_class() -> None:
    with pytest.raises(ValidationError) as excinfo:
        IncidentFilter.model_validate({"severity": "urgent"})

    message = describe_validation_error(excinfo.value)

    assert message.startswith("invalid incident query: severity: ")
    assert "'urgent'" in message


def test_invalid_json_body_reported_without_bytes() -> None:
    with pytest.raises(ValidationError) as excinfo:
        CommandBody.model_validate_json(b"{nope")

    message = describe_validation_error(excinfo.value)

    assert message.startswith("invalid request body: (record): Invalid JSON")
    assert "bytes" not in message


def test_validator_message_without_pydantic_prefix() -> None:
    with pytest.raises(ValidationError) as excinfo:
        SilenceRequest.model_validate(
            {"matchers": ["service=api"], "duration": "-1h", "created_by": "alice"}
        )

    message = describe_validation_error(excinfo.value)

    assert "Value error" not in message
    assert "invalid duration '-1h': must not be negative" in message

"""Validation of web view request bodies and filters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.web.queries import CommandBody


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

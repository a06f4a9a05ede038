"""Label matchers of silences, windows and inhibition rules."""

from __future__ import annotations

import pytest

from schemas.silences import Matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("service=api", {"service": "api"}, True),
        ("service=api", {"service": "api-2"}, False),
        ("service!=api", {"service": "web"}, True),
        ("service=~api|web", {"service": "web"}, True),
        ("service=~api", {"service": "api-2"}, False),
        ("service!~api.*", {"service": "db"}, True),
        ("team=", {}, True),
        ("team!=", {"team": "ml"}, True),
    ],
)
def test_matcher_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


def test_doubled_equals_rejected() -> None:
    with pytest.raises(ValueError, match="the value starts with '='") as caught:
        Matcher.parse("service==api")
    assert "use service=api" in str(caught.value)


def test_quoted_value_may_start_with_equals() -> None:
    matcher = Matcher.parse('expr="=1"')

    assert matcher.value == "=1"
    assert matcher.matches({"expr": "=1"})


def test_invalid_regex_rejected() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher.parse("service=~(api")


def test_missing_operator_rejected() -> None:
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        Matcher.parse("service")

"""Operator patterns, compiled with RE2."""

from __future__ import annotations

import pytest

from schemas.patterns import PatternSet, compile_pattern
from schemas.rules import PatternRule
from schemas.silences import Matcher


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=api)api", "invalid perl operator"),
        (r"(a)\1", "invalid escape sequence"),
        ("(unclosed", "missing )"),
    ],
)
def test_unsupported_pattern_rejected(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        compile_pattern(pattern)

    message = str(caught.value)
    assert repr(pattern) in message
    assert reason in message
    assert "RE2 syntax" in message


def test_nested_quantifier_on_long_value() -> None:
    # Python's re takes about 2**n steps here, about 30 s at n = 30 on the
    # development machines. RE2 takes time linear in n.
    matcher = Matcher.parse("host=~(a+)+b")

    assert not matcher.matches({"host": "a" * 30})
    assert matcher.matches({"host": "a" * 30 + "b"})


def test_matcher_anchors_at_text_end() -> None:
    matcher = Matcher.parse("service=~api")

    assert matcher.matches({"service": "api"})
    assert not matcher.matches({"service": "api\n"})


def test_flags_and_named_groups() -> None:
    pattern = compile_pattern(r"(?i)disk (?P<device>sd[a-z])")
    found = pattern.search("DISK sdb failing")

    assert found is not None
    assert found.group("device") == "sdb"


def test_matcher_error_names_matcher() -> None:
    with pytest.raises(ValueError, match=r"matcher host=~: invalid regular"):
        Matcher.parse("host=~(?!db)")


def test_log_rule_rejects_lookahead() -> None:
    with pytest.raises(ValueError, match="RE2 syntax"):
        PatternRule(name="panic", regex="panic(?! test)")


def test_pattern_set_finds_each_match() -> None:
    patterns = PatternSet(["^kernel panic", "disk sd[a-z]", "(?i)oom"])

    assert patterns.search("kernel panic: disk sdb OOM") == {
        "^kernel panic",
        "disk sd[a-z]",
        "(?i)oom",
    }
    assert patterns.search("boot: kernel panic") == set()


def test_pattern_set_drops_duplicates() -> None:
    patterns = PatternSet(["panic", "panic"])

    assert patterns.patterns == ("panic",)
    assert patterns.search("panic") == {"panic"}


def test_empty_pattern_set_finds_nothing() -> None:
    assert PatternSet([]).search("anything") == frozenset()


def test_pattern_set_names_invalid_pattern() -> None:
    with pytest.raises(ValueError, match=r"'\(\?=x\)'"):
        PatternSet(["ok", "(?=x)"])

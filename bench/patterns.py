"""Pattern matching: the RE2 engine Tocsin uses against Python's re."""

from __future__ import annotations

import re

from bench.bgl import SampleNotFoundError, load_rules, read_sample
from bench.micro import median_seconds
from bench.report import Rate, Row
from schemas.patterns import PatternSet, compile_pattern

# `(a+)+b` against runs of `a`: Python's re backtracks through about 2**n
# ways to split the run before it fails, RE2 reads the run once.
NESTED_PATTERN = "^(?:(a+)+b)$"
NESTED_LENGTH = 20
NESTED_VALUES = 5


def bench_log_patterns(repeats: int) -> list[Row]:
    """Time the BGL example rules' regexes on the BGL sample, RE2 against re.

    The detect stage searches a log line with one PatternSet of every rule's
    regex. Searching with each compiled RE2 pattern is shown too, because
    the matchers of silences and inhibition rules work that way. Raises
    SampleNotFoundError when the Loghub sample is missing.
    """
    messages = [labelled.line.message for labelled in read_sample()]
    patterns = [rule.regex for rule in load_rules() if rule.regex is not None]
    with_re2 = [compile_pattern(pattern) for pattern in patterns]
    with_re = [re.compile(pattern) for pattern in patterns]

    def search_re2() -> int:
        return sum(
            1
            for message in messages
            for compiled in with_re2
            if compiled.search(message) is not None
        )

    def search_re() -> int:
        return sum(
            1
            for message in messages
            for compiled in with_re
            if compiled.search(message) is not None
        )

    pattern_set = PatternSet(patterns)

    def search_set() -> int:
        return sum(len(pattern_set.search(message)) for message in messages)

    if not search_set() == search_re2() == search_re():
        raise AssertionError("RE2 and re found different matches on the sample")
    lines = len(messages)
    re_rate = Rate(None, lines / median_seconds(search_re, repeats))
    case = f"{len(patterns)} BGL rule regexes, {lines:,} lines"
    return [
        Row(
            benchmark="pattern matching",
            case=f"{case}, PatternSet",
            measured=Rate(None, lines / median_seconds(search_set, repeats)),
            baseline_name="Python re, each regex",
            baseline=re_rate,
        ),
        Row(
            benchmark="pattern matching",
            case=f"{case}, RE2 each regex",
            measured=Rate(None, lines / median_seconds(search_re2, repeats)),
            baseline_name="Python re, each regex",
            baseline=re_rate,
        ),
    ]


def bench_nested_quantifier(repeats: int) -> Row:
    """Time `(a+)+b` on values of NESTED_LENGTH `a`s, RE2 against re."""
    values = ["a" * NESTED_LENGTH] * NESTED_VALUES
    with_re2 = compile_pattern(NESTED_PATTERN)
    with_re = re.compile(NESTED_PATTERN)

    def search_re2() -> int:
        return sum(1 for value in values if with_re2.search(value) is not None)

    def search_re() -> int:
        return sum(1 for value in values if with_re.search(value) is not None)

    return Row(
        benchmark="pattern matching",
        case=f"(a+)+b, {NESTED_LENGTH}-character values",
        measured=Rate(None, len(values) / median_seconds(search_re2, repeats)),
        baseline_name="Python re",
        baseline=Rate(None, len(values) / median_seconds(search_re, repeats)),
    )


def bench_patterns(repeats: int) -> tuple[list[Row], list[str]]:
    """Return the pattern rows and notes; the BGL row is skipped without Loghub."""
    notes = []
    rows = []
    try:
        rows.extend(bench_log_patterns(repeats))
    except SampleNotFoundError as exc:
        notes.append(f"pattern matching on BGL: skipped ({exc}).")
    rows.append(bench_nested_quantifier(repeats))
    notes.append(
        "pattern matching: log lines/s (BGL) or values/s ((a+)+b) in the "
        "samples/s column; every regex is searched in every line."
    )
    return rows, notes

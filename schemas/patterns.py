"""Regular expressions from the configuration and from requests, run on RE2.

Silences, inhibition rules, runbook triggers and log rules take patterns from
operators, and they run on every alert label or log line. RE2 matches in time
linear in the input, so a pattern like `(a+)+b` cannot stall a worker the way
a backtracking engine can. RE2 is also the syntax Alertmanager's matchers use.
It has no lookaround and no backreferences.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol

import re2

# Memory RE2 may use for one compiled pattern, the same as RE2's own default.
# A pattern that needs more is rejected as too large.
MAX_PATTERN_MEMORY = 8 << 20

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = MAX_PATTERN_MEMORY


class Match(Protocol):
    def group(self, index: int | str = 0) -> str | None: ...


class Pattern(Protocol):
    """A compiled pattern: the subset of `re.Pattern` that Tocsin calls."""

    pattern: str

    def search(self, text: str) -> Match | None: ...

    def fullmatch(self, text: str) -> Match | None: ...


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Pattern:
    """Compile `pattern` with RE2, raising ValueError naming what is wrong."""
    try:
        compiled: Pattern = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(
            f"invalid regular expression {pattern!r}: {reason} (patterns use "
            "RE2 syntax, which has no lookaround and no backreferences)"
        ) from exc
    return compiled


class PatternSet:
    """Patterns compiled into one RE2 set, so one pass finds all that match.

    Each call into the RE2 binding costs a few microseconds, so one set
    search of a log line is about ten times faster than searching it with
    each of the 12 BGL example regexes (see docs/benchmarks.md).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(patterns))
        self._set: Any = None
        if not self.patterns:
            return
        compiled = re2.Set.SearchSet(_OPTIONS)
        for pattern in self.patterns:
            # Each pattern alone first, so an error names the one that failed.
            compile_pattern(pattern)
            compiled.Add(pattern)
        compiled.Compile()
        self._set = compiled

    def search(self, text: str) -> frozenset[str]:
        """Return the patterns that match somewhere in `text`."""
        if self._set is None:
            return frozenset()
        found = self._set.Match(text)
        if not found:
            return frozenset()
        return frozenset(self.patterns[index] for index in found)

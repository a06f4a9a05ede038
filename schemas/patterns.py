"""Regular expressions from the configuration and from requests, run on RE2.

Silences, inhibition rules, runbook triggers and log rules take patterns from
operators, and they run on every alert label or log line. RE2 matches in time
linear in the input, so a pattern like `(a+)+b` cannot stall a worker the way
a backtracking engine can. RE2 is also the syntax Alertmanager's matchers use.
It has no lookaround and no backreferences.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

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

"""Applied sample ids, which let `analytics` count each sample once, and their expiry.

A key is `<dimension>|<sample id>` and its value is the sample's opened time
in Unix seconds, the time that places it in windows. Values written before
the time was stored are `True`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.analytics.metrics import WindowSpec


def applied_key(dimension: str, sample_id: str) -> str:
    return f"{dimension}|{sample_id}"


def dimension_of(key: str) -> str:
    """Return the dimension of an applied key, the key of its sample's message.

    A dimension may contain `|` (a service name can), but a sample id cannot:
    it is built from an incident id, whose group key is a hex digest.
    """
    return key.rpartition("|")[0]


def applied_horizon_s(retention_s: float, windows: Iterable[WindowSpec]) -> float:
    """Return the age of an opened time past which every window holding it expired.

    A window holding time t ends at most `size_s` after t. faust-streaming
    0.15 drops a window once the time its window compares against (the
    pipeline clock here) passes its end by the table's `expires` (here
    `retention_s` plus `size_s`) and up to one `step_s` more.
    """
    return retention_s + max(2 * spec.size_s + spec.step_s for spec in windows)


@dataclass(frozen=True)
class AppliedPruning:
    """Keys to delete, and keys to stamp with the current time because they lack one."""

    expired: list[str] = field(default_factory=list)
    undated: list[str] = field(default_factory=list)


def prune_applied(
    entries: Iterable[tuple[str, Any]], now_s: float, horizon_s: float, limit: int
) -> AppliedPruning:
    """Pick the applied ids to forget at `now_s`: those opened over `horizon_s` ago.

    A redelivered sample that old lands only in expired windows, so counting
    it again changes no window that is kept. An id without a time gets
    `now_s`, so it expires one horizon later. At most `limit` keys are
    listed in all, the oldest first.
    """
    expired: list[tuple[float, str]] = []
    undated: list[str] = []
    for key, value in entries:
        if isinstance(value, bool) or not isinstance(value, int | float):
            undated.append(key)
        elif now_s - value > horizon_s:
            expired.append((value, key))
    expired.sort()
    picked = [key for _, key in expired[:limit]]
    return AppliedPruning(picked, undated[: limit - len(picked)])

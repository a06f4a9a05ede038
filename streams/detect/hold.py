"""Pending and firing state for stateful rules, with `for` and hysteresis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.records import AlertStatus


@dataclass(frozen=True)
class Transition:
    """A rule's change of state for one key, in Unix seconds of event time."""

    status: AlertStatus
    starts_at: float
    at: float
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class HoldState:
    """The state of one key against one rule's condition.

    `pending_since` is the start of the current breach, which is also the
    start of impact. `clear_since` is when the condition last stopped holding
    while the rule fired; the rule resolves once that lasts `keep_firing_for`.
    """

    pending_since: float | None = None
    firing: bool = False
    clear_since: float | None = None
    last_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pending_since": self.pending_since,
            "firing": self.firing,
            "clear_since": self.clear_since,
            "last_at": self.last_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HoldState:
        return cls(
            pending_since=data.get("pending_since"),
            firing=bool(data.get("firing")),
            clear_since=data.get("clear_since"),
            last_at=data.get("last_at"),
        )


def hold(
    state: HoldState,
    at: float,
    breached: bool,
    for_s: float = 0.0,
    keep_firing_for_s: float = 0.0,
    breach_started: float | None = None,
) -> Transition | None:
    """Apply one evaluation of a condition at `at` and return the transition, if any.

    The rule fires once the condition has held for `for_s` and resolves once
    it has not held for `keep_firing_for_s`. `breach_started` backdates the
    start of a breach that began before it was observed, such as an absence.
    """
    if breached:
        state.clear_since = None
        if state.pending_since is None:
            state.pending_since = at if breach_started is None else breach_started
        if not state.firing and at - state.pending_since >= for_s:
            state.firing = True
            return Transition(AlertStatus.FIRING, state.pending_since, at)
        return None
    if not state.firing:
        state.pending_since = None
        return None
    if state.clear_since is None:
        state.clear_since = at
    if at - state.clear_since < keep_firing_for_s:
        return None
    started = state.pending_since if state.pending_since is not None else at
    state.pending_since = None
    state.firing = False
    state.clear_since = None
    return Transition(AlertStatus.RESOLVED, started, at)

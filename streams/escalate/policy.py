"""Escalation decisions as pure functions over a per-incident plan."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from schemas.config import Config, EscalationLevel
from schemas.records import EventKind, IncidentEvent

CONSOLE = "console"

# Transitions sent to every receiver already notified of the incident.
FOLLOW_UP_KINDS = frozenset({EventKind.ACKNOWLEDGED, EventKind.RESOLVED})


class LevelPlan(BaseModel):
    delay_s: float
    targets: list[str]


class Plan(BaseModel):
    """The policy an incident follows, as it was when the incident opened."""

    incident_id: str
    group_key: str
    opened_at: float
    levels: list[LevelPlan]
    level: int = 0
    notified: list[str] = Field(default_factory=list)
    next_due: float | None = None
    send_resolved: bool = True
    # A notification a silence, window or inhibition held back, and the
    # labels to check again for its release.
    held: bool = False
    holds: int = 0
    # Repeats of the notification while the incident stays open and
    # unacknowledged; 0 turns them off.
    repeat_interval_s: float = 0.0
    repeats: int = 0
    last_notified_at: float | None = None
    acknowledged: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    # An incident whose alerts flap notifies no one until it is stable.
    flapping: bool = False

    def schedule_next(self) -> None:
        following = self.level + 1
        if following < len(self.levels):
            self.next_due = self.opened_at + self.levels[following].delay_s
        else:
            self.next_due = None


def policy_levels(config: Config, policy: str) -> list[EscalationLevel]:
    """Return a policy's levels, or a single console level if none is configured."""
    configured = config.policies.get(policy)
    if configured is None:
        return [EscalationLevel(delay=timedelta(0), targets=[CONSOLE])]
    return configured.levels


def plan_for(
    event: IncidentEvent,
    levels: list[EscalationLevel],
    start: datetime | None = None,
    delays_s: list[float] | None = None,
) -> Plan:
    """Return the plan of an incident whose policy starts at `start` (its opening).

    `delays_s`, when given, are the levels' delays as correlate applies them,
    which include the route's group_wait. A first level that is not due at
    once is pending: the opening notifies no one until it is reached.
    """
    if delays_s is None or len(delays_s) != len(levels):
        delays_s = [level.delay.total_seconds() for level in levels]
    plan = Plan(
        incident_id=event.incident_id,
        group_key=event.group_key,
        opened_at=(start or event.opened_at).timestamp(),
        levels=[
            LevelPlan(delay_s=delay, targets=level.targets)
            for level, delay in zip(levels, delays_s, strict=True)
        ],
        level=0 if delays_s[0] <= 0 else -1,
    )
    plan.schedule_next()
    return plan


def receivers_for(plan: Plan, event: IncidentEvent, muted: bool = False) -> list[str]:
    """Return the receivers to notify of `event`, updating the plan in place.

    A muted incident still moves through its levels, but no receiver is
    notified. Acknowledgements and resolves always reach every receiver that
    was notified of the incident, muted or not, so a resolve gets through a
    silence.
    """
    receivers = _receivers(plan, event, muted)
    if receivers and event.kind not in FOLLOW_UP_KINDS:
        plan.last_notified_at = event.at.timestamp()
    return receivers


def _receivers(plan: Plan, event: IncidentEvent, muted: bool) -> list[str]:
    if event.kind is EventKind.REOPENED:
        return _reach_level(plan, 0, muted)
    if event.kind is EventKind.OPENED:
        return [] if plan.level < 0 else _reach_level(plan, 0, muted)
    if event.kind is EventKind.ESCALATED:
        return _reach_level(plan, event.level, muted)
    if event.kind is EventKind.REPEATED:
        if plan.held or plan.flapping or plan.acknowledged or not plan.notified:
            return []
        plan.repeats += 1
        return list(plan.notified)
    if event.kind is EventKind.FLAPPING:
        plan.flapping = True
        return []
    if event.kind is EventKind.STABILIZED:
        plan.flapping = False
        # An alert that settled clear is resolved next: nobody is paged.
        if not plan.held or plan.level < 0 or event.details.get("firing") == 0:
            return []
        return _reach_level(plan, plan.level, muted)
    if event.kind is EventKind.RELEASED:
        if not plan.held or plan.level < 0 or plan.flapping:
            return []
        plan.held = False
        return _reach_level(plan, plan.level, False)
    if event.kind is EventKind.GROUP_UPDATED:
        if plan.held or plan.flapping:
            return []
        return list(plan.notified)
    if event.kind in FOLLOW_UP_KINDS:
        plan.next_due = None
        plan.held = False
        plan.acknowledged = True
        if event.kind is EventKind.RESOLVED and not plan.send_resolved:
            return []
        return list(plan.notified)
    return []


def _reach_level(plan: Plan, level: int, muted: bool) -> list[str]:
    if level >= len(plan.levels):
        return []
    # A redelivered opened or escalated event must not move the plan back.
    if level >= plan.level:
        plan.level = level
        plan.schedule_next()
    if muted:
        if not plan.held:
            plan.holds += 1
        plan.held = True
        return []
    plan.held = False
    targets = plan.levels[level].targets
    plan.notified = [*plan.notified, *(t for t in targets if t not in plan.notified)]
    return list(targets)


def repeat_due(plan: Plan, now: float) -> bool:
    """Return whether an open, unacknowledged incident is due a repeat at `now`."""
    if plan.repeat_interval_s <= 0 or plan.last_notified_at is None:
        return False
    if plan.held or plan.acknowledged or not plan.notified:
        return False
    return now >= plan.last_notified_at + plan.repeat_interval_s


def due_escalation(plan: Plan, now: float) -> int | None:
    """Return the level an incident must escalate to at `now`, if any."""
    if plan.next_due is None or plan.next_due > now:
        return None
    return plan.level + 1

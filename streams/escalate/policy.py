"""Escalation decisions as pure functions over a per-incident plan."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from schemas.config import Config, EscalationLevel
from schemas.oncall import EscalationPolicy, Schedule, User
from schemas.records import EventKind, IncidentEvent
from streams.escalate.schedules import resolve_targets

CONSOLE = "console"

# Transitions sent to every receiver already notified of the incident.
FOLLOW_UP_KINDS = frozenset({EventKind.ACKNOWLEDGED, EventKind.RESOLVED})
# Transitions that change an incident's state or level, which a posted
# incident message shows, so they update it even when it is not their target.
MESSAGE_UPDATE_KINDS = frozenset(
    {
        EventKind.ESCALATED,
        EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED,
        EventKind.REOPENED,
        EventKind.ACK_TIMED_OUT,
        EventKind.RELEASED,
    }
)

# Transitions that page a level, and so are held while the incident is muted.
PAGING_KINDS = frozenset(
    {
        EventKind.OPENED,
        EventKind.REOPENED,
        EventKind.ESCALATED,
        EventKind.ACK_TIMED_OUT,
        EventKind.STABILIZED,
    }
)
# Transitions that remind the receivers already paged, and so are held while
# the incident is muted or flapping too.
REMINDER_KINDS = frozenset({EventKind.REPEATED, EventKind.GROUP_UPDATED})
# Every transition a silence, maintenance window, inhibition or flapping
# holds. Acknowledgements and resolves are never held.
MUTABLE_KINDS = PAGING_KINDS | REMINDER_KINDS


class LevelPlan(BaseModel):
    """One step of a plan: its delay after the plan's start and its target keys."""

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
    # A repeat fell due while the incident was muted or flapping: the next
    # one waits for the mute to end.
    repeat_held: bool = False
    last_notified_at: float | None = None
    acknowledged: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    # An incident whose alerts flap notifies no one until it is stable.
    flapping: bool = False
    # Reasons the targets of the step the last event reached led to no receiver.
    unresolved: list[str] = Field(default_factory=list)
    # An acknowledgement returns to triggered at `ack_due` unless the
    # incident is resolved first. `ack_seq` is the acknowledgement's seq.
    ack_timeout_s: float = 0.0
    ack_due: float | None = None
    ack_seq: int | None = None
    # The incident-events partition that wrote the plan, so only the worker
    # that owns that partition acts on its deadlines.
    partition: int | None = None

    def schedule_next(self) -> None:
        following = self.level + 1
        if following < len(self.levels):
            self.next_due = self.opened_at + self.levels[following].delay_s
        else:
            self.next_due = None


def resolved_policy(config: Config, policy: str) -> EscalationPolicy:
    """Return a configured policy, or one console level if none is configured."""
    configured = config.policies.get(policy)
    if configured is None:
        return EscalationPolicy.model_validate({"levels": [{"targets": [CONSOLE]}]})
    return configured


def policy_levels(config: Config, policy: str) -> list[EscalationLevel]:
    """Return a policy's levels, or a single console level if none is configured."""
    return resolved_policy(config, policy).levels


def step_levels(policy: EscalationPolicy) -> list[EscalationLevel]:
    """Return the level of each step an incident can take through `policy`.

    A step is one level in one run of the levels: `repeat` adds whole runs.
    A low-urgency policy has one step, its first level.
    """
    if policy.urgency == "low":
        return policy.levels[:1]
    return policy.levels * (policy.repeat + 1)


def step_delays_s(
    policy: EscalationPolicy, base: datetime, wait_s: float
) -> list[float]:
    """Return when each step of `policy` is due, in seconds after `base`.

    `wait_s` (the route's group_wait) delays every step. A run of the
    levels starts `repeat_after` after the last level of the run before.
    Outside `business_hours` a step after the first waits for the next start
    of the hours, and the steps after it keep their delays from there.
    """
    steps = step_levels(policy)
    count = len(policy.levels)
    run_s = (policy.levels[-1].delay + policy.repeat_after).total_seconds()
    nominal = [
        wait_s + (index // count) * run_s + level.delay.total_seconds()
        for index, level in enumerate(steps)
    ]
    hours = policy.business_hours
    if hours is None:
        return nominal
    due = [base.timestamp() + nominal[0]]
    for index in range(1, len(nominal)):
        earliest = due[-1] + nominal[index] - nominal[index - 1]
        start = hours.next_start(datetime.fromtimestamp(earliest, UTC))
        due.append(start.timestamp())
    return [at - base.timestamp() for at in due]


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
            LevelPlan(delay_s=delay, targets=level.target_keys)
            for level, delay in zip(levels, delays_s, strict=True)
        ],
        level=0 if delays_s[0] <= 0 else -1,
    )
    plan.schedule_next()
    return plan


@dataclass(frozen=True)
class Directory:
    """The users and schedules that user and schedule targets resolve through."""

    users: dict[str, User] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)


def receivers_for(
    plan: Plan,
    event: IncidentEvent,
    muted: bool = False,
    directory: Directory | None = None,
) -> list[str]:
    """Return the receivers to notify of `event`, updating the plan in place.

    A muted incident still moves through its levels, but no receiver is
    notified. Acknowledgements and resolves always reach every receiver that
    was notified of the incident, muted or not, so a resolve gets through a
    silence. User and schedule targets resolve through `directory` at the
    event's time.
    """
    plan.unresolved = []
    receivers = _receivers(plan, event, muted, directory or Directory())
    if receivers and event.kind not in FOLLOW_UP_KINDS:
        plan.last_notified_at = event.at.timestamp()
    if event.kind is EventKind.ACKNOWLEDGED and plan.ack_timeout_s > 0:
        plan.ack_due = event.at.timestamp() + plan.ack_timeout_s
        plan.ack_seq = event.seq
    return receivers


def _receivers(
    plan: Plan, event: IncidentEvent, muted: bool, directory: Directory
) -> list[str]:
    if event.kind in {EventKind.REOPENED, EventKind.ACK_TIMED_OUT}:
        return _reach_level(plan, 0, muted, event.at, directory)
    if event.kind is EventKind.OPENED:
        if plan.level < 0:
            return []
        return _reach_level(plan, 0, muted, event.at, directory)
    if event.kind is EventKind.ESCALATED:
        return _reach_level(plan, event.level, muted, event.at, directory)
    if event.kind is EventKind.REPEATED:
        if plan.held or plan.acknowledged or not plan.notified:
            return []
        # A held repeat still counts, so the next one is a new request.
        plan.repeats += 1
        plan.repeat_held = muted or plan.flapping
        if plan.repeat_held:
            return []
        return list(plan.notified)
    if event.kind is EventKind.FLAPPING:
        plan.flapping = True
        return []
    if event.kind is EventKind.STABILIZED:
        plan.flapping = False
        # An alert that settled clear is resolved next, so no one is paged.
        if not plan.held or plan.level < 0 or event.details.get("firing") == 0:
            return []
        return _reach_level(plan, plan.level, muted, event.at, directory)
    if event.kind is EventKind.RELEASED:
        if not plan.held or plan.level < 0 or plan.flapping:
            return []
        plan.held = False
        return _reach_level(plan, plan.level, False, event.at, directory)
    if event.kind is EventKind.GROUP_UPDATED:
        if muted or plan.held or plan.flapping:
            return []
        return list(plan.notified)
    if event.kind in FOLLOW_UP_KINDS:
        plan.next_due = None
        plan.held = False
        plan.acknowledged = True
        if event.kind is EventKind.RESOLVED:
            plan.ack_due = None
        if event.kind is EventKind.RESOLVED and not plan.send_resolved:
            return []
        return list(plan.notified)
    return []


def _reach_level(
    plan: Plan, level: int, muted: bool, at: datetime, directory: Directory
) -> list[str]:
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
    targets, plan.unresolved = resolve_targets(
        plan.levels[level].targets, at, directory.users, directory.schedules
    )
    plan.notified = [*plan.notified, *(t for t in targets if t not in plan.notified)]
    return targets


def message_updates(
    plan: Plan,
    event: IncidentEvent,
    receivers: list[str],
    message_receivers: Collection[str],
    muted: bool = False,
) -> list[str]:
    """Return the receivers whose incident message `event` updates without paging.

    These are the `message_receivers` (Slack receivers) notified earlier that
    `receivers`, the targets of `event`, leave out. A muted transition and a
    resolve the route does not notify update nothing.
    """
    if event.kind not in MESSAGE_UPDATE_KINDS or muted:
        return []
    if event.kind is EventKind.RESOLVED and not plan.send_resolved:
        return []
    return [
        receiver
        for receiver in plan.notified
        if receiver in message_receivers and receiver not in receivers
    ]


def hold_reason(
    plan: Plan, event: IncidentEvent, mute: dict[str, str] | None
) -> dict[str, str] | None:
    """Return why `event` notifies no one, or None if it is not held.

    `mute` is the silence, maintenance window or inhibition that mutes the
    incident's labels at the event's time, if any. A flapping incident holds
    back every notifying transition but its stabilization. A reminder (a repeat
    or group update) is only held when it would reach someone: a plan whose
    page is held or that paged no one yet sends it to no one anyway.
    """
    if event.kind not in MUTABLE_KINDS:
        return None
    if event.kind in REMINDER_KINDS and (plan.held or not plan.notified):
        return None
    if mute is not None:
        return mute
    if plan.flapping and event.kind is not EventKind.STABILIZED:
        return {"reason": "flapping"}
    return None


def repeat_due(plan: Plan, now: float, muted: bool = False) -> bool:
    """Return whether an open, unacknowledged incident is due a repeat at `now`.

    `muted` is whether a silence, maintenance window or inhibition mutes the
    incident now. A due repeat is requested even while muted, so its hold is
    recorded, but once one is held the next waits until the mute ends and
    then goes out at once.
    """
    if plan.repeat_interval_s <= 0 or plan.last_notified_at is None:
        return False
    if plan.held or plan.acknowledged or not plan.notified:
        return False
    if plan.repeat_held and (muted or plan.flapping):
        return False
    return now >= plan.last_notified_at + plan.repeat_interval_s


def ack_timed_out(plan: Plan, now: float) -> bool:
    """Return whether the incident's acknowledgement has timed out at `now`."""
    return plan.ack_due is not None and plan.ack_seq is not None and now >= plan.ack_due


def due_escalation(plan: Plan, now: float) -> int | None:
    """Return the level an incident must escalate to at `now`, if any."""
    if plan.next_due is None or plan.next_due > now:
        return None
    return plan.level + 1

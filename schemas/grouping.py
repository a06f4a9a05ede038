"""Per-route grouping settings beyond Alertmanager's: flapping detection."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from schemas.durations import Duration
from schemas.rules import Strict

# PagerDuty's services API accepts auto-pause timeouts of 120, 180, 300, 600
# and 900 s; any pause within that range is accepted here.
PAUSE_MIN = timedelta(seconds=120)
PAUSE_MAX = timedelta(seconds=900)


class Flapping(Strict):
    """When an alert counts as flapping, and when it is stable again.

    An alert flaps once it has changed state (firing to resolved or back)
    more than `changes` times within `window`. Its incident then stays open
    and notifies no one until the alert has kept one state for `hold_down`
    and at least `pause` has passed since the flapping began.
    """

    changes: int = Field(default=4, ge=2, le=1000)
    window: Duration = timedelta(minutes=10)
    hold_down: Duration = timedelta(minutes=5)
    pause: Duration = timedelta(minutes=5)

    @field_validator("window", "hold_down")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be longer than 0s; got {value.total_seconds():g}s")
        return value

    @field_validator("pause")
    @classmethod
    def _pause_range(cls, value: timedelta) -> timedelta:
        if not PAUSE_MIN <= value <= PAUSE_MAX:
            raise ValueError(
                f"pause must be between 120s and 900s; got {value.total_seconds():g}s"
            )
        return value

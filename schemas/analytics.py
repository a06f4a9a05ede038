"""Response targets of the configuration file: SLA levels and impact weights."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator

from schemas.durations import Duration
from schemas.rules import Strict

DEFAULT_SEVERITY_WEIGHTS = {"critical": 5.0, "high": 4.0, "medium": 3.0, "low": 2.0}


class Targets(Strict):
    """Response targets. An MTTA or MTTR above its `_alert` level raises an alert.

    SLA compliance is the share of incidents acknowledged within `mtta` and
    resolved within `mttr`. The impact score weighs each resolved incident by
    its severity's weight (`info` and any severity left out weigh 1).
    """

    mtta: Duration = timedelta(minutes=5)
    mtta_alert: Duration = timedelta(minutes=10)
    mttr: Duration = timedelta(minutes=60)
    mttr_alert: Duration = timedelta(minutes=120)
    recurrence_rate: float = Field(default=0.05, ge=0, le=1)
    false_positive_rate: float = Field(default=0.10, ge=0, le=1)
    severity_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_WEIGHTS)
    )

    @model_validator(mode="after")
    def _alert_levels_above_targets(self) -> Self:
        for name in ("mtta", "mttr"):
            target = getattr(self, name)
            alert = getattr(self, f"{name}_alert")
            if alert < target:
                raise ValueError(
                    f"{name}_alert ({alert}) must not be below {name} ({target})"
                )
        allowed = {"critical", "high", "medium", "low", "info"}
        for severity, weight in self.severity_weights.items():
            if severity not in allowed:
                raise ValueError(
                    f"invalid severity {severity!r} in severity_weights: "
                    f"allowed {', '.join(sorted(allowed))}"
                )
            if weight < 0:
                raise ValueError(
                    f"invalid weight {weight} for {severity!r}: must be 0 or more"
                )
        return self

    def weight(self, severity: str) -> float:
        return self.severity_weights.get(severity, 1.0)

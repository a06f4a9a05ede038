"""Detection rules of the configuration file, one model per rule type.

Metric rules are evaluated per series and log rules per key (the source plus
the `group_by` fields), always on event time. `keep_firing_for` is the
hysteresis before a firing rule resolves, as Prometheus defines it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from schemas.durations import Duration
from schemas.patterns import compile_pattern
from schemas.records import Severity


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _valid_regex(value: str) -> str:
    compile_pattern(value)
    return value


class RuleBase(Strict):
    """Fields every rule has: identity, selection and what its alerts carry."""

    name: str = Field(min_length=1)
    match: dict[str, str] = Field(default_factory=dict)
    severity: Severity = Severity.MEDIUM
    auto_resolve: bool = False
    notify: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    keep_firing_for: Duration = timedelta(0)


class ThresholdRule(RuleBase):
    """Fire when a series stays above or below a bound for `for_`.

    It resolves once the series has stayed inside the bound for
    `keep_firing_for`; with the default of zero, at the first such sample.
    """

    type: Literal["threshold"] = "threshold"
    op: Literal["above", "below"] = "above"
    threshold: float
    for_: Duration = Field(default=timedelta(0), alias="for")

    def breached(self, value: float) -> bool:
        if self.op == "above":
            return value > self.threshold
        return value < self.threshold


class ChangeRule(RuleBase):
    """Fire when the mean over `window` moves by `ratio` against the window before.

    The reference is the `reference` span just before the current window. The
    rule is inactive until the series has covered both spans once.
    """

    type: Literal["change"]
    window: Duration
    reference: Duration
    ratio: float = Field(gt=1.0)
    direction: Literal["up", "down", "both"] = "up"
    min_samples: int = Field(default=1, ge=1)


class AbsenceRule(RuleBase):
    """Fire when a series has fewer than `min_samples` samples within `window`.

    `expect` lists series that must report even if they never have. Any other
    series is watched from its first sample on. A series that reports enough
    samples again resolves the alert.
    """

    type: Literal["absence"]
    window: Duration
    min_samples: int = Field(default=1, ge=1)
    expect: list[str] = Field(default_factory=list)
    expect_labels: dict[str, str] = Field(
        default_factory=dict, description="labels of alerts for expected series"
    )


class AnomalyRule(RuleBase):
    """Fire when the anomaly detector scores a sample at or above `threshold`."""

    type: Literal["anomaly"]
    # The detector scores the samples it alerts on at 0.5 or more.
    threshold: float = Field(default=0.5, gt=0.0, le=1.0)


class BurnWindow(Strict):
    """One multi-window alert: both windows must burn at `factor` or faster."""

    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnWindow:
        if self.short >= self.long:
            raise ValueError(
                f"short window {self.short} must be shorter than long {self.long}"
            )
        return self


def _workbook_windows() -> list[BurnWindow]:
    """Return the page-level pairs of the SRE workbook: 14.4x (1h, 5m), 6x (6h, 30m)."""
    return [
        BurnWindow(long=timedelta(hours=1), short=timedelta(minutes=5), factor=14.4),
        BurnWindow(long=timedelta(hours=6), short=timedelta(minutes=30), factor=6.0),
    ]


class BurnRateRule(RuleBase):
    """Fire when an error-ratio series burns the error budget too fast.

    Each sample is the share of failed requests in its interval, between 0 and
    1. The budget is `1 - objective`; a window burns at the mean error ratio
    divided by the budget. The rule fires while any pair in `windows` has both
    its windows at or above its factor, and resolves when none has.
    """

    type: Literal["burn_rate"]
    objective: float = Field(gt=0.0, lt=1.0)
    windows: list[BurnWindow] = Field(default_factory=_workbook_windows, min_length=1)


def _rule_type(value: Any, default: str = "threshold") -> str:
    if isinstance(value, dict):
        return str(value.get("type", default))
    return str(getattr(value, "type", default))


def _log_rule_type(value: Any) -> str:
    return _rule_type(value, default="pattern")


MetricRule = Annotated[
    Annotated[ThresholdRule, Tag("threshold")]
    | Annotated[ChangeRule, Tag("change")]
    | Annotated[AbsenceRule, Tag("absence")]
    | Annotated[AnomalyRule, Tag("anomaly")]
    | Annotated[BurnRateRule, Tag("burn_rate")],
    Discriminator(_rule_type),
]


class LogRuleBase(RuleBase):
    """Fields of every log rule: which lines count, and how keys are formed."""

    regex: str | None = None
    levels: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(
        default_factory=dict, description="line fields that must equal these values"
    )
    group_by: list[str] = Field(
        default_factory=list, description="line fields or labels that form the key"
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _valid_regex(value)


class PatternRule(LogRuleBase):
    """Fire on a line whose message matches `regex`; resolve after a quiet spell.

    The alert resolves once no matching line has arrived for
    `keep_firing_for`, which defaults to five minutes.
    """

    type: Literal["pattern"] = "pattern"
    regex: str | None = Field(default=None)
    keep_firing_for: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _needs_regex(self) -> PatternRule:
        if self.regex is None:
            raise ValueError(f"pattern rule {self.name!r} needs a regex")
        return self


class FrequencyRule(LogRuleBase):
    """Fire when at least `min_count` matching lines arrive within `window`, per key.

    It resolves when the count within the window falls below `min_count`.
    """

    type: Literal["frequency"]
    window: Duration
    min_count: int = Field(ge=1)


class NewTermRule(LogRuleBase):
    """Fire when `field` takes a value not seen within `lookback`, per key.

    Values seen during the first `lookback` after the rule starts only train
    it. The alert resolves after `keep_firing_for`, five minutes by default.
    """

    type: Literal["new_term"]
    field: str = Field(min_length=1)
    lookback: Duration
    keep_firing_for: Duration = timedelta(minutes=5)


class CardinalityRule(LogRuleBase):
    """Fire when the distinct values of `field` within `window` pass a bound."""

    type: Literal["cardinality"]
    field: str = Field(min_length=1)
    window: Duration
    op: Literal["above", "below"] = "above"
    threshold: int = Field(ge=0)


LogRule = Annotated[
    Annotated[PatternRule, Tag("pattern")]
    | Annotated[FrequencyRule, Tag("frequency")]
    | Annotated[NewTermRule, Tag("new_term")]
    | Annotated[CardinalityRule, Tag("cardinality")],
    Discriminator(_log_rule_type),
]


class Rules(Strict):
    """Every detection rule, and how late a sample may arrive and still count."""

    allowed_lateness: Duration = Field(
        default=timedelta(0),
        description="how far behind a series' newest sample a sample may arrive "
        "and still be applied in order; later ones are dead-lettered",
    )
    metrics: list[MetricRule] = Field(default_factory=list)
    logs: list[LogRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Rules:
        names = [r.name for r in self.metrics] + [r.name for r in self.logs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique, repeated: {duplicates}")
        return self


__all__ = [
    "AbsenceRule",
    "AnomalyRule",
    "BurnRateRule",
    "CardinalityRule",
    "ChangeRule",
    "FrequencyRule",
    "LogRule",
    "MetricRule",
    "NewTermRule",
    "PatternRule",
    "Rules",
    "Strict",
    "ThresholdRule",
]

"""In-process benchmarks: threshold rule evaluation and record parsing."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.data import series_labels
from bench.report import Rate, Row
from schemas.records import MetricBatch, MetricSample
from schemas.rules import ThresholdRule
from streams.detect.hold import HoldState
from streams.detect.metric_rules import step, step_threshold

# Passengers per 30 minutes. Busy evenings in nyc_taxi exceed it for an hour
# or more, so a pass over the series fires and resolves the rule many times.
RULE_THRESHOLD = 25_000.0
RULE_FOR = "1h"
PARSE_BATCH_SIZES = (1, 10, 100)
# Distinct payloads per batch size, cycled so no single payload dominates.
PARSE_DISTINCT_PAYLOADS = 100


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Run `run` once to warm up, then return the median wall time of `repeats` runs."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_transitions(series: list[MetricSample]) -> int:
    """Return how many alerts one pass of the benchmark rule over `series` causes."""
    rule = benchmark_rule()
    state = HoldState()
    return sum(
        step_threshold(rule, state, s.at.timestamp(), s.value) is not None
        for s in series
    )


def benchmark_rule() -> ThresholdRule:
    return ThresholdRule.model_validate(
        {"name": "taxi_busy", "threshold": RULE_THRESHOLD, "for": RULE_FOR}
    )


def bench_rule_evaluation(
    series: list[MetricSample], passes: int, repeats: int
) -> list[Row]:
    """Time threshold rule evaluation over every sample against a bare comparison.

    Samples are (Unix seconds, value) pairs, the form engine.apply_samples
    passes on. `step_threshold` keeps a HoldState, and `metric_rules.step`,
    which engine.apply_samples calls, keeps the same state in a JSON dict.
    Each pass starts from new state, because a state that has seen a sample
    ignores it and every sample before it.
    """
    rule = benchmark_rule()
    threshold = rule.threshold
    points = [(sample.at.timestamp(), sample.value) for sample in series]
    values = [value for _, value in points]

    def evaluate_step_threshold() -> int:
        transitions = 0
        for _ in range(passes):
            state = HoldState()
            for at, value in points:
                if step_threshold(rule, state, at, value) is not None:
                    transitions += 1
        return transitions

    def evaluate_step() -> int:
        transitions = 0
        for _ in range(passes):
            state: dict[str, Any] = {}
            for at, value in points:
                if step(rule, state, at, value) is not None:
                    transitions += 1
        return transitions

    def compare_values() -> int:
        breaches = 0
        for _ in range(passes):
            for value in values:
                if value > threshold:
                    breaches += 1
        return breaches

    samples = passes * len(series)
    baseline = Rate(None, samples / median_seconds(compare_values, repeats))
    cases = (
        ("step_threshold", evaluate_step_threshold),
        ("metric_rules.step", evaluate_step),
    )
    rows = []
    for name, evaluate in cases:
        seconds = median_seconds(evaluate, repeats)
        rows.append(
            Row(
                benchmark="rule evaluation",
                case=f"{name}, {len(series)} samples",
                measured=Rate(None, samples / seconds),
                baseline_name="value > threshold loop",
                baseline=baseline,
            )
        )
    return rows


def parse_payloads(series: list[MetricSample], batch_size: int) -> list[bytes]:
    """Return up to PARSE_DISTINCT_PAYLOADS encoded batches of consecutive samples."""
    count = min(PARSE_DISTINCT_PAYLOADS, len(series) // batch_size)
    labels = series_labels("nyc-taxi-0")
    return [
        MetricBatch(
            series=labels["series"],
            labels=labels,
            samples=series[i * batch_size : (i + 1) * batch_size],
        ).to_bytes()
        for i in range(count)
    ]


def bench_parsing(
    series: list[MetricSample], batch_size: int, samples_per_run: int, repeats: int
) -> Row:
    """Time MetricBatch.model_validate_json against json.loads on the same bytes."""
    distinct = parse_payloads(series, batch_size)
    records = max(1, samples_per_run // batch_size)
    payloads = [distinct[i % len(distinct)] for i in range(records)]

    def validate() -> None:
        for payload in payloads:
            MetricBatch.model_validate_json(payload)

    def decode() -> None:
        for payload in payloads:
            json.loads(payload)

    validate_s = median_seconds(validate, repeats)
    decode_s = median_seconds(decode, repeats)
    mean_bytes = sum(len(p) for p in distinct) / len(distinct)
    samples = records * batch_size
    return Row(
        benchmark="record parsing",
        case=f"MetricBatch, {plural(batch_size, 'sample')} ({mean_bytes:,.0f} B)",
        measured=Rate(records / validate_s, samples / validate_s),
        baseline_name="json.loads",
        baseline=Rate(records / decode_s, samples / decode_s),
    )

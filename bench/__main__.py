"""Run every benchmark once and print a table of rates and ratios to baselines."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench import BenchmarkError
from bench.data import NYC_TAXI, DataNotFoundError, load_series
from bench.micro import (
    PARSE_BATCH_SIZES,
    RULE_FOR,
    RULE_THRESHOLD,
    bench_parsing,
    bench_rule_evaluation,
    count_transitions,
)
from bench.patterns import bench_patterns
from bench.pipeline import run_pipeline_benchmark
from bench.report import Report, format_table
from tocsin.broker import KAFKA_VERSION, BrokerError


@dataclass(frozen=True)
class Sizes:
    rule_passes: int
    parse_samples: int
    repeats: int
    pipeline_batches: int


FULL = Sizes(rule_passes=20, parse_samples=100_000, repeats=5, pipeline_batches=15_000)
QUICK = Sizes(rule_passes=2, parse_samples=10_000, repeats=3, pipeline_batches=3_000)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure rule evaluation, record parsing and the Kafka pipeline, "
        "each against a baseline measured in the same run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="use small sizes, for a smoke run"
    )
    parser.add_argument(
        "--skip-broker",
        action="store_true",
        help="skip the pipeline benchmark, which starts Kafka and a worker",
    )
    parser.add_argument(
        "--batches",
        type=int,
        help="metric batches (records of 100 samples) the pipeline benchmark "
        f"publishes (default {FULL.pipeline_batches}, {QUICK.pipeline_batches} "
        "with --quick)",
    )
    args = parser.parse_args(argv)
    if args.batches is not None and args.batches < 1:
        parser.error(f"--batches must be at least 1, got {args.batches}")
    return args


def format_load_average() -> str:
    one_min, five_min, fifteen_min = os.getloadavg()
    return f"{one_min:.2f} {five_min:.2f} {fifteen_min:.2f}"


def describe_machine(load_at_start: str) -> list[str]:
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("faust-streaming", "aiokafka", "pydantic")
    )
    return [
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"Python {platform.python_version()}, {platform.platform()}",
        f"packages: {packages}, Apache Kafka {KAFKA_VERSION}",
        # Other processes on the machine lower every rate, so the load is shown.
        f"load average (1, 5, 15 min): {load_at_start} at start, "
        f"{format_load_average()} at end",
    ]


def run(args: argparse.Namespace) -> Report:
    sizes = QUICK if args.quick else FULL
    series = load_series()
    report = Report()
    report.rows.extend(bench_rule_evaluation(series, sizes.rule_passes, sizes.repeats))
    report.notes.append(
        f"rule evaluation: {NYC_TAXI.name}, threshold above {RULE_THRESHOLD:g} "
        f"for {RULE_FOR}, {count_transitions(series)} alerts per pass, "
        f"{sizes.rule_passes} passes per run."
    )
    for batch_size in PARSE_BATCH_SIZES:
        report.rows.append(
            bench_parsing(series, batch_size, sizes.parse_samples, sizes.repeats)
        )
    pattern_rows, pattern_notes = bench_patterns(sizes.repeats)
    report.rows.extend(pattern_rows)
    report.notes.extend(pattern_notes)
    report.notes.append(
        f"in-process rates: median of {sizes.repeats} runs after one warm-up run."
    )
    if args.skip_broker:
        report.notes.append("pipeline: skipped (--skip-broker).")
        return report

    batches = args.batches or sizes.pipeline_batches
    work_dir = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    try:
        result = run_pipeline_benchmark(series, batches, work_dir)
    except BaseException:
        print(f"pipeline benchmark failed; logs kept in {work_dir}", file=sys.stderr)
        raise
    shutil.rmtree(work_dir, ignore_errors=True)
    report.rows.append(result.row)
    report.notes.extend(result.notes)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    load_at_start = format_load_average()
    try:
        report = run(args)
    except (DataNotFoundError, BrokerError, BenchmarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(describe_machine(load_at_start)))
    print()
    print(format_table(report.rows))
    print()
    print("ratio = measured samples/s / baseline samples/s (below 1: slower).")
    for note in report.notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())

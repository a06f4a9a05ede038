"""Pipeline benchmark: one `tocsin worker` on Apache Kafka against a plain consumer.

Both read the same metric batches, published before either starts. The
worker is timed between the first and the last offset commit it makes while
records remain, so its start-up and the idle time before its final commit
are excluded.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import BenchmarkError
from bench.data import metric_batches
from bench.kafka_clients import (
    COMMIT_POLL_INTERVAL_S,
    CommitObservation,
    Published,
    balanced_series_names,
    consume_plain,
    publish_batches,
    total_records,
    watch_commits,
)
from bench.report import Rate, Row
from bench.worker import (
    count_log_problems,
    peak_rss_mib,
    start_worker,
    stop_worker,
)
from schemas.records import MetricSample
from streams import topics
from tocsin.admin import ensure_topics
from tocsin.broker import BrokerHandle, fetch_kafka, start_kafka

log = logging.getLogger(__name__)

BATCH_SIZE = 100
PARTITIONS = 4
# Series are picked so that every partition carries the same number. With
# uneven partitions the last one is consumed alone at the end, which a worker
# did more slowly than four partitions at once, so the rate would depend on
# how the key hash happened to fall.
SERIES_PER_PARTITION = 2
# faust names a table's changelog topic <app id>-<table name>-changelog, and
# detect keeps its per-series rule state in the table detect-series-state.
CHANGELOG_TOPIC = "{app_id}-detect-series-state-changelog"


@dataclass(frozen=True)
class PipelineResult:
    row: Row
    notes: list[str]


def timed_interval(
    observations: list[CommitObservation], end: int
) -> tuple[CommitObservation, CommitObservation, bool]:
    """Return the first and last commits to time, and whether idle time is included.

    Each commit is taken at the earliest poll that saw it. The commit of the
    end offset comes up to one commit interval after the worker runs out of
    records, so the interval ends at the last commit below `end` when there
    are two or more of those. Otherwise it ends at the commit of `end`.
    """
    first_seen: dict[int, CommitObservation] = {}
    for observation in observations:
        if observation.committed > 0:
            first_seen.setdefault(observation.committed, observation)
    busy = [o for committed, o in first_seen.items() if committed < end]
    if len(busy) >= 2:
        return busy[0], busy[-1], False
    commits = list(first_seen.values())
    if len(commits) < 2:
        raise BenchmarkError(
            "the worker committed every record in its first commit, so there is "
            "no interval to time; publish more batches (--batches)"
        )
    return commits[0], commits[-1], True


def steady_rate(
    first: CommitObservation, last: CommitObservation, samples_per_record: int
) -> Rate:
    records_per_s = (last.committed - first.committed) / (last.at - first.at)
    return Rate(records_per_s, records_per_s * samples_per_record)


@dataclass(frozen=True)
class PipelineRun:
    """Raw measurements of one pipeline benchmark run."""

    published: Published
    baseline: Rate
    observations: list[CommitObservation]
    spawned_at: float
    peak_rss_mib: float
    log_problems: int
    alerts: int
    dead_letters: int
    changelog_records: int


def run_pipeline_benchmark(
    series: list[MetricSample], batch_count: int, work_dir: Path
) -> PipelineResult:
    """Start Kafka and a worker, run both consumers over the same batches, stop both."""
    return summarize(measure_pipeline(series, batch_count, work_dir))


def measure_pipeline(
    series: list[MetricSample], batch_count: int, work_dir: Path
) -> PipelineRun:
    fetch_kafka()
    run_id = uuid.uuid4().hex[:8]
    app_id = f"tocsin-bench-{run_id}"
    prefix = f"bench-{run_id}."
    topic = prefix + topics.METRICS.name
    broker: BrokerHandle | None = None
    process: subprocess.Popen[bytes] | None = None
    try:
        broker = start_kafka(data_dir=work_dir / "kafka")
        bootstrap = broker.bootstrap
        asyncio.run(ensure_topics(bootstrap, prefix, PARTITIONS))
        names = balanced_series_names(PARTITIONS, SERIES_PER_PARTITION)
        batches = metric_batches(series, names, batch_count, BATCH_SIZE)
        published = asyncio.run(publish_batches(bootstrap, topic, batches))
        if sum(published.partitions.values()) != published.records:
            raise BenchmarkError(
                f"topic {topic} has {sum(published.partitions.values())} records, "
                f"expected {published.records}"
            )
        baseline = asyncio.run(consume_plain(bootstrap, published))

        process, log_path = start_worker(
            bootstrap, app_id, prefix, PARTITIONS, work_dir
        )
        spawned_at = time.perf_counter()
        observations = asyncio.run(
            watch_commits(bootstrap, app_id, published, process, log_path, broker.pid)
        )
        return PipelineRun(
            published=published,
            baseline=baseline,
            observations=observations,
            spawned_at=spawned_at,
            peak_rss_mib=peak_rss_mib(process.pid),
            log_problems=count_log_problems(log_path),
            alerts=asyncio.run(total_records(bootstrap, prefix + topics.ALERTS.name)),
            dead_letters=asyncio.run(
                total_records(bootstrap, prefix + topics.DEAD_LETTER.name)
            ),
            changelog_records=asyncio.run(
                total_records(bootstrap, CHANGELOG_TOPIC.format(app_id=app_id))
            ),
        )
    finally:
        if process is not None:
            stop_worker(process)
        if broker is not None:
            broker.stop()


def summarize(run: PipelineRun) -> PipelineResult:
    """Build the table row and notes, or raise if the worker did more than detect."""
    if run.alerts or run.dead_letters:
        raise BenchmarkError(
            f"expected no alerts and no dead letters, found {run.alerts} alerts and "
            f"{run.dead_letters} dead letters, so the worker did more than detect"
        )
    published = run.published
    first, last, includes_idle = timed_interval(run.observations, published.records)
    interval_s = last.at - first.at
    worker_cpu = (last.worker_cpu_s - first.worker_cpu_s) / interval_s
    broker_cpu = (last.broker_cpu_s - first.broker_cpu_s) / interval_s
    row = Row(
        benchmark="pipeline (Kafka)",
        case=f"tocsin worker, detect, {BATCH_SIZE} samples/record",
        measured=steady_rate(first, last, BATCH_SIZE),
        baseline_name="aiokafka + json.loads",
        baseline=run.baseline,
    )
    notes = [
        f"pipeline: {published.records:,} records ({published.samples:,} samples, "
        f"mean {published.bytes / published.records:,.0f} B) over "
        f"{len(published.partitions)} partitions and "
        f"{PARTITIONS * SERIES_PER_PARTITION} series.",
        f"pipeline: timed interval {interval_s:.1f} s, from the first commit seen "
        f"({first.committed:,} records) to the commit of {last.committed:,} "
        f"records; commits polled every {COMMIT_POLL_INTERVAL_S:g} s.",
        f"pipeline: worker start to end offset committed: "
        f"{last.at - run.spawned_at:.1f} s, including start-up and group join.",
        f"pipeline: CPU time in the timed interval, in cores: worker "
        f"{worker_cpu:.2f}, Kafka broker {broker_cpu:.2f}.",
        f"pipeline: worker peak RSS (VmHWM): {run.peak_rss_mib:,.0f} MiB.",
        f"pipeline: detect-series-state changelog records: "
        f"{run.changelog_records:,} (one per batch would be {published.records:,}).",
        f"pipeline: worker log lines at WARNING or above: {run.log_problems}.",
    ]
    if includes_idle:
        notes.append(
            "pipeline: fewer than two commits came before the end offset, so the "
            "interval includes the worker's idle time before its final commit and "
            "the rate is low; publish more batches (--batches)."
        )
    return PipelineResult(row, notes)

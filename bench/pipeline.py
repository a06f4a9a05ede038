"""Pipeline benchmark: one `tocsin worker` on Apache Kafka against a plain consumer.

Both read the same metric batches, published before either starts. The
worker is timed from the first committed offset seen to the commit of the
end offset, so worker start-up and the first commit interval are excluded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from bench.data import LABELS, REPO, metric_batches
from bench.report import Rate, Row
from schemas.records import MetricSample
from streams import topics
from streams.keys import encode_key
from tocsin.admin import ensure_topics
from tocsin.broker import BrokerHandle, fetch_kafka, start_kafka

log = logging.getLogger(__name__)

BATCH_SIZE = 100
PARTITIONS = 4
# Series are picked so that every partition carries the same number. With
# uneven partitions the last one finishes alone, and a worker then runs at
# about a third of its four-partition rate.
SERIES_PER_PARTITION = 2
# The worker's own defaults (at_least_once, 1 s commit interval) apply.
# These two let it join the group in seconds, as the test harness does.
WORKER_TUNING = {
    "TOCSIN_BROKER_SESSION_TIMEOUT_S": "2.0",
    "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "0.5",
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
COMMIT_POLL_INTERVAL_S = 0.1
FETCH_TIMEOUT_MS = 500
WORKER_STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
# NAB's nyc_taxi peaks near 40,000, so this rule matches every batch and never fires.
NEVER_FIRING_RULE = {
    "name": "bench_never_fires",
    "match": {"metric": LABELS["metric"]},
    "threshold": 1e12,
    "severity": "info",
}


class BenchmarkError(RuntimeError):
    """The pipeline benchmark could not complete its measurement."""


@dataclass(frozen=True)
class Published:
    partitions: dict[TopicPartition, int]
    records: int
    samples: int
    bytes: int


@dataclass(frozen=True)
class CommitObservation:
    at: float
    committed: int


@dataclass(frozen=True)
class PipelineResult:
    row: Row
    notes: list[str]


def balanced_series_names(partitions: int, per_partition: int) -> list[str]:
    """Return series names that aiokafka's default partitioner spreads evenly.

    Keys are JSON-encoded as the pipeline encodes them. The search is bounded
    because murmur2 spreads names over partitions well within 100 per slot.
    """
    partitioner = DefaultPartitioner()
    numbers = list(range(partitions))
    chosen: dict[int, list[str]] = {n: [] for n in numbers}
    for index in range(100 * partitions * per_partition):
        name = f"nyc-taxi-{index}"
        partition = partitioner(encode_key(name), numbers, numbers)
        if len(chosen[partition]) < per_partition:
            chosen[partition].append(name)
        if all(len(names) == per_partition for names in chosen.values()):
            return [name for n in numbers for name in chosen[n]]
    raise BenchmarkError(
        f"found no {per_partition} series names for each of {partitions} partitions"
    )


def timeout_for(records: int) -> float:
    """Return a bound in seconds for consuming `records`, assuming at least 100/s."""
    return 60.0 + records / 100


async def publish_batches(
    bootstrap: str, topic: str, series: list[MetricSample], batch_count: int
) -> Published:
    """Publish `batch_count` batches of BATCH_SIZE samples; return the end offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = []
    samples = size = 0
    try:
        names = balanced_series_names(PARTITIONS, SERIES_PER_PARTITION)
        batches = metric_batches(series, names, batch_count, BATCH_SIZE)
        for key, batch in batches:
            value = batch.to_bytes()
            samples += len(batch.samples)
            size += len(value)
            sent.append(await producer.send(topic, value, key=encode_key(key)))
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    ends = await end_offsets(bootstrap, topic)
    return Published(ends, len(sent), samples, size)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Return the end offset of every partition of `topic`, or {} if it is missing."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return {}
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for p in description["partitions"])
    partitions = [TopicPartition(topic, n) for n in numbers]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def consume_plain(bootstrap: str, published: Published) -> Rate:
    """Read and json-decode every published record with a plain aiokafka consumer.

    The consumer is assigned the partitions directly, with no group, and timed
    from its first fetch to the last record.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records = samples = 0
    try:
        partitions = list(published.partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        start = time.perf_counter()
        async with asyncio.timeout(timeout_for(published.records)):
            while records < published.records:
                fetched = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS)
                for messages in fetched.values():
                    for message in messages:
                        samples += len(json.loads(message.value)["samples"])
                        records += 1
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    if samples != published.samples:
        raise BenchmarkError(
            f"plain consumer decoded {samples} samples, expected {published.samples}"
        )
    return Rate(records / elapsed, samples / elapsed)


def start_worker(
    bootstrap: str, app_id: str, prefix: str, work_dir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `tocsin worker` in its own session and return the process and its log."""
    config_path = work_dir / "config.yaml"
    config_path.write_text(
        yaml.safe_dump({"rules": {"metrics": [NEVER_FIRING_RULE]}}, sort_keys=False)
    )
    log_path = work_dir / "worker.log"
    env = {
        **os.environ,
        **WORKER_TUNING,
        "TOCSIN_BOOTSTRAP_SERVERS": bootstrap,
        "TOCSIN_APP_ID": app_id,
        "TOCSIN_TOPIC_PREFIX": prefix,
        "TOCSIN_TOPIC_PARTITIONS": str(PARTITIONS),
        "TOCSIN_CONFIG": str(config_path),
        "TOCSIN_DATA_DIR": str(work_dir / "worker-data"),
        "TOCSIN_WEB_PORT": str(free_port()),
        "TOCSIN_CLOCK": "replay",
        "TOCSIN_STORE": "memory://",
    }
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("Started the worker (pid %d), logging to %s.", process.pid, log_path)
    return process, log_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to the worker's process group, then SIGKILL after a timeout."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning(
            "The worker (pid %d) did not stop within %g s of SIGTERM; sending SIGKILL.",
            process.pid,
            WORKER_STOP_TIMEOUT_S,
        )
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    log.info("The worker (pid %d) stopped.", process.pid)


def peak_rss_mib(pid: int) -> float:
    """Return the peak resident set size (VmHWM) of `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError(f"VmHWM not found in /proc/{pid}/status")


def log_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


async def watch_commits(
    bootstrap: str,
    group_id: str,
    published: Published,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> list[CommitObservation]:
    """Poll the group's committed offsets until they reach the end offsets.

    Raises BenchmarkError if the worker exits or the bound from timeout_for passes.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    partitions = list(published.partitions)
    timeout_s = timeout_for(published.records)
    deadline = time.perf_counter() + timeout_s
    observations = []
    try:
        while True:
            if process.poll() is not None:
                raise BenchmarkError(
                    f"the worker exited with code {process.returncode} before "
                    f"it caught up:\n{log_tail(log_path)}"
                )
            try:
                committed = await committed_total(admin, group_id, partitions)
            except KafkaError as exc:
                # The group coordinator is unavailable until __consumer_offsets
                # exists and is loaded, which the worker's first join causes.
                if not exc.retriable:
                    raise
                log.debug("offset fetch failed, retrying: %r", exc)
                committed = 0
            now = time.perf_counter()
            observations.append(CommitObservation(now, committed))
            if committed >= published.records:
                return observations
            if now > deadline:
                raise BenchmarkError(
                    f"timed out after {timeout_s:.0f} s: the worker committed "
                    f"{committed} of {published.records} records:\n"
                    f"{log_tail(log_path)}"
                )
            await asyncio.sleep(COMMIT_POLL_INTERVAL_S)
    finally:
        await admin.close()


async def committed_total(
    admin: AIOKafkaAdminClient,
    group_id: str,
    partitions: list[TopicPartition],
) -> int:
    """Return the sum of the group's committed offsets, counting a missing one as 0."""
    offsets = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    return sum(max(offsets[tp].offset, 0) for tp in partitions if tp in offsets)


def steady_rate(observations: list[CommitObservation], samples_per_record: int) -> Rate:
    """Return the rate between the first non-zero commit seen and the final one."""
    first = next(o for o in observations if o.committed > 0)
    last = observations[-1]
    if last.at <= first.at:
        raise BenchmarkError(
            "the worker committed every record in its first commit, so there is "
            "no interval to time; publish more batches (--batches)"
        )
    records_per_s = (last.committed - first.committed) / (last.at - first.at)
    return Rate(records_per_s, records_per_s * samples_per_record)


async def total_records(bootstrap: str, topic: str) -> int:
    return sum((await end_offsets(bootstrap, topic)).values())


def run_pipeline_benchmark(
    series: list[MetricSample], batch_count: int, work_dir: Path
) -> PipelineResult:
    """Start Kafka and a worker, run both consumers over the same batches, stop both."""
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
        published = asyncio.run(publish_batches(bootstrap, topic, series, batch_count))
        if sum(published.partitions.values()) != published.records:
            raise BenchmarkError(
                f"topic {topic} has {sum(published.partitions.values())} records, "
                f"expected {published.records}"
            )
        baseline = asyncio.run(consume_plain(bootstrap, published))

        process, log_path = start_worker(bootstrap, app_id, prefix, work_dir)
        spawned = time.perf_counter()
        observations = asyncio.run(
            watch_commits(bootstrap, app_id, published, process, log_path)
        )
        rss_mib = peak_rss_mib(process.pid)
        alerts = asyncio.run(total_records(bootstrap, prefix + topics.ALERTS.name))
        dead = asyncio.run(total_records(bootstrap, prefix + topics.DEAD_LETTER.name))
        changelog = asyncio.run(
            total_records(bootstrap, f"{app_id}-detect-series-state-changelog")
        )
    finally:
        if process is not None:
            stop_worker(process)
        if broker is not None:
            broker.stop()

    if alerts or dead:
        raise BenchmarkError(
            f"expected no alerts and no dead letters, found {alerts} alerts and "
            f"{dead} dead letters; the measurement includes work other than detect"
        )
    measured = steady_rate(observations, BATCH_SIZE)
    caught_up_s = observations[-1].at - spawned
    mean_bytes = published.bytes / published.records
    row = Row(
        benchmark="pipeline (Kafka)",
        case=f"tocsin worker, detect, {BATCH_SIZE} samples/record",
        measured=measured,
        baseline_name="aiokafka + json.loads",
        baseline=baseline,
    )
    notes = [
        f"pipeline: {published.records:,} records ({published.samples:,} samples, "
        f"mean {mean_bytes:,.0f} B) over {len(published.partitions)} partitions "
        f"and {PARTITIONS * SERIES_PER_PARTITION} series.",
        f"pipeline: worker start to end offset committed: {caught_up_s:.1f} s, "
        "including start-up and group join.",
        f"pipeline: detect-series-state changelog records: {changelog:,} "
        f"(one per batch would be {published.records:,}).",
        f"pipeline: worker peak RSS (VmHWM): {rss_mib:,.0f} MiB.",
    ]
    return PipelineResult(row, notes)

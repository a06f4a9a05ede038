"""Kafka clients of the pipeline benchmark: publish, plain consume, watch commits."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from bench import BenchmarkError
from bench.report import Rate
from bench.worker import cpu_seconds, log_tail
from schemas.records import MetricBatch
from streams.keys import encode_key

log = logging.getLogger(__name__)

COMMIT_POLL_INTERVAL_S = 0.1
FETCH_TIMEOUT_MS = 500


@dataclass(frozen=True)
class Published:
    """Records sent by publish_batches: end offsets, counts and value bytes."""

    partitions: dict[TopicPartition, int]
    records: int
    samples: int
    bytes: int


@dataclass(frozen=True)
class CommitObservation:
    """The group's committed offsets summed over partitions, with CPU times.

    `at` is time.perf_counter() seconds. CPU times are user plus system
    seconds of the worker and broker processes since they started.
    """

    at: float
    committed: int
    worker_cpu_s: float
    broker_cpu_s: float


def balanced_series_names(partitions: int, per_partition: int) -> list[str]:
    """Return series names that aiokafka's default partitioner spreads evenly.

    Keys are JSON-encoded, as the pipeline encodes them. The search gives up
    after 100 candidate names per name needed.
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
    bootstrap: str, topic: str, batches: Iterable[tuple[str, MetricBatch]]
) -> Published:
    """Publish (series name, batch) pairs keyed by series; return the end offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = []
    samples = size = 0
    try:
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


async def watch_commits(
    bootstrap: str,
    group_id: str,
    published: Published,
    process: subprocess.Popen[bytes],
    log_path: Path,
    broker_pid: int,
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
                # Kafka creates __consumer_offsets on the first coordinator
                # lookup, and the coordinator is unavailable until it is loaded.
                if not exc.retriable:
                    raise
                log.debug("offset fetch failed, retrying: %r", exc)
                committed = 0
            now = time.perf_counter()
            observations.append(
                CommitObservation(
                    now, committed, cpu_seconds(process.pid), cpu_seconds(broker_pid)
                )
            )
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


async def total_records(bootstrap: str, topic: str) -> int:
    return sum((await end_offsets(bootstrap, topic)).values())

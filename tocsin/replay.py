"""Publish a CSV metric series or a log file to the telemetry topics."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from schemas.records import LogBatch, LogLine, MetricBatch, MetricSample, Record
from streams import topics
from streams.keys import encode_key
from tocsin.admin import ensure_topics


class ReplayError(Exception):
    """A replay input file is missing or malformed."""


@dataclass
class ReplaySummary:
    path: Path
    topic: str
    records: int
    items: int
    first_at: datetime | None
    last_at: datetime | None

    def describe(self) -> str:
        span = f"{self.first_at:%Y-%m-%d %H:%M} to {self.last_at:%Y-%m-%d %H:%M}"
        return (
            f"{self.path.name}: {self.items} items in {self.records} records "
            f"to {self.topic}, event time {span}"
        )


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time or Unix seconds; a time without zone is UTC."""
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_samples(path: Path) -> Iterator[MetricSample]:
    """Read `timestamp,value` rows, as NAB ships them."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp", "value"} - set(reader.fieldnames or [])
        if missing:
            raise ReplayError(
                f"{path}: missing columns {sorted(missing)}; expected timestamp,value"
            )
        for line_number, row in enumerate(reader, start=2):
            try:
                yield MetricSample(at=parse_time(row["timestamp"]), value=row["value"])
            except ValueError as exc:
                raise ReplayError(f"{path}:{line_number}: invalid row: {exc}") from exc


def metric_batches(
    path: Path, series: str, labels: dict[str, str], batch_size: int
) -> Iterator[MetricBatch]:
    batch: list[MetricSample] = []
    for sample in read_samples(path):
        batch.append(sample)
        if len(batch) == batch_size:
            yield MetricBatch(series=series, labels=labels, samples=batch)
            batch = []
    if batch:
        yield MetricBatch(series=series, labels=labels, samples=batch)


def read_log_lines(path: Path) -> Iterator[LogLine]:
    """Read a structured log CSV (Loghub columns) or plain text lines.

    A CSV needs a `Content` or `message` column; its time comes from
    `Timestamp` or `timestamp`, its level from `Level` or `level`, and the
    remaining columns become fields. Plain lines get the time they are read.
    """
    if path.suffix.lower() != ".csv":
        with path.open(encoding="utf-8", errors="replace") as handle:
            for text in handle:
                if text.strip():
                    yield LogLine(at=datetime.now(UTC), message=text.rstrip("\n"))
        return
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        message_column = next((c for c in ("Content", "message") if c in columns), None)
        time_column = next(
            (c for c in ("Timestamp", "timestamp") if c in columns), None
        )
        if message_column is None or time_column is None:
            raise ReplayError(
                f"{path}: expected a Content or message column and a Timestamp "
                f"or timestamp column; found {sorted(columns)}"
            )
        level_column = next((c for c in ("Level", "level") if c in columns), None)
        for row in reader:
            fields = {
                k: v
                for k, v in row.items()
                if k not in {message_column, time_column, level_column} and v
            }
            yield LogLine(
                at=parse_time(row[time_column]),
                message=row[message_column],
                level=(row[level_column] if level_column else "info").lower(),
                fields=fields,
            )


def log_batches(
    path: Path, source: str, labels: dict[str, str], batch_size: int
) -> Iterator[LogBatch]:
    batch: list[LogLine] = []
    for line in read_log_lines(path):
        batch.append(line)
        if len(batch) == batch_size:
            yield LogBatch(source=source, labels=labels, lines=batch)
            batch = []
    if batch:
        yield LogBatch(source=source, labels=labels, lines=batch)


async def publish(
    bootstrap_servers: str,
    topic: str,
    key: str,
    records: Iterator[Record],
    progress: bool = True,
) -> tuple[int, int, datetime | None, datetime | None]:
    """Send records in order, keyed by `key`; return counts and event-time span."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers.split(","), acks="all", linger_ms=5
    )
    await producer.start()
    count = items = 0
    first = last = None
    try:
        with tqdm(unit=" records", disable=not progress, desc=topic) as bar:
            for record in records:
                times = _times(record)
                first = first or times[0]
                last = times[-1]
                items += len(times)
                await producer.send(topic, record.to_bytes(), key=encode_key(key))
                count += 1
                bar.update(1)
            await producer.flush()
    finally:
        await producer.stop()
    return count, items, first, last


def _times(record: Record) -> list[datetime]:
    if isinstance(record, MetricBatch):
        return [s.at for s in record.samples]
    if isinstance(record, LogBatch):
        return [line.at for line in record.lines]
    raise TypeError(f"cannot replay {type(record).__name__}")


async def replay_metrics(
    bootstrap_servers: str,
    topic_prefix: str,
    path: Path,
    labels: dict[str, str],
    batch_size: int = 100,
    progress: bool = True,
    partitions: int = 4,
) -> ReplaySummary:
    """Publish a `timestamp,value` CSV as one series of metric batches."""
    await ensure_topics(bootstrap_servers, topic_prefix, partitions)
    series = labels.get("series") or json.dumps(sorted(labels.items()))
    topic = topic_prefix + topics.METRICS.name
    batches = metric_batches(path, series, labels, batch_size)
    count, items, first, last = await publish(
        bootstrap_servers, topic, series, iter(batches), progress
    )
    return ReplaySummary(path, topic, count, items, first, last)


async def replay_logs(
    bootstrap_servers: str,
    topic_prefix: str,
    path: Path,
    labels: dict[str, str],
    batch_size: int = 100,
    progress: bool = True,
    partitions: int = 4,
) -> ReplaySummary:
    """Publish a log file as log batches from one source."""
    await ensure_topics(bootstrap_servers, topic_prefix, partitions)
    source = labels.get("source") or path.stem
    topic = topic_prefix + topics.LOGS.name
    batches = log_batches(path, source, labels, batch_size)
    count, items, first, last = await publish(
        bootstrap_servers, topic, source, iter(batches), progress
    )
    return ReplaySummary(path, topic, count, items, first, last)

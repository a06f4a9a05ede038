"""faust glue for detection: batches and ticks in, alerts out, state in tables."""

from __future__ import annotations

import base64
import logging
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiokafka.partitioner import DefaultPartitioner

from schemas.patterns import PatternSet
from schemas.records import DeadLetter, LogBatch, MetricBatch, MetricSample, Tick
from schemas.rules import AbsenceRule
from streams import topics
from streams.detect import engine
from streams.detect.engine import Fired
from streams.detect.rules import build_alert, match_line, matches
from streams.keys import encode_key

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

# In replay mode, keys on a partition age by the newest event time seen on it,
# at most once per this many seconds of event time.
REPLAY_SWEEP_STEP_S = 60.0


class PartitionClock:
    """The newest event time per partition and when each partition last swept."""

    def __init__(self) -> None:
        self.watermark: dict[int, float] = {}
        self.swept: dict[int, float] = {}

    def observe(self, partition: int, at: float) -> None:
        self.watermark[partition] = max(self.watermark.get(partition, at), at)

    def sweep_due(self, partition: int) -> float | None:
        now = self.watermark.get(partition)
        if (
            now is None
            or now - self.swept.get(partition, float("-inf")) < REPLAY_SWEEP_STEP_S
        ):
            return None
        self.swept[partition] = now
        return now


class Detector:
    """Keep each partition's keys, apply inputs to them and publish what fires."""

    def __init__(self, pipeline: Pipeline, name: str) -> None:
        self.pipeline = pipeline
        self.state = pipeline.table(name, default=None)
        self.keys: dict[int, set[str]] = defaultdict(set)
        self.loaded: set[int] = set()
        self.clock = PartitionClock()

    def load(self, partition: int) -> None:
        """Index the stored keys of a partition the first time it is seen."""
        if partition in self.loaded:
            return
        self.loaded.add(partition)
        for key, stored in self.state.items():
            if isinstance(stored, dict) and stored.get("partition") == partition:
                self.keys[partition].add(key)

    def get(self, key: str, partition: int) -> dict[str, Any]:
        stored = self.state.get(key)
        self.keys[partition].add(key)
        return dict(stored) if stored else {"partition": partition}

    def put(self, key: str, state: dict[str, Any]) -> None:
        self.state[key] = state

    async def advance(self, partition: int, newest: datetime) -> None:
        """Move the clocks to a batch's newest event time; in replay, age keys."""
        self.pipeline.clock.observe(newest)
        self.clock.observe(partition, newest.timestamp())
        if self.pipeline.clock.mode == "replay":
            now = self.clock.sweep_due(partition)
            if now is not None:
                await self.sweep(partition, now)

    async def on_tick(self, event: faust.EventT[bytes]) -> None:
        """Age every key of the tick's partition to the tick's time."""
        now = await _parse_tick(self.pipeline, event)
        if now is None:
            return
        partition = event.message.partition
        self.load(partition)
        self.prepare(partition, now)
        await self.sweep(partition, now)

    def prepare(self, partition: int, now: float) -> None:
        """Create any state a partition needs before it ages; none by default."""

    async def sweep(self, partition: int, now: float) -> None:
        raise NotImplementedError

    async def publish(self, fired: list[Fired]) -> None:
        for item in fired:
            alert = build_alert(
                item.rule,
                item.labels,
                item.transition,
                {},
                item.event_key,
                self.pipeline.config,
            )
            log.info(
                "alert %s rule=%s fingerprint=%s",
                alert.status,
                alert.rule,
                alert.fingerprint,
            )
            await self.pipeline.publish(topics.ALERTS, alert.group_key, alert)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    settings = pipeline.settings
    ticks_name = settings.topic(topics.DETECT_TICKS.name)
    metrics = MetricStage(pipeline)
    logs = LogStage(pipeline)

    def source(spec: topics.TopicSpec) -> faust.TopicT:
        return app.topic(
            settings.topic(spec.name),
            ticks_name,
            key_serializer="raw",
            value_serializer="raw",
        )

    async def detect_metrics(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == ticks_name:
                await metrics.on_tick(event)
            else:
                await metrics.on_batch(event)

    async def detect_logs(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == ticks_name:
                await logs.on_tick(event)
            else:
                await logs.on_batch(event)

    async def send_ticks() -> None:
        tick = Tick(at=pipeline.clock.now()).to_bytes()
        topic = pipeline.topic(topics.DETECT_TICKS)
        for partition in range(settings.topic_partitions):
            await topic.send(value=tick, partition=partition)

    app.agent(source(topics.METRICS), name="detect-metrics")(detect_metrics)
    app.agent(source(topics.LOGS), name="detect-logs")(detect_logs)
    if pipeline.clock.mode == "live":
        app.timer(settings.tick_interval_s, name="detect-ticks")(send_ticks)


async def _parse_tick(pipeline: Pipeline, event: faust.EventT[bytes]) -> float | None:
    tick = await pipeline.dead_letters.parse("detect", event, Tick.model_validate_json)
    return None if tick is None else tick.at.timestamp()


class MetricStage(Detector):
    """Metric series: one state per series, written once per batch."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, "detect-series-state")
        self.rules = pipeline.config.rules.metrics
        self.lateness_s = pipeline.config.rules.allowed_lateness.total_seconds()
        self.timed = [rule for rule in self.rules if isinstance(rule, AbsenceRule)]
        self.expected = [
            (rule, series)
            for rule in self.rules
            for series in getattr(rule, "expect", [])
        ]

    async def on_batch(self, event: faust.EventT[bytes]) -> None:
        batch = await self.pipeline.dead_letters.parse(
            "detect", event, MetricBatch.model_validate_json
        )
        if batch is None:
            return
        partition = event.message.partition
        self.load(partition)
        self._expect(partition, batch.samples[0].at.timestamp())
        state = self.get(batch.series, partition)
        offsets = dict(state.get("offsets", {}))
        if offsets.get(str(partition), -1) >= event.message.offset:
            log.debug("redelivered batch skipped series=%s", batch.series)
            return
        offsets[str(partition)] = event.message.offset
        state["offsets"] = offsets
        state["labels"] = batch.labels
        ready, late = engine.admit(state, batch.samples, self.lateness_s)
        fired = engine.apply_samples(self.rules, state, batch.labels, ready)
        self.put(batch.series, state)
        if late:
            await self._dead_letter_late(event, batch, late, state)
        await self.publish(fired)
        await self.advance(partition, max(s.at for s in batch.samples))

    def prepare(self, partition: int, now: float) -> None:
        self._expect(partition, now)

    async def sweep(self, partition: int, now: float) -> None:
        """Age every series of a partition to `now`; store those that changed."""
        if not self.timed:
            return
        for series in sorted(self.keys[partition]):
            state = self.get(series, partition)
            before = repr(state)
            fired = engine.advance_series(self.timed, state, now)
            if repr(state) != before:
                self.put(series, state)
            await self.publish(fired)

    def _expect(self, partition: int, now: float) -> None:
        """Create the state of expected series that belong to this partition."""
        count = self.pipeline.settings.topic_partitions
        every = list(range(count))
        partitioner = DefaultPartitioner()
        for rule, series in self.expected:
            if partitioner(encode_key(series), every, every) != partition:
                continue
            if self.state.get(series) is not None:
                continue
            labels = {"series": series, **getattr(rule, "expect_labels", {})}
            state = {"partition": partition, "labels": labels}
            state["rules"] = {rule.name: {"first_seen": now}}
            self.keys[partition].add(series)
            self.put(series, state)

    async def _dead_letter_late(
        self,
        event: faust.EventT[bytes],
        batch: MetricBatch,
        late: list[MetricSample],
        state: dict[str, Any],
    ) -> None:
        released = state.get("released_at")
        lateness = self.pipeline.config.rules.allowed_lateness
        error = (
            f"{len(late)} late samples of series {batch.series!r}, the first at "
            f"{late[0].at.isoformat()}: at or before {released} (Unix seconds), the "
            f"newest sample already applied; allowed lateness is {lateness}"
        )
        only_late = MetricBatch(series=batch.series, labels=batch.labels, samples=late)
        message = event.message
        record = DeadLetter(
            stage="detect",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=batch.series,
            value=base64.b64encode(only_late.to_bytes()).decode(),
            error=error,
            at=self.pipeline.clock.now(),
        )
        log.warning(
            "late samples dead-lettered series=%s count=%d", batch.series, len(late)
        )
        await self.pipeline.publish(topics.DEAD_LETTER, batch.series, record)


class LogStage(Detector):
    """Log rules: one state per rule and key, written when a line changes it."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(pipeline, "detect-log-state")
        self.rules = pipeline.config.rules.logs
        self.patterns = PatternSet(r.regex for r in self.rules if r.regex is not None)

    async def on_batch(self, event: faust.EventT[bytes]) -> None:
        batch = await self.pipeline.dead_letters.parse(
            "detect", event, LogBatch.model_validate_json
        )
        if batch is None:
            return
        partition = event.message.partition
        self.load(partition)
        position = f"{partition}:{event.message.offset}"
        fired = []
        touched: dict[str, dict[str, Any]] = {}
        for index, line in enumerate(batch.lines):
            regex_hits = self.patterns.search(line.message)
            for rule in self.rules:
                if not matches(rule.match, batch.labels):
                    continue
                if not match_line(rule, line, regex_hits):
                    continue
                group = engine.key_group(rule, batch.labels, line)
                key = engine.log_key(rule, batch.source, group)
                state = touched.get(key) or self.get(key, partition)
                state["labels"] = {**batch.labels, **group}
                state["rule"] = rule.name
                found = engine.apply_line(
                    rule, state, state["labels"], line, f"{position}:{index}"
                )
                touched[key] = state
                if found is not None:
                    fired.append(found)
        for key, state in touched.items():
            self.put(key, state)
        await self.publish(fired)
        await self.advance(partition, max(line.at for line in batch.lines))

    async def sweep(self, partition: int, now: float) -> None:
        by_name = {rule.name: rule for rule in self.rules}
        for key in sorted(self.keys[partition]):
            state = self.get(key, partition)
            rule = by_name.get(state.get("rule", ""))
            if rule is None:
                continue
            before = repr(state)
            found = engine.advance_key(rule, state, now)
            if repr(state) != before:
                self.put(key, state)
            if found is not None:
                await self.publish([found])

"""faust glue for detection: batches in, alerts out, rule state in a table."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from schemas.config import ThresholdRule
from schemas.records import AlertStatus, LogBatch, MetricBatch
from streams import topics
from streams.detect.rules import (
    ThresholdState,
    Transition,
    build_alert,
    match_line,
    matches,
    step_threshold,
)

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    rules = pipeline.config.rules
    # series -> {"offsets": {partition: last applied offset}, "rules": {rule:
    # state}}. It is written once per batch, which costs one changelog record.
    series_state = pipeline.table("detect-series-state", default=dict)

    async def process_metrics(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            batch = await pipeline.dead_letters.parse(
                "detect", event, MetricBatch.model_validate_json
            )
            if batch is None:
                continue
            partition = str(event.message.partition)
            offset = event.message.offset
            stored: dict[str, Any] = series_state[batch.series]
            offsets = dict(stored.get("offsets", {}))
            if offsets.get(partition, -1) >= offset:
                log.debug("redelivered batch skipped series=%s", batch.series)
                continue
            rule_states = dict(stored.get("rules", {}))
            for rule in rules.metrics:
                if matches(rule.match, batch.labels):
                    state = ThresholdState.from_json(rule_states.get(rule.name, {}))
                    await _evaluate(pipeline, rule, state, batch)
                    rule_states[rule.name] = state.to_json()
            offsets[partition] = offset
            series_state[batch.series] = {"offsets": offsets, "rules": rule_states}
            pipeline.clock.observe(batch.samples[-1].at)

    async def process_logs(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            batch = await pipeline.dead_letters.parse(
                "detect", event, LogBatch.model_validate_json
            )
            if batch is None:
                continue
            position = f"{event.message.partition}:{event.message.offset}"
            for index, line in enumerate(batch.lines):
                for rule in rules.logs:
                    if not matches(rule.match, batch.labels):
                        continue
                    if match_line(rule, line):
                        at = line.at.timestamp()
                        transition = Transition(AlertStatus.FIRING, at, at)
                        alert = build_alert(
                            rule,
                            batch.labels,
                            transition,
                            {"line": line.message},
                            event_key=f"{position}:{index}",
                        )
                        await pipeline.publish(topics.ALERTS, alert.group_key, alert)
            pipeline.clock.observe(max(line.at for line in batch.lines))

    app.agent(pipeline.topic(topics.METRICS), name="detect-metrics")(process_metrics)
    app.agent(pipeline.topic(topics.LOGS), name="detect-logs")(process_logs)


async def _evaluate(
    pipeline: Pipeline,
    rule: ThresholdRule,
    state: ThresholdState,
    batch: MetricBatch,
) -> None:
    for sample in batch.samples:
        transition = step_threshold(rule, state, sample)
        if transition is None:
            continue
        annotations = {"value": f"{sample.value:g}", "threshold": f"{rule.threshold:g}"}
        alert = build_alert(rule, batch.labels, transition, annotations)
        log.info(
            "alert %s rule=%s series=%s fingerprint=%s",
            alert.status,
            rule.name,
            batch.series,
            alert.fingerprint,
        )
        await pipeline.publish(topics.ALERTS, alert.group_key, alert)

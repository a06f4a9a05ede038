"""faust glue for analytics: timeline to response samples to windowed tables.

`analytics-samples` reads the timeline, keyed by group key, and publishes
each counted event once per dimension (`all`, `service:NAME`,
`severity:NAME`) keyed by that dimension. `analytics` adds the samples into
the windowed tables, so each dimension's windows live on one partition and
the web view can route a query for a key to the worker that owns it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from schemas.records import IncidentEvent, ResponseSample
from streams import prune, topics
from streams.analytics.applied import (
    applied_horizon_s,
    applied_key,
    dimension_of,
    prune_applied,
)
from streams.analytics.breaches import (
    CHECKED_WINDOW,
    breach_alert,
    breach_changes,
    is_target_alert,
)
from streams.analytics.metrics import (
    WINDOWS,
    add_sample,
    dimensions,
    split_dimension,
    summarize,
)
from streams.analytics.progress import next_samples
from streams.analytics.windows import clocked_window
from streams.keys import partition_of

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def _placed_at(event: faust.EventT[bytes]) -> float:
    """Place a sample in the windows of its `window_at`, or its opened time."""
    sample = ResponseSample.model_validate_json(event.value)
    return (sample.window_at or sample.opened_at).timestamp()


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    targets = pipeline.config.targets
    progress = pipeline.table("analytics-progress", default=None)
    # Applied sample ids, with the opened time that expires them.
    applied = pipeline.table("analytics-applied", default=None)
    breaches = pipeline.table("analytics-breaches", default=None)
    ticks_name = prune.ticks_name(pipeline)
    retention_s = pipeline.settings.analytics_retention_days * 86400
    applied_horizon = applied_horizon_s(retention_s, WINDOWS.values())
    windows: dict[str, Any] = {}
    for name, spec in WINDOWS.items():
        base: Any = pipeline.table(f"response-{name}", default=dict)
        window = clocked_window(spec, retention_s, pipeline.clock)
        wrapper = base.using_window(window)
        # faust's WindowWrapperT type omits relative_to, which takes a callable.
        windows[name] = wrapper.relative_to(_placed_at)
        pipeline.tables[f"response-{name}"] = windows[name]

    def count_sample(window: Any, sample: ResponseSample) -> Any:
        return add_sample(window or {}, sample, targets)

    async def to_samples(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "analytics", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            # Incidents of target alerts stay out of the metrics they watch,
            # so a breach never moves the mean it reports.
            if is_target_alert({"labels": incident_event.labels}):
                continue
            state, samples = next_samples(
                progress.get(incident_event.incident_id), incident_event, targets
            )
            # Publish before recording progress: a crash in between sends the
            # samples again, and `analytics` drops them by sample id.
            for sample in samples:
                for dimension in dimensions(sample.service, sample.severity.value):
                    keyed = sample.model_copy(update={"dimension": dimension})
                    await pipeline.publish(topics.RESPONSE_SAMPLES, dimension, keyed)
            progress[incident_event.incident_id] = state

    async def raise_breaches(sample: ResponseSample) -> None:
        kind, service = split_dimension(sample.dimension)
        if kind != "service" or service is None or sample.at is None:
            return
        window = windows[CHECKED_WINDOW]
        spec = WINDOWS[CHECKED_WINDOW]
        start = sample.opened_at.timestamp() // spec.size_s * spec.size_s
        summary = summarize(window[sample.dimension].value() or {}, spec.size_s)
        breach_key = f"{sample.dimension}|{start}"
        raised: dict[str, str] = breaches.get(breach_key) or {}
        changes = breach_changes(summary, pipeline.config, raised)
        for measure, status in changes.items():
            mean_s = summary[f"{measure}_s"]
            alert = breach_alert(
                pipeline.config, service, measure, start, status, mean_s, sample.at
            )
            await pipeline.publish(topics.ALERTS, alert.group_key, alert)
            log.info(
                "response target alert %s service=%s measure=%s mean_s=%.1f",
                status.value,
                service,
                measure,
                mean_s,
            )
        if changes:
            breaches[breach_key] = {
                **raised,
                **{m: s.value for m, s in changes.items()},
            }

    def forget_applied(partition: int, now_s: float) -> None:
        """Delete expired applied ids stored on `partition` and date undated ones."""
        count = pipeline.settings.topic_partitions
        entries = [
            (key, value)
            for key, value in applied.items()
            if partition_of(dimension_of(key), count) == partition
        ]
        limit = pipeline.settings.prune_max_keys
        pruning = prune_applied(entries, now_s, applied_horizon, limit)
        for key in pruning.expired:
            applied.pop(key, None)
        for key in pruning.undated:
            applied[key] = now_s
        if pruning.expired or pruning.undated:
            log.info(
                "applied sample ids pruned partition=%d count=%d dated=%d",
                partition,
                len(pruning.expired),
                len(pruning.undated),
            )

    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == ticks_name:
                now_s = await prune.tick_time(pipeline, "analytics", event)
                if now_s is not None:
                    forget_applied(event.message.partition, now_s)
                continue
            sample = await pipeline.dead_letters.parse(
                "analytics", event, ResponseSample.model_validate_json
            )
            if sample is None:
                continue
            if not sample.dimension:
                # Samples written before dimensions existed count per service.
                sample = sample.model_copy(
                    update={"dimension": f"service:{sample.service}"}
                )
            sample_id = sample.sample_id or f"{sample.incident_id}:{sample.kind}"
            key = applied_key(sample.dimension, sample_id)
            if applied.get(key) is not None:
                continue
            for table in windows.values():
                table[sample.dimension].apply(count_sample, sample)
            # The time that placed the sample, so the id lives as long as
            # the windows it counted in.
            applied[key] = (sample.window_at or sample.opened_at).timestamp()
            if sample.kind in {"acknowledged", "resolved"}:
                await raise_breaches(sample)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="analytics-samples")(
        to_samples
    )
    app.agent(prune.with_ticks(pipeline, topics.RESPONSE_SAMPLES), name="analytics")(
        aggregate
    )

"""faust glue for analytics: timeline to response samples to windowed tables."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from schemas.records import IncidentEvent, ResponseSample
from streams import topics
from streams.analytics.metrics import EMPTY_WINDOW, WINDOWS_S, add_sample, sample_for

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

RETENTION = timedelta(days=30)


def _opened_at(event: faust.EventT[bytes]) -> float:
    """Place a sample in the window of its incident's opened time."""
    return ResponseSample.model_validate_json(event.value).opened_at.timestamp()


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    applied = pipeline.table("analytics-applied", default=None)
    windows: dict[str, Any] = {}
    for name, size_s in WINDOWS_S.items():
        wrapper: Any = pipeline.table(f"response-{name}", default=dict).tumbling(
            size_s, expires=RETENTION
        )
        # faust's WindowWrapperT type omits relative_to, which takes a callable.
        windows[name] = wrapper.relative_to(_opened_at)
    for name, table in windows.items():
        pipeline.tables[f"response-{name}"] = table

    async def to_samples(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            incident_event = await pipeline.dead_letters.parse(
                "analytics", event, IncidentEvent.model_validate_json
            )
            if incident_event is None:
                continue
            sample = sample_for(incident_event)
            if sample is not None:
                await pipeline.publish(topics.RESPONSE_SAMPLES, sample.service, sample)

    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            sample = await pipeline.dead_letters.parse(
                "analytics", event, ResponseSample.model_validate_json
            )
            if sample is None:
                continue
            applied_key = f"{sample.incident_id}:{sample.kind}"
            if applied.get(applied_key) is not None:
                continue
            applied[applied_key] = True
            for table in windows.values():
                current = table[sample.service].value() or dict(EMPTY_WINDOW)
                table[sample.service] = add_sample(current, sample)

    app.agent(pipeline.topic(topics.INCIDENT_EVENTS), name="analytics-samples")(
        to_samples
    )
    app.agent(pipeline.topic(topics.RESPONSE_SAMPLES), name="analytics")(aggregate)

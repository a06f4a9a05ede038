"""Prune ticks: one record per partition, so each table owner drops expired keys.

faust writes a table change to the changelog partition of the event being
processed, so a timer cannot delete keys itself. Instead every worker's
timer sends a tick to each partition of `prune-ticks`, and each agent that
prunes reads that topic along with its own. faust assigns partition N of
both topics to one worker, so the agent handles the ticks of the partitions
it owns and deletes only the keys stored on the tick's partition.

Ticks are sent in live and in replay mode. A tick carries the sender's
pipeline clock, so in replay mode keys expire by event time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.records import Tick
from streams import topics

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline


def register(pipeline: Pipeline) -> None:
    """Add the timer that sends a prune tick to every partition."""
    settings = pipeline.settings

    async def send_ticks() -> None:
        tick = Tick(at=pipeline.clock.now()).to_bytes()
        topic = pipeline.topic(topics.PRUNE_TICKS)
        for partition in range(settings.topic_partitions):
            await topic.send(value=tick, partition=partition)

    pipeline.app.timer(settings.prune_interval_s, name="prune-ticks")(send_ticks)


def with_ticks(pipeline: Pipeline, spec: topics.TopicSpec) -> faust.TopicT:
    """Return a source that reads the topic of `spec` and `prune-ticks` together."""
    settings = pipeline.settings
    return pipeline.app.topic(
        settings.topic(spec.name),
        ticks_name(pipeline),
        key_serializer="raw",
        value_serializer="raw",
    )


def ticks_name(pipeline: Pipeline) -> str:
    return pipeline.settings.topic(topics.PRUNE_TICKS.name)


async def tick_time(
    pipeline: Pipeline, stage: str, event: faust.EventT[bytes]
) -> float | None:
    """Return a tick's time in Unix seconds, or None after dead-lettering it."""
    tick = await pipeline.dead_letters.parse(stage, event, Tick.model_validate_json)
    return None if tick is None else tick.at.timestamp()

"""The faust app: topics, tables and every stage's agents, assembled in flow order."""

from __future__ import annotations

import logging
from typing import Any, cast

import faust

from schemas.config import Config
from schemas.records import Record
from streams import topics
from streams.clock import Clock
from streams.deadletter import DeadLetters
from streams.keys import encode_key
from streams.observability import PipelineMetrics
from tocsin.settings import Settings

log = logging.getLogger(__name__)


class Pipeline:
    """One worker's faust app with its topics, clock and configuration.

    Each stage module exposes `register(pipeline)`, which defines that stage's
    agents, tables and timers on `pipeline.app`.
    """

    def __init__(self, settings: Settings, config: Config) -> None:
        self.settings = settings
        self.config = config
        self.clock = Clock(settings.clock)
        self.app = faust.App(
            settings.app_id,
            broker=[
                f"kafka://{host}" for host in settings.bootstrap_servers.split(",")
            ],
            store=settings.store,
            datadir=str(settings.data_dir),
            key_serializer="json",
            value_serializer="raw",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=1,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_s,
            broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
            producer_max_batch_size=settings.producer_max_batch_size,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_in_thread=False,
            autodiscover=False,
            stream_wait_empty=False,
            broker_commit_interval=1.0,
            table_cleanup_interval=settings.table_cleanup_interval_s,
        )
        self.topics: dict[str, faust.TopicT] = {
            spec.name: self.app.topic(
                settings.topic(spec.name),
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.topic_partitions,
            )
            for spec in topics.ALL
        }
        self.metrics = PipelineMetrics(self)
        self.dead_letters = DeadLetters(self)
        # Tables the web view reads, by name, filled in as stages register.
        self.tables: dict[str, Any] = {}
        self.counters: dict[str, int] = {}

    def topic(self, spec: topics.TopicSpec) -> faust.TopicT:
        return self.topics[spec.name]

    def table(self, name: str, **kwargs: Any) -> faust.Table[str, Any]:
        table = self.app.Table(
            name,
            partitions=self.settings.topic_partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            **kwargs,
        )
        return cast("faust.Table[str, Any]", table)

    async def publish(self, spec: topics.TopicSpec, key: str, record: Record) -> None:
        """Send `record` to the topic of `spec`, keyed by `key`."""
        await self.topic(spec).send(key=encode_key(key), value=record.to_bytes())


def build_pipeline(settings: Settings, config: Config) -> Pipeline:
    """Create the app and register every stage in flow order."""
    from streams import prune
    from streams.analytics import agent as analytics
    from streams.correlate import agent as correlate
    from streams.detect import agent as detect
    from streams.escalate import agent as escalate
    from streams.notify import agent as notify
    from streams.runbooks import agent as runbooks
    from streams.silences import agent as silences
    from streams.silences import timeline as mute_timeline
    from streams.web import (
        analytics_views,
        intake,
        oncall_views,
        pagerduty_webhooks,
        runbook_views,
        silences_views,
        slack_actions,
    )
    from streams.web import views as web

    pipeline = Pipeline(settings, config)
    silences.register(pipeline)
    detect.register(pipeline)
    correlate.register(pipeline)
    escalate.register(pipeline)
    notify.register(pipeline)
    runbooks.register(pipeline)
    mute_timeline.register(pipeline)
    analytics.register(pipeline)
    prune.register(pipeline)
    web.register(pipeline)
    analytics_views.register(pipeline)
    intake.register(pipeline)
    silences_views.register(pipeline)
    runbook_views.register(pipeline)
    slack_actions.register(pipeline)
    pagerduty_webhooks.register(pipeline)
    oncall_views.register(pipeline)
    return pipeline

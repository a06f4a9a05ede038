"""Run one faust worker of the pipeline."""

from __future__ import annotations

import asyncio
import logging

import faust

from schemas.config import load_config
from streams.app import build_pipeline
from tocsin.admin import changelog_configs, ensure_topics
from tocsin.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Validate the configuration, build the app and run it until stopped."""
    config = load_config(settings.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = build_pipeline(settings, config)
    asyncio.run(
        ensure_topics(
            settings.bootstrap_servers,
            settings.topic_prefix,
            settings.topic_partitions,
            changelog_configs(pipeline.app),
        )
    )
    log.info(
        "worker starting app_id=%s bootstrap=%s clock=%s web=%s:%d",
        settings.app_id,
        settings.bootstrap_servers,
        settings.clock,
        settings.web_host,
        settings.web_port,
    )
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.lower(),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()

"""Pipeline benchmark: one `tocsin worker` on Apache Kafka against a plain consumer.

Both read the same pre-published metric batches. The worker is timed from
the first committed offset it is seen to make to the commit of the end
offset, so worker start-up and the first commit interval are excluded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.data import LABELS, REPO, metric_batches
from bench.report import Rate, Row
from schemas.records import MetricSample
from streams import topics
from streams.keys import encode_key
from tocsin.admin import ensure_topics
from tocsin.broker import KAFKA_VERSION, BrokerHandle, fetch_kafka, start_kafka
from tocsin.harness_env import WORKER_ENV_PROXIES  # noqa: F401

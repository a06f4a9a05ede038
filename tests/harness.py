"""Run real pipeline workers as processes against the test broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.records import MetricBatch
from streams import topics
from tocsin import client
from tocsin.replay import publish

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class BrokerInfo:
    kind: str
    bootstrap: str

    @property
    def tuned_env(self) -> dict[str, str]:
        """Settings that let a worker join this broker's group in seconds."""
        # A session of 6 s (the worker's default) survives the pauses of a
        # busy two-core machine, where 2 s got workers evicted mid-test.
        # Tansu takes the session timeout to join, so it keeps 2 s.
        env = {
            "TOCSIN_BROKER_SESSION_TIMEOUT_S": "6.0",
            "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "1.0",
        }
        if self.kind == "tansu":
            env["TOCSIN_BROKER_SESSION_TIMEOUT_S"] = "2.0"
            env["TOCSIN_BROKER_HEARTBEAT_INTERVAL_S"] = "0.5"
            env["TOCSIN_PRODUCER_MAX_BATCH_SIZE"] = "1"
        if self.kind in {"external", "testcontainers"}:
            env = {}
        return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Factor on every wait_for bound. The bounds are sized for an idle machine,
# and a loaded CI machine can be several times slower. A wait ends as soon as
# its condition is true, so a larger bound costs time only when a test fails.
WAIT_SCALE = float(os.environ.get("TOCSIN_TEST_WAIT_SCALE", "3"))


def wait_for(
    condition: Callable[[], Any], timeout_s: float, message: str, every_s: float = 0.2
) -> Any:
    """Poll `condition` until it returns a truthy value.

    Raises AssertionError after `timeout_s` times WAIT_SCALE seconds.
    """
    bound_s = timeout_s * WAIT_SCALE
    deadline = time.monotonic() + bound_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {bound_s:g} s: {message}")
        time.sleep(every_s)


@dataclass
class Worker:
    """One `tocsin worker` process with its own app id, topics and web port."""

    app_id: str
    prefix: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        return client.request(self.url, path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return client.request(self.url, path, body)

    def incidents(self) -> list[dict[str, Any]]:
        listing = self.get("/incidents?limit=500")
        incidents: list[dict[str, Any]] = listing["incidents"]
        return incidents

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class WorkerFactory:
    """Start workers that share one broker, each test with its own topics."""

    def __init__(self, broker: BrokerInfo, directory: Path) -> None:
        self.broker = broker
        self.directory = directory
        self.started: list[Worker] = []
        run = uuid.uuid4().hex[:8]
        self.app_id = f"tocsin-test-{run}"
        self.prefix = f"test-{run}."

    def write_config(self, config: dict[str, Any]) -> Path:
        path = self.directory / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(
        self, config: Path, env: dict[str, str] | None = None, name: str = "worker"
    ) -> Worker:
        port = free_port()
        data_dir = self.directory / f"{name}-data"
        log_path = self.directory / f"{name}-{len(self.started)}.log"
        worker_env = {
            **os.environ,
            **self.broker.tuned_env,
            "TOCSIN_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "TOCSIN_APP_ID": self.app_id,
            "TOCSIN_TOPIC_PREFIX": self.prefix,
            "TOCSIN_CONFIG": str(config),
            "TOCSIN_DATA_DIR": str(data_dir),
            "TOCSIN_WEB_PORT": str(port),
            "TOCSIN_CLOCK": "replay",
            "TOCSIN_TICK_INTERVAL_S": "0.2",
            **(env or {}),
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            worker_env.pop(proxy, None)
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "tocsin.cli", "worker"],
                cwd=REPO,
                env=worker_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(
            self.app_id,
            self.prefix,
            f"http://127.0.0.1:{port}",
            process,
            log_path,
            worker_env,
        )
        self.started.append(worker)
        self._wait_ready(worker)
        return worker

    def _wait_ready(self, worker: Worker) -> None:
        def ready() -> bool:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {worker.process.returncode}:\n"
                    + worker.log_tail()
                )
            try:
                return bool(worker.get("/ready")["status"] == "ready")
            except client.WebViewError:
                return False

        try:
            wait_for(ready, READY_TIMEOUT_S, "worker ready", every_s=0.3)
        except AssertionError:
            print(worker.log_tail())
            raise

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


def publish_metrics(worker: Worker, batch: MetricBatch) -> None:
    """Publish one batch to the worker's metrics topic, keyed by its series."""
    asyncio.run(
        publish(
            worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
            worker.prefix + topics.METRICS.name,
            batch.series,
            iter([batch]),
            progress=False,
        )
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


async def group_partitions(
    worker: Worker, specs: list[topics.TopicSpec]
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """Start a consumer in the worker's group and list the topics' partitions.

    The caller stops the consumer.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=worker.env["TOCSIN_BOOTSTRAP_SERVERS"],
        group_id=worker.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    await consumer._client.force_metadata_update()
    partitions = []
    for spec in specs:
        name = worker.prefix + spec.name
        for partition in consumer.partitions_for_topic(name) or set():
            partitions.append(TopicPartition(name, partition))
    return consumer, partitions


async def group_caught_up(worker: Worker, specs: list[topics.TopicSpec]) -> bool:
    """Return whether the worker's group committed the end of every partition."""
    consumer, partitions = await group_partitions(worker, specs)
    try:
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return bool(partitions)
    finally:
        await consumer.stop()

"""Score Tocsin's anomaly rule on NAB through the real pipeline.

Run `python -m bench.nab.pipeline` from the repository root. It starts Apache
Kafka (or uses `--bootstrap`) and one `tocsin worker` whose only rule is the
anomaly rule. It replays every NAB series onto `telemetry.metrics` and waits
until the worker has consumed them. Then it reads the firing alerts from the
`alerts` topic and scores their times with the NAB scorer. The same detector run
offline on the same files is printed beside it: the two should agree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.nab import NAB_DIR, REPO
from bench.nab.offline import (
    PROFILE_NAMES,
    load_series,
    run_detector,
    score_ours,
)
from bench.nab.scorer import CorpusScore, load_profiles, load_windows, score_corpus
from streams.detect.anomaly import ALERT_SCORE
from tocsin import broker as local_broker
from tocsin.replay import replay_metrics

METRIC = "nab"
PARTITIONS = 4
CATCH_UP_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 90.0


def worker_config(threshold: float) -> dict[str, object]:
    rule = {
        "name": "nab_anomaly",
        "type": "anomaly",
        "match": {"metric": METRIC},
        "threshold": threshold,
        "auto_resolve": True,
        "notify": False,
    }
    console = {"levels": [{"delay": "0s", "targets": ["console"]}]}
    return {
        "rules": {"metrics": [rule]},
        "policies": {"default": console},
        "receivers": {"console": {"type": "console"}},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_worker(
    bootstrap: str, app_id: str, work_dir: Path, threshold: float
) -> subprocess.Popen[bytes]:
    config = work_dir / "config.yaml"
    config.write_text(yaml.safe_dump(worker_config(threshold), sort_keys=False))
    env = {
        **os.environ,
        "TOCSIN_BOOTSTRAP_SERVERS": bootstrap,
        "TOCSIN_APP_ID": app_id,
        "TOCSIN_TOPIC_PREFIX": f"{app_id}.",
        "TOCSIN_TOPIC_PARTITIONS": str(PARTITIONS),
        "TOCSIN_CONFIG": str(config),
        "TOCSIN_DATA_DIR": str(work_dir / "data"),
        "TOCSIN_WEB_PORT": str(free_port()),
        "TOCSIN_CLOCK": "replay",
        "TOCSIN_STORE": "memory://",
        "TOCSIN_BROKER_SESSION_TIMEOUT_S": "2.0",
        "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "0.5",
        "TOCSIN_LOG_LEVEL": "WARNING",
    }
    log = (work_dir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tocsin.cli", "--log-level", "WARNING", "worker"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_consumed(
    bootstrap: str, group: str, topic: str, worker: subprocess.Popen[bytes]
) -> None:
    """Wait until the worker's group has committed the end of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            offsets = await admin.list_consumer_group_offsets(
                group, partitions=partitions
            )
            done = all(
                tp in offsets and offsets[tp].offset >= ends[tp] for tp in partitions
            )
            if done:
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the worker did not consume {topic} in time")
    finally:
        await consumer.stop()
        await admin.close()


async def firing_alerts(bootstrap: str, topic: str) -> dict[str, set[float]]:
    """Read every alert on `topic` and return the firing times per series."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, set[float]] = defaultdict(set)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(p >= ends[tp] for p, tp in zip(positions, partitions, strict=True)):
                break
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    alert = json.loads(record.value)
                    if alert["status"] == "firing":
                        at = datetime.fromisoformat(alert["at"]).timestamp()
                        found[alert["labels"]["series"]].add(at)
    finally:
        await consumer.stop()
    return found


async def replay_all(
    bootstrap: str, prefix: str, nab_dir: Path, names: list[str]
) -> int:
    samples = 0
    for name in names:
        labels = {"series": name, "service": Path(name).stem, "metric": METRIC}
        summary = await replay_metrics(
            bootstrap,
            prefix,
            nab_dir / "data" / name,
            labels,
            batch_size=100,
            progress=False,
            partitions=PARTITIONS,
        )
        samples += summary.items
    return samples


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab-dir", type=Path, default=NAB_DIR)
    parser.add_argument(
        "--bootstrap", help="use this broker instead of starting Apache Kafka"
    )
    parser.add_argument("--threshold", type=float, default=ALERT_SCORE)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nab_dir: Path = args.nab_dir
    windows = load_windows(nab_dir / "labels" / "combined_windows.json")
    profiles = load_profiles(nab_dir / "config" / "profiles.json")
    names = sorted(windows)
    all_series = [load_series(nab_dir, name) for name in names]
    work_dir = Path(tempfile.mkdtemp(prefix="tocsin-nab-"))
    app_id = f"nab-{uuid.uuid4().hex[:8]}"

    handle = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        local_broker.fetch_kafka()
        handle = local_broker.start_kafka(data_dir=work_dir / "kafka")
        bootstrap = handle.bootstrap
    worker = start_worker(bootstrap, app_id, work_dir, args.threshold)
    try:
        started = time.perf_counter()
        samples = asyncio.run(replay_all(bootstrap, f"{app_id}.", nab_dir, names))
        asyncio.run(
            wait_consumed(bootstrap, app_id, f"{app_id}.telemetry.metrics", worker)
        )
        elapsed = time.perf_counter() - started
        alerts = asyncio.run(firing_alerts(bootstrap, f"{app_id}.alerts"))
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=30)
        if handle is not None:
            handle.stop()

    files = {}
    for series in all_series:
        fired = alerts.get(series.name, set())
        times = [t.replace(tzinfo=UTC).timestamp() for t in series.timestamps]
        files[series.name] = (series.timestamps, [t in fired for t in times])
    pipeline: dict[str, CorpusScore] = {
        profile: score_corpus(files, windows, profiles[profile])
        for profile in PROFILE_NAMES
    }
    offline = score_ours(
        all_series, run_detector(all_series, 2), windows, profiles, args.threshold
    )
    print(f"NAB through the pipeline: {len(names)} files, {samples} samples")
    print(f"{'':>22}" + "".join(f"{p:>22}" for p in PROFILE_NAMES))
    for label, scores in (("pipeline", pipeline), ("offline", offline)):
        cells = "".join(f"{scores[p].normalised:>22.1f}" for p in PROFILE_NAMES)
        print(f"{label:>22}{cells}")
    alert_count = sum(len(times) for times in alerts.values())
    print(
        f"\n{alert_count} firing alerts; replay and detection took {elapsed:.1f} s "
        f"({samples / elapsed:,.0f} samples/s); worker log in {work_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

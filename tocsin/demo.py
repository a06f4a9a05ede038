"""`tocsin demo`: replay shipped NAB series through the default configuration."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from streams.analytics.breaches import is_target_alert
from tocsin import client
from tocsin.broker import BrokerHandle, start_kafka, start_tansu
from tocsin.replay import replay_metrics

DEMO_DATA = Path(__file__).with_name("demo_data")
SERIES = [
    (
        "ambient_temperature_system_failure.csv",
        {"service": "machine-room", "metric": "temperature"},
    ),
    (
        "ec2_cpu_utilization_77c1ca.csv",
        {"service": "ec2-77c1ca", "metric": "cpu_utilization"},
    ),
    (
        "ec2_cpu_utilization_ac20cd.csv",
        {"service": "ec2-ac20cd", "metric": "cpu_utilization", "team": "ml"},
    ),
]
READY_TIMEOUT_S = 90.0
SETTLE_S = 4.0
SETTLE_TIMEOUT_S = 180.0


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_broker() -> BrokerHandle:
    kind = os.environ.get("TOCSIN_DEMO_BROKER", "tansu")
    if kind == "kafka":
        return start_kafka()
    if kind != "tansu":
        raise SystemExit(f"invalid TOCSIN_DEMO_BROKER {kind!r}: use tansu or kafka")
    return start_tansu()


def _start_worker(
    broker: BrokerHandle, directory: Path, port: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TOCSIN_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TOCSIN_APP_ID": "tocsin-demo",
        "TOCSIN_CLOCK": "replay",
        "TOCSIN_DATA_DIR": str(directory / "worker"),
        "TOCSIN_WEB_PORT": str(port),
        "TOCSIN_BROKER_SESSION_TIMEOUT_S": "2.0",
        "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "0.5",
        # The series span most of a year, and the report reads every window.
        "TOCSIN_ANALYTICS_RETENTION_DAYS": "400",
    }
    if broker.kind == "tansu":
        env["TOCSIN_PRODUCER_MAX_BATCH_SIZE"] = "1"
    log = (directory / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tocsin.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(url: str, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-30:]
            raise SystemExit("the worker exited during start:\n" + "\n".join(tail))
        try:
            if client.request(url, "/ready", timeout_s=2)["status"] == "ready":
                return
        except client.WebViewError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the worker was not ready after {READY_TIMEOUT_S:.0f} s")


def _snapshot(url: str) -> list[dict[str, Any]]:
    listing = client.request(url, "/incidents?limit=500")
    details = []
    for incident in listing["incidents"]:
        details.append(client.request(url, f"/incidents/{incident['incident_id']}"))
    return details


def _wait_settled(url: str) -> list[dict[str, Any]]:
    """Poll until no incident or timeline changes for SETTLE_S seconds."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last: tuple[int, int] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        incidents = _snapshot(url)
        shape = (len(incidents), sum(len(i["timeline"]) for i in incidents))
        if shape != last:
            last, stable_since = shape, time.monotonic()
        elif shape[0] and time.monotonic() - stable_since >= SETTLE_S:
            return incidents
        time.sleep(0.5)
    return _snapshot(url)


def _report(everything: list[dict[str, Any]], url: str) -> None:
    target_alerts = [i for i in everything if is_target_alert(i)]
    incidents = [i for i in everything if not is_target_alert(i)]
    print("\nIncidents per series:")
    for name, labels in SERIES:
        mine = [i for i in incidents if i["service"] == labels["service"]]
        resolved = sum(1 for i in mine if i["state"] == "resolved")
        escalated = sum(
            1 for i in mine if any(e["kind"] == "escalated" for e in i["timeline"])
        )
        print(
            f"  {name:<42} opened {len(mine):>3}  resolved {resolved:>3}  "
            f"escalated {escalated:>3}"
        )
    sent: Counter[str] = Counter()
    for incident in incidents:
        for event in incident["timeline"]:
            details = event["details"]
            if event["kind"] == "notified" and not details.get("message_update"):
                sent[details["receiver"]] += 1
    print("\nNotifications sent per receiver:")
    for receiver, count in sorted(sent.items()):
        print(f"  {receiver:<20} {count:>4}")
    print("\nResponse target alerts (MTTA or MTTR above its alert level):")
    for incident in target_alerts:
        print(f"  {incident['title']}")
    if not target_alerts:
        print("  none")
    print("\nMTTR per service (daily windows, all incidents of the replay):")
    rows = client.request(url, "/metrics/response?window=daily")["rows"]
    for service in sorted({r["service"] for r in rows}):
        mine = [r for r in rows if r["service"] == service and r["resolved"]]
        resolved = sum(r["resolved"] for r in mine)
        if not resolved:
            print(f"  {service:<14} no resolved incidents")
            continue
        total_s = sum(r["mttr_s"] * r["resolved"] for r in mine)
        print(f"  {service:<14} {total_s / resolved / 60:8.1f} min over {resolved}")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_demo(keep_running: bool = False) -> int:
    """Run the demo and return the process exit code."""
    directory = Path(tempfile.mkdtemp(prefix="tocsin-demo-"))
    # SIGTERM unwinds like Ctrl-C, so the worker and broker are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    print("Starting the embedded broker...")
    broker = _start_broker()
    worker: subprocess.Popen[bytes] | None = None
    try:
        print(f"Broker: {broker.kind} at {broker.bootstrap}")
        port = _free_port(6066)
        url = f"http://127.0.0.1:{port}"
        worker = _start_worker(broker, directory, port)
        _wait_ready(url, worker, directory / "worker.log")
        print(f"Worker ready; its log is {directory / 'worker.log'}")
        for name, labels in SERIES:
            summary = asyncio.run(
                replay_metrics(
                    broker.bootstrap,
                    "",
                    DEMO_DATA / name,
                    {**labels, "series": Path(name).stem},
                    progress=False,
                )
            )
            print(summary.describe())
        incidents = _wait_settled(url)
        _report(incidents, url)
        print(f"\nReceivers without credentials printed to {directory / 'worker.log'}")
        if not keep_running:
            print("The worker has stopped; `tocsin demo --keep-running` keeps it.")
            return 0
        print(f"Web view: {url}/incidents  {url}/metrics/response?window=daily")
        print(f"For the CLI: export TOCSIN_WEB_URL={url}")
        print("Serving until Ctrl-C.")
        signal.pause()
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        broker.stop()

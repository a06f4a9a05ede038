"""A `tocsin worker` process for the pipeline benchmark, and its /proc statistics."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from bench import BenchmarkError
from bench.data import LABELS, REPO

log = logging.getLogger(__name__)

# The worker's own defaults (at_least_once, 1 s commit interval) apply.
# These two let it join the group in seconds, as the test harness does.
WORKER_TUNING = {
    "TOCSIN_BROKER_SESSION_TIMEOUT_S": "2.0",
    "TOCSIN_BROKER_HEARTBEAT_INTERVAL_S": "0.5",
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
WORKER_STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40
# NAB's nyc_taxi peaks at 39,197, so this rule matches every batch and never fires.
NEVER_FIRING_RULE = {
    "name": "bench_never_fires",
    "match": {"metric": LABELS["metric"]},
    "threshold": 1e12,
    "severity": "info",
}


def start_worker(
    bootstrap: str, app_id: str, prefix: str, partitions: int, work_dir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `tocsin worker` in its own session and return the process and its log."""
    config_path = work_dir / "config.yaml"
    config_path.write_text(
        yaml.safe_dump({"rules": {"metrics": [NEVER_FIRING_RULE]}}, sort_keys=False)
    )
    log_path = work_dir / "worker.log"
    env = {
        **os.environ,
        **WORKER_TUNING,
        "TOCSIN_BOOTSTRAP_SERVERS": bootstrap,
        "TOCSIN_APP_ID": app_id,
        "TOCSIN_TOPIC_PREFIX": prefix,
        "TOCSIN_TOPIC_PARTITIONS": str(partitions),
        "TOCSIN_CONFIG": str(config_path),
        "TOCSIN_DATA_DIR": str(work_dir / "worker-data"),
        "TOCSIN_WEB_PORT": str(free_port()),
        "TOCSIN_CLOCK": "replay",
        "TOCSIN_STORE": "memory://",
    }
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", "worker"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("Started the worker (pid %d), logging to %s.", process.pid, log_path)
    return process, log_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to the worker's process group, then SIGKILL after a timeout."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning(
            "The worker (pid %d) did not stop within %g s of SIGTERM; sending SIGKILL.",
            process.pid,
            WORKER_STOP_TIMEOUT_S,
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    log.info("The worker (pid %d) stopped.", process.pid)


def peak_rss_mib(pid: int) -> float:
    """Return the peak resident set size (VmHWM) of `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError(f"VmHWM not found in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of `pid` from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in brackets and may contain spaces.
    fields = stat.rpartition(")")[2].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def count_log_problems(path: Path) -> int:
    """Return how many lines of the worker log are at level WARNING or above."""
    levels = ("WARNING", "ERROR", "CRITICAL")
    with path.open(errors="replace") as log_file:
        return sum(any(level in line for level in levels) for line in log_file)


def log_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])

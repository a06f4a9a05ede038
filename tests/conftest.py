"""Session fixtures: one broker for the whole run, and pipeline workers per test.

The broker is chosen in this order: one named by TOCSIN_TEST_BOOTSTRAP, Apache
Kafka from the local jar cache, a testcontainers Kafka where a Docker engine
responds, then Tansu. TOCSIN_TEST_BROKER=kafka makes any other choice an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.server import create_self_signed_certificate
from fakes.slack import FakeSlack
from harness import BrokerInfo, WorkerFactory
from scenario import ROUTING_KEY, SLACK_TOKEN

from tocsin import broker as local_broker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


BROKER_USED = pytest.StashKey[str]()
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    report = yield
    if call.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    used = config.stash.get(BROKER_USED, "no broker (no test needed one)")
    terminalreporter.write_line(f"broker: {used}")


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerInfo]:
    def chosen(description: str) -> None:
        request.config.stash[BROKER_USED] = description
        print(f"\ntests use {description}")

    required = os.environ.get("TOCSIN_TEST_BROKER")
    named = os.environ.get("TOCSIN_TEST_BOOTSTRAP")
    if named:
        info = BrokerInfo("external", named)
        chosen(f"the broker at {named} (TOCSIN_TEST_BOOTSTRAP)")
        yield info
        return
    if required == "kafka" and not local_broker.kafka_available():
        local_broker.fetch_kafka()
    if local_broker.kafka_available():
        handle = local_broker.start_kafka(data_dir=tmp_path_factory.mktemp("kafka"))
        version = local_broker.KAFKA_VERSION
        chosen(f"Apache Kafka {version} at {handle.bootstrap}")
        try:
            yield BrokerInfo("kafka", handle.bootstrap)
        finally:
            handle.stop()
        return
    if required == "kafka":
        pytest.exit("TOCSIN_TEST_BROKER=kafka but Apache Kafka is not available", 2)
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            bootstrap = container.get_bootstrap_server()
            chosen(f"a testcontainers Kafka at {bootstrap}")
            yield BrokerInfo("testcontainers", bootstrap)
        return
    handle = local_broker.start_tansu()
    chosen(f"Tansu at {handle.bootstrap}")
    try:
        yield BrokerInfo("tansu", handle.bootstrap)
    finally:
        handle.stop()


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, broker: BrokerInfo, tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Start pipeline workers; a failed test prints the end of each one's log."""
    factory = WorkerFactory(broker, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
        if request.node.stash.get(CALL_FAILED, False):
            for worker in factory.started:
                print(f"--- end of {worker.log_path.name} ---")
                print(worker.log_tail(200))


@pytest.fixture
def vendors(
    tmp_path: Path,
) -> Iterator[tuple[FakeSlack, FakePagerDuty, dict[str, str]]]:
    """Start the Slack and PagerDuty test servers; yield them and the worker env."""
    certificate = create_self_signed_certificate(tmp_path)
    with FakeSlack(SLACK_TOKEN) as slack, FakePagerDuty(tls=certificate) as pagerduty:
        env = {
            "TOCSIN_SLACK_TOKEN": SLACK_TOKEN,
            "TOCSIN_SLACK_BASE_URL": slack.url + "/api/",
            "TOCSIN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "TOCSIN_PAGERDUTY_EVENTS_URL": pagerduty.url,
            "SSL_CERT_FILE": str(certificate.cert_path),
        }
        yield slack, pagerduty, env


@pytest.fixture(scope="session")
def nab() -> Path:
    path = DATA / "NAB"
    if not path.is_dir():
        pytest.skip(f"NAB data not found at {path}")
    return path

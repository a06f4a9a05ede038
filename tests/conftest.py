"""Session fixtures: one broker for the whole run, and pipeline workers per test.

The broker is chosen in this order: one named by TOCSIN_TEST_BOOTSTRAP, Apache
Kafka from the local jar cache, a testcontainers Kafka where a Docker engine
answers, then Tansu. TOCSIN_TEST_BROKER=kafka makes any other choice an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import BrokerInfo, WorkerFactory
from tocsin import broker as local_broker

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    required = os.environ.get("TOCSIN_TEST_BROKER")
    named = os.environ.get("TOCSIN_TEST_BOOTSTRAP")
    if named:
        info = BrokerInfo("external", named)
        print(f"\ntests use the broker at {named} (TOCSIN_TEST_BOOTSTRAP)")
        yield info
        return
    if required == "kafka" and not local_broker.kafka_available():
        local_broker.fetch_kafka()
    if local_broker.kafka_available():
        handle = local_broker.start_kafka(data_dir=tmp_path_factory.mktemp("kafka"))
        print(f"\ntests use Apache Kafka {local_broker.KAFKA_VERSION} at {handle.bootstrap}")
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
            print(f"\ntests use a testcontainers Kafka at {bootstrap}")
            yield BrokerInfo("testcontainers", bootstrap)
        return
    handle = local_broker.start_tansu()
    print(f"\ntests use Tansu at {handle.bootstrap}")
    try:
        yield BrokerInfo("tansu", handle.bootstrap)
    finally:
        handle.stop()


@pytest.fixture
def workers(broker: BrokerInfo, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(broker, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def nab() -> Path:
    path = DATA / "NAB"
    if not path.is_dir():
        pytest.skip(f"NAB data not found at {path}")
    return path

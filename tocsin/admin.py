"""Create the pipeline's topics before a worker or a replay uses them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from mode.utils.times import want_seconds

from streams import topics

log = logging.getLogger(__name__)


def changelog_configs(app: faust.App) -> dict[str, dict[str, str]]:
    """Return each table's changelog topic with the configs faust would give it.

    The configs follow faust-streaming 0.15.3's aiokafka driver: the cleanup
    policy from the topic's compacting and deleting flags, and its retention.
    """
    found: dict[str, dict[str, str]] = {}
    for table in app.tables.values():
        topic = table.changelog_topic
        flags = set()
        if topic.compacting:
            flags.add("compact")
        if topic.deleting:
            flags.add("delete")
        configs = {str(k): str(v) for k, v in (topic.config or {}).items()}
        if flags:
            configs["cleanup.policy"] = ",".join(sorted(flags))
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        found[topic.get_topic_name()] = configs
    return found


async def ensure_topics(
    bootstrap_servers: str,
    prefix: str,
    partitions: int,
    changelogs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create every pipeline topic, and each of `changelogs`, that does not exist.

    faust creates its changelog topics itself too, but a consumer that
    subscribes before the broker's metadata lists a new one ignores it, and
    the table's agent then crashes on every update. Creating them here, and
    waiting for their leaders, avoids that race.
    Topics that exist keep their partition count; a count different from
    `partitions` is logged, because keys would then map to other partitions.
    """
    changelogs = changelogs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    await admin.start()
    try:
        wanted = {prefix + spec.name for spec in topics.ALL} | set(changelogs)
        # Describe only topics that exist: a metadata request for a missing
        # topic makes a broker with auto.create.topics.enable create it with
        # its default partition count.
        listed = wanted & set(await admin.list_topics())
        existing = await admin.describe_topics(sorted(listed)) if listed else []
        present = {}
        for description in existing:
            if description.get("error_code", 0) == 0:
                present[description["topic"]] = len(description["partitions"])
        missing = sorted(wanted - set(present))
        if missing:
            new = [
                NewTopic(
                    name, partitions, 1, topic_configs=dict(changelogs.get(name, {}))
                )
                for name in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                log.debug("topics created concurrently by another process")
            log.info("topics created count=%d partitions=%d", len(missing), partitions)
            await _wait_for_leaders(admin, missing)
        for name, count in present.items():
            if count != partitions:
                log.warning(
                    "topic has a different partition count topic=%s partitions=%d "
                    "expected=%d",
                    name,
                    count,
                    partitions,
                )
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 10.0
) -> None:
    """Wait until every partition of new topics has a leader, so sends succeed.

    A broker returns from create_topics before it has elected the leaders,
    and a producer that sends in between gets NotLeaderForPartition and
    retries.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        descriptions = await admin.describe_topics(names)
        led = all(
            d.get("error_code", 0) == 0
            and d["partitions"]
            and all(p["leader"] >= 0 for p in d["partitions"])
            for d in descriptions
        )
        if led:
            return
        await asyncio.sleep(0.1)
    log.warning("topics still without leaders after %.0f s topics=%s", timeout_s, names)

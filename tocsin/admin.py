"""Create the pipeline's topics before a worker or a replay uses them."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams import topics

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap_servers: str, prefix: str, partitions: int) -> None:
    """Create every pipeline topic that does not exist yet.

    Topics that exist keep their partition count; a count different from
    `partitions` is logged, because keys would then map to other partitions.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    await admin.start()
    try:
        wanted = {prefix + spec.name for spec in topics.ALL}
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
            new = [NewTopic(name, partitions, 1) for name in missing]
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

"""Create the pipeline's topics before a worker or a replay uses them."""

from __future__ import annotations

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

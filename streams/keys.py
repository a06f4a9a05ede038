"""Message keys: JSON-encoded strings, the encoding faust uses for table keys."""

from __future__ import annotations

import json

from aiokafka.partitioner import DefaultPartitioner


def encode_key(key: str) -> bytes:
    """Encode a message key as JSON, the encoding faust uses for table keys."""
    return json.dumps(key).encode()


def decode_key(raw: object) -> str | None:
    """Return the string a JSON-encoded key contains, or None if it has none."""
    if not isinstance(raw, bytes):
        return None
    try:
        key = json.loads(raw)
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def partition_of(key: str, partitions: int) -> int:
    """Return the partition the producer picks for a message keyed by `key`."""
    every = list(range(partitions))
    partition: int = DefaultPartitioner()(encode_key(key), every, every)
    return partition

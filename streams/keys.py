"""Message keys: JSON-encoded strings, the encoding faust uses for table keys."""

from __future__ import annotations

import json


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

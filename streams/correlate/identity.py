"""Alert identity: the fingerprint of an alert and the group key of its incident."""

from __future__ import annotations

from schemas.records import stable_hash


def alert_identity(source: str, labels: dict[str, str]) -> tuple[str, str]:
    """Return the fingerprint and group key of an alert from outside the pipeline.

    The fingerprint hashes the source and every label, so annotations never
    change identity. Each fingerprint is its own group until routes define
    grouping.
    """
    fingerprint = stable_hash(source, sorted(labels.items()))
    return fingerprint, fingerprint

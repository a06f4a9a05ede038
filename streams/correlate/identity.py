"""Alert identity: the fingerprint of an alert and the group key of its incident."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.records import stable_hash

if TYPE_CHECKING:
    from schemas.config import Config


def group_key_for(
    config: Config | None, labels: dict[str, str], fingerprint: str
) -> str:
    """Return the group of an alert: its route's `group_by` values, or itself.

    The key hashes the route's position and the grouping labels' values, so
    alerts routed alike with equal values share one incident and partition.
    """
    found = config.route_for(labels) if config is not None else None
    if found is None or found[1].group_by is None:
        return fingerprint
    index, route = found
    values = [(name, labels.get(name, "")) for name in route.group_by or []]
    return stable_hash("group", index, values)


def alert_identity(
    source: str, labels: dict[str, str], config: Config | None = None
) -> tuple[str, str]:
    """Return the fingerprint and group key of an alert from outside the pipeline.

    The fingerprint hashes the source and every label, so annotations never
    change identity.
    """
    fingerprint = stable_hash(source, sorted(labels.items()))
    return fingerprint, group_key_for(config, labels, fingerprint)

"""Alert identity: the fingerprint of an alert and the group key of its incident."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.records import stable_hash

if TYPE_CHECKING:
    from schemas.config import Config


def group_key_for(
    config: Config | None,
    labels: dict[str, str],
    fingerprint: str,
    sender_group: str | None = None,
) -> str:
    """Return the group of an alert: its route's `group_by` values, or its sender's.

    The key hashes the route's position and the grouping labels' values, so
    alerts routed alike with equal values share one incident and partition.
    Without `group_by`, alerts that Alertmanager sent as one group
    (`sender_group`, its groupKey) share one incident, and any other alert
    is its own group.
    """
    found = config.route_for(labels) if config is not None else None
    if found is not None and found[1].group_by is not None:
        index, route = found
        values = [(name, labels.get(name, "")) for name in route.group_by or []]
        return stable_hash("group", index, values)
    if sender_group:
        return stable_hash("sender group", sender_group)
    return fingerprint


def alert_identity(
    source: str,
    labels: dict[str, str],
    config: Config | None = None,
    sender_group: str | None = None,
) -> tuple[str, str]:
    """Return the fingerprint and group key of an alert from outside the pipeline.

    The fingerprint hashes the source and the identifying labels: every
    label, or the route's `fingerprint_by` ones. Annotations never change
    identity.
    """
    found = config.route_for(labels) if config is not None else None
    identifying = labels
    if found is not None and found[1].fingerprint_by is not None:
        identifying = {k: labels.get(k, "") for k in found[1].fingerprint_by}
    fingerprint = stable_hash(source, sorted(identifying.items()))
    return fingerprint, group_key_for(config, labels, fingerprint, sender_group)

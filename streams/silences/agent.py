"""faust glue for silences: commands in, a global table of silences out."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from schemas.silences import MaintenanceWindow, Silence, SilenceCommand
from streams import topics

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)


def register(pipeline: Pipeline) -> None:
    table = pipeline.app.GlobalTable(
        "silences",
        default=None,
        partitions=pipeline.settings.topic_partitions,
        schema=_json_schema(),
    )
    pipeline.tables["silences"] = table
    # name -> maintenance windows created over HTTP, on every worker.
    pipeline.tables["maintenance-windows"] = pipeline.app.GlobalTable(
        "maintenance-windows",
        default=None,
        partitions=pipeline.settings.topic_partitions,
        schema=_json_schema(),
    )
    # fingerprint -> labels of every alert firing now, on every worker, so
    # inhibition can match sources on other partitions.
    pipeline.tables["firing-alerts"] = pipeline.app.GlobalTable(
        "firing-alerts",
        default=None,
        partitions=pipeline.settings.topic_partitions,
        schema=_json_schema(),
    )

    async def silences(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            command = await pipeline.dead_letters.parse(
                "silences", event, SilenceCommand.model_validate_json
            )
            if command is None:
                continue
            if command.action in ("create_window", "delete_window"):
                _apply_window(pipeline.tables["maintenance-windows"], command)
            else:
                _apply(table, command)

    topic = pipeline.topic(topics.SILENCE_COMMANDS)
    pipeline.app.agent(topic, name="silences")(silences)


def _json_schema() -> Any:
    import faust

    return faust.Schema(key_serializer="json", value_serializer="json")


def _apply(table: Any, command: SilenceCommand) -> None:
    if command.action == "create" and command.silence is not None:
        if table.get(command.silence_id) is None:
            table[command.silence_id] = command.silence.model_dump(mode="json")
            log.info(
                "silence created silence_id=%s actor=%r",
                command.silence_id,
                command.actor,
            )
        return
    stored = table.get(command.silence_id)
    if stored is None:
        log.warning("silence to expire not found silence_id=%s", command.silence_id)
        return
    silence = Silence.model_validate(stored)
    if silence.expired_at is None:
        expired = silence.model_copy(update={"expired_at": command.at})
        table[command.silence_id] = expired.model_dump(mode="json")
        log.info(
            "silence expired silence_id=%s actor=%r", command.silence_id, command.actor
        )


def _apply_window(table: Any, command: SilenceCommand) -> None:
    name = command.silence_id
    if command.action == "create_window" and command.window is not None:
        table[name] = command.window.model_dump(mode="json")
        log.info("maintenance window created name=%r actor=%r", name, command.actor)
        return
    if table.get(name) is None:
        log.warning("maintenance window to delete not found name=%r", name)
        return
    table.pop(name, None)
    log.info("maintenance window deleted name=%r actor=%r", name, command.actor)


def all_windows(pipeline: Pipeline) -> list[tuple[str, MaintenanceWindow]]:
    """Return every maintenance window with where it comes from: config or http."""
    windows = [("config", w) for w in pipeline.config.maintenance_windows]
    table = pipeline.tables.get("maintenance-windows")
    if table is not None:
        windows.extend(
            ("http", MaintenanceWindow.model_validate(v))
            for v in table.values()
            if v is not None
        )
    return windows


def all_silences(pipeline: Pipeline) -> list[Silence]:
    table = pipeline.tables.get("silences")
    if table is None:
        return []
    return [Silence.model_validate(v) for v in table.values() if v is not None]


def mute_reason(
    pipeline: Pipeline, labels: dict[str, str], at: datetime
) -> dict[str, str] | None:
    """Return why notifications for `labels` are muted at `at`, or None."""
    for silence in all_silences(pipeline):
        if silence.mutes(labels, at):
            matchers = ", ".join(str(m) for m in silence.matchers)
            return {
                "reason": "silenced",
                "silence_id": silence.silence_id,
                "matchers": matchers,
                "created_by": silence.created_by,
            }
    for _, window in all_windows(pipeline):
        if window.mutes(labels, at):
            return {"reason": "maintenance", "window": window.name}
    return inhibition(pipeline, labels)


def inhibition(pipeline: Pipeline, labels: dict[str, str]) -> dict[str, str] | None:
    """Return the firing alert that inhibits `labels` under an inhibit rule, if any."""
    rules = pipeline.config.inhibit_rules
    firing = pipeline.tables.get("firing-alerts")
    if not rules or firing is None:
        return None
    for fingerprint, source in firing.items():
        if not source:
            continue
        for rule in rules:
            if rule.inhibits(source, labels):
                return {
                    "reason": "inhibited",
                    "by": fingerprint,
                    "alertname": source.get("alertname", ""),
                }
    return None


def track_firing(
    pipeline: Pipeline, fingerprint: str, labels: dict[str, str] | None
) -> None:
    """Record an alert as firing (with its labels) or as cleared (None).

    Call it from an agent: a global table is written in the current event.
    """
    table = pipeline.tables.get("firing-alerts")
    if table is None or not pipeline.config.inhibit_rules:
        return
    if labels is None:
        table.pop(fingerprint, None)
    else:
        table[fingerprint] = labels

"""Send records a stage cannot process to the dead-letter topic, with the reason."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.records import DeadLetter
from schemas.validation_errors import describe_value
from streams import topics
from streams.keys import decode_key

if TYPE_CHECKING:
    import faust

    from streams.app import Pipeline

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> str:
    """Summarise a pydantic error as `field: message (got value)` clauses.

    A missing field gets no value: its input is the whole enclosing record.
    """
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        location = ".".join(str(p) for p in error["loc"]) or "(record)"
        # pydantic prefixes the text of a validator's ValueError.
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            parts.append(f"{location}: {message}")
            continue
        if error["type"] == "json_invalid":
            # The input is the raw body, which adds nothing to the message.
            parts.append(f"{location}: {message}")
            continue
        value = describe_value(error.get("input"), width=120)
        parts.append(f"{location}: {message} (got {value})")
    return f"invalid {exc.title}: " + "; ".join(parts)


class DeadLetters:
    """Parse incoming records and dead-letter the ones that are invalid."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.count = 0

    async def send(self, stage: str, event: faust.EventT[bytes], error: str) -> None:
        message = event.message
        raw = event.value if isinstance(event.value, bytes) else b""
        key = decode_key(event.key)
        record = DeadLetter(
            stage=stage,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            value=base64.b64encode(raw).decode(),
            error=error,
            at=self.pipeline.clock.now(),
        )
        self.count += 1
        self.pipeline.metrics.dead_lettered.labels(stage=stage).inc()
        log.warning(
            "record dead-lettered stage=%s topic=%s partition=%s offset=%s: %s",
            stage,
            message.topic,
            message.partition,
            message.offset,
            error,
        )
        await self.pipeline.publish(topics.DEAD_LETTER, key or "", record)

    async def send_raw(self, stage: str, source: str, raw: bytes, error: str) -> None:
        """Dead-letter an input that did not come from a topic, such as an HTTP body.

        `source` names where it came from (for example `POST /alerts`) and
        takes the place of the topic. Strip secrets from `raw` before calling.
        """
        record = DeadLetter(
            stage=stage,
            topic=source,
            partition=None,
            offset=None,
            key=None,
            value=base64.b64encode(raw).decode(),
            error=error,
            at=self.pipeline.clock.now(),
        )
        self.count += 1
        self.pipeline.metrics.dead_lettered.labels(stage=stage).inc()
        log.warning("input dead-lettered stage=%s source=%s: %s", stage, source, error)
        await self.pipeline.publish(topics.DEAD_LETTER, source, record)

    async def parse(
        self, stage: str, event: faust.EventT[bytes], parser: Callable[[bytes], ModelT]
    ) -> ModelT | None:
        """Return the parsed record, or None after dead-lettering an invalid one."""
        metrics = self.pipeline.metrics
        metrics.records_in.labels(topic=metrics.topic(event.message.topic)).inc()
        value = event.value
        if not isinstance(value, bytes):
            await self.send(stage, event, f"invalid value type {type(value).__name__}")
            return None
        try:
            return parser(value)
        except ValidationError as exc:
            await self.send(stage, event, describe_validation_error(exc))
            return None
        except ValueError as exc:
            await self.send(stage, event, f"invalid record: {exc}")
            return None

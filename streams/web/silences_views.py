"""Silence views: create, list and expire silences over HTTP."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from faust import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.durations import Duration
from schemas.silences import MaintenanceWindow, Silence, SilenceCommand
from streams import topics
from streams.deadletter import describe_validation_error
from streams.silences.agent import all_silences, all_windows

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

# Names end up in logs and on timelines: no control characters.
NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
# A window name also appears in paths: printable, and not only spaces.
WINDOW_NAME = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"


class SilenceRequest(BaseModel):
    """Body of `POST /silences`: matchers and either `ends_at` or `duration`."""

    model_config = ConfigDict(extra="forbid", title="silence request")

    matchers: list[str] = Field(min_length=1, max_length=100)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: Duration | None = None
    created_by: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    comment: str = Field(default="", max_length=2000)


class ExpireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", title="request body")

    actor: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)


def _build(request: SilenceRequest, now: Any) -> Silence:
    starts_at = request.starts_at or now
    if request.ends_at is None and request.duration is None:
        raise ValueError("a silence needs ends_at or duration, for example 2h")
    if request.ends_at is not None and request.duration is not None:
        raise ValueError("a silence takes ends_at or duration, not both")
    try:
        ends_at = request.ends_at or starts_at + (request.duration or timedelta(0))
    except OverflowError:
        raise ValueError(
            f"starts_at {starts_at.isoformat()} plus the duration passes the year 9999"
        ) from None
    return Silence.model_validate(
        {
            "silence_id": str(uuid.uuid4()),
            "matchers": request.matchers,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "created_by": request.created_by,
            "comment": request.comment,
        }
    )


def register(pipeline: Pipeline) -> None:
    app = pipeline.app

    @app.page("/silences")
    class Silences(web.View):
        async def get(self, request: web.Request) -> web.Response:
            now = pipeline.clock.now()
            wanted = request.query.get("state")
            if wanted not in (None, "active", "pending", "expired"):
                error = f"invalid state {wanted!r}: allowed active, pending, expired"
                return self.json({"error": error}, status=400)
            rows = []
            for silence in sorted(all_silences(pipeline), key=lambda s: s.starts_at):
                state = silence.state(now)
                if wanted is None or wanted == state:
                    rows.append({**silence.model_dump(mode="json"), "state": state})
            return self.json({"silences": rows})

        async def post(self, request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body = SilenceRequest.model_validate_json(raw or b"{}")
                silence = _build(body, pipeline.clock.now())
            except ValidationError as exc:
                return self.json({"error": describe_validation_error(exc)}, status=400)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            command = SilenceCommand(
                action="create",
                silence_id=silence.silence_id,
                silence=silence,
                actor=body.created_by,
                at=pipeline.clock.now(),
            )
            await pipeline.publish(topics.SILENCE_COMMANDS, silence.silence_id, command)
            log.info("silence requested silence_id=%s", silence.silence_id)
            return self.json({"silence": silence.model_dump(mode="json")}, status=202)

    @app.page("/silences/{silence_id}/expire")
    class ExpireSilence(web.View):
        async def post(self, request: web.Request, silence_id: str) -> web.Response:
            try:
                body = ExpireRequest.model_validate_json(await request.read() or b"{}")
            except ValidationError as exc:
                return self.json({"error": describe_validation_error(exc)}, status=400)
            known = {s.silence_id for s in all_silences(pipeline)}
            if silence_id not in known:
                error = f"silence {silence_id!r} not found"
                return self.json({"error": error}, status=404)
            command = SilenceCommand(
                action="expire",
                silence_id=silence_id,
                actor=body.actor,
                at=pipeline.clock.now(),
            )
            await pipeline.publish(topics.SILENCE_COMMANDS, silence_id, command)
            return self.json({"expiring": silence_id}, status=202)

    @app.page("/maintenance-windows")
    class MaintenanceWindows(web.View):
        async def get(self, request: web.Request) -> web.Response:
            now = pipeline.clock.now()
            rows = [
                {
                    **window.model_dump(mode="json"),
                    "source": source,
                    "active": window.active(now),
                }
                for source, window in all_windows(pipeline)
            ]
            return self.json({"maintenance_windows": rows})

        async def post(self, request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body = WindowRequest.model_validate_json(raw or b"{}")
                window = MaintenanceWindow.model_validate(
                    body.model_dump(exclude_none=True)
                )
            except ValidationError as exc:
                return self.json({"error": describe_validation_error(exc)}, status=400)
            taken = {w.name: source for source, w in all_windows(pipeline)}
            if window.name in taken:
                error = (
                    f"maintenance window {window.name!r} already exists "
                    f"(from {taken[window.name]}); delete it first or pick a new name"
                )
                return self.json({"error": error}, status=409)
            command = SilenceCommand(
                action="create_window",
                silence_id=window.name,
                window=window,
                actor=window.created_by,
                at=pipeline.clock.now(),
            )
            await pipeline.publish(topics.SILENCE_COMMANDS, window.name, command)
            log.info("maintenance window requested name=%r", window.name)
            body_out = {"maintenance_window": window.model_dump(mode="json")}
            return self.json(body_out, status=202)

    @app.page("/maintenance-windows/{name}/delete")
    class DeleteWindow(web.View):
        async def post(self, request: web.Request, name: str) -> web.Response:
            try:
                body = ExpireRequest.model_validate_json(await request.read() or b"{}")
            except ValidationError as exc:
                return self.json({"error": describe_validation_error(exc)}, status=400)
            sources = {w.name: source for source, w in all_windows(pipeline)}
            if name not in sources:
                error = f"maintenance window {name!r} not found"
                return self.json({"error": error}, status=404)
            if sources[name] == "config":
                error = (
                    f"maintenance window {name!r} comes from the configuration "
                    "file; remove it there"
                )
                return self.json({"error": error}, status=409)
            command = SilenceCommand(
                action="delete_window",
                silence_id=name,
                actor=body.actor,
                at=pipeline.clock.now(),
            )
            await pipeline.publish(topics.SILENCE_COMMANDS, name, command)
            return self.json({"deleting": name}, status=202)


class WindowRequest(BaseModel):
    """Body of `POST /maintenance-windows`: a window, with who creates it."""

    model_config = ConfigDict(extra="forbid", title="maintenance window request")

    name: str = Field(min_length=1, max_length=200, pattern=WINDOW_NAME)
    matchers: list[str] = Field(min_length=1, max_length=100)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    every: dict[str, Any] | None = None
    created_by: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    comment: str = Field(default="", max_length=2000)

"""faust web views: health, incidents, acknowledge and resolve, Prometheus."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from faust import web
from pydantic import ValidationError

from schemas.records import Command, CommandKind, group_key_of
from streams import topics
from streams.deadletter import describe_validation_error
from streams.web import routing
from streams.web.queries import (
    CommandBody,
    IncidentFilter,
    filter_incidents,
    merge_listings,
)

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

# Commands that a resolved incident rejects over HTTP with 409.
ENDING_COMMANDS = frozenset({CommandKind.ACKNOWLEDGE, CommandKind.RESOLVE})


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    incidents = pipeline.tables["incidents"]

    def bad_request(view: web.View, message: str) -> web.Response:
        return view.json({"error": message}, status=400)

    @app.page("/health")
    async def health(view: web.View, request: web.Request) -> web.Response:
        clock = pipeline.clock
        return view.json({"status": "ok", "clock": clock.now().isoformat()})

    @app.page("/ready")
    async def ready(view: web.View, request: web.Request) -> web.Response:
        tables: Any = app.tables
        recovered = tables.recovery.completed.is_set()
        if recovered and not app.rebalancing:
            return view.json({"status": "ready"})
        return view.json({"status": "starting"}, status=503)

    # Each worker lists its own partitions' incidents; the one asked merges
    # the other workers' pages into one.
    @app.page("/incidents")
    async def list_incidents(view: web.View, request: web.Request) -> web.Response:
        params = {k: v for k, v in request.query.items() if k != "scope"}
        try:
            query = IncidentFilter.model_validate(params)
        except ValidationError as exc:
            return bad_request(view, describe_validation_error(exc))
        if routing.is_local(request):
            first_pages = query.model_copy(
                update={"offset": 0, "limit": query.offset + query.limit}
            )
            return view.json(filter_incidents(list(incidents.values()), first_pages))
        local = list(incidents.values())
        parts, failed = await routing.gather_from_peers(app, request)
        listing = merge_listings(local, parts, query)
        if failed:
            listing["unavailable_workers"] = failed
        return view.json(listing)

    @app.page("/incidents/{incident_id}")
    async def show_incident(
        view: web.View, request: web.Request, incident_id: str
    ) -> web.Response:
        found = await routing.load_incident(app, incidents, incident_id, view, request)
        if not isinstance(found, dict):
            return found
        return view.json(found)

    async def stored_incident(incident_id: str, group_key: str) -> Any | None:
        if routing.owned_here(app, incidents.name, group_key):
            return incidents.get(incident_id)
        return await routing.get_from_owner(
            app, incidents.name, group_key, f"/incidents/{incident_id}"
        )

    async def command(
        view: web.View, request: web.Request, incident_id: str, kind: CommandKind
    ) -> web.Response:
        try:
            group_key = group_key_of(incident_id)
            body = CommandBody.model_validate_json(await request.read() or b"{}")
        except ValidationError as exc:
            return bad_request(view, describe_validation_error(exc))
        except ValueError as exc:
            return bad_request(view, str(exc))
        try:
            stored = await stored_incident(incident_id, group_key)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "request to the owner of incident_id=%s failed: %r", incident_id, exc
            )
            return view.json(
                {
                    "error": f"request to the worker owning {incident_id!r} "
                    "failed, retry"
                },
                status=503,
            )
        if stored is None:
            return view.json(
                {"error": f"incident {incident_id!r} not found"}, status=404
            )
        if kind in ENDING_COMMANDS and stored.get("state") == "resolved":
            # The pipeline would drop the command, because the resolve wins.
            log.info(
                "command rejected kind=%s incident_id=%s: already resolved",
                kind,
                incident_id,
            )
            return view.json(
                {
                    "error": f"incident {incident_id!r} is already resolved, "
                    f"so {kind.value} would change nothing; a new alert that "
                    "matches it reopens it or opens a recurrence",
                    "state": "resolved",
                },
                status=409,
            )
        if kind is CommandKind.NOTE and not body.note:
            return bad_request(view, "a note needs a non-empty note field")
        if body.resolution is not None and kind is not CommandKind.RESOLVE:
            return bad_request(view, "resolution is allowed on a resolve only")
        details: dict[str, Any] = {"note": body.note} if body.note else {}
        if body.resolution is not None:
            details["resolution"] = body.resolution
        record = Command(
            command_id=str(uuid.uuid4()),
            kind=kind,
            incident_id=incident_id,
            actor=body.actor,
            source="http",
            at=pipeline.clock.now(),
            details=details,
        )
        await pipeline.publish(topics.COMMANDS, group_key, record)
        log.info("command accepted kind=%s incident_id=%s", kind, incident_id)
        return view.json({"accepted": record.model_dump(mode="json")}, status=202)

    @app.page("/incidents/{incident_id}/acknowledge")
    class Acknowledge(web.View):
        async def post(self, request: web.Request, incident_id: str) -> web.Response:
            return await command(self, request, incident_id, CommandKind.ACKNOWLEDGE)

    @app.page("/incidents/{incident_id}/resolve")
    class Resolve(web.View):
        async def post(self, request: web.Request, incident_id: str) -> web.Response:
            return await command(self, request, incident_id, CommandKind.RESOLVE)

    @app.page("/incidents/{incident_id}/notes")
    class Notes(web.View):
        async def post(self, request: web.Request, incident_id: str) -> web.Response:
            return await command(self, request, incident_id, CommandKind.NOTE)

    @app.page("/metrics")
    async def prometheus(view: web.View, request: web.Request) -> web.Response:
        return view.bytes(
            pipeline.metrics.exposition(),
            content_type="text/plain; version=0.0.4",
        )

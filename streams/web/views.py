"""faust web views: health, incidents, acknowledge and resolve, response metrics."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from faust import web
from pydantic import ValidationError

from schemas.records import Command, CommandKind, group_key_of
from streams import topics
from streams.analytics.metrics import WINDOWS_S, window_rows
from streams.deadletter import describe_validation_error
from streams.web.queries import CommandBody, IncidentFilter, filter_incidents

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


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

    # NOTE: lists read this worker's tables only. With several workers each
    # lists the incidents of its own partitions, until queries are routed.
    @app.page("/incidents")
    async def list_incidents(view: web.View, request: web.Request) -> web.Response:
        try:
            query = IncidentFilter.model_validate(dict(request.query))
        except ValidationError as exc:
            return bad_request(view, describe_validation_error(exc))
        return view.json(filter_incidents(list(incidents.values()), query))

    @app.page("/incidents/{incident_id}")
    async def show_incident(
        view: web.View, request: web.Request, incident_id: str
    ) -> web.Response:
        incident = incidents.get(incident_id)
        if incident is None:
            return view.json(
                {"error": f"incident {incident_id!r} not found"}, status=404
            )
        return view.json(incident)

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
        if incidents.get(incident_id) is None:
            return view.json(
                {"error": f"incident {incident_id!r} not found"}, status=404
            )
        if kind is CommandKind.NOTE and not body.note:
            return bad_request(view, "a note needs a non-empty note field")
        record = Command(
            command_id=str(uuid.uuid4()),
            kind=kind,
            incident_id=incident_id,
            actor=body.actor,
            source="http",
            at=pipeline.clock.now(),
            details={"note": body.note} if body.note else {},
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

    @app.page("/metrics/response")
    async def response_metrics(view: web.View, request: web.Request) -> web.Response:
        window = request.query.get("window", "hourly")
        if window not in WINDOWS_S:
            allowed = ", ".join(WINDOWS_S)
            return bad_request(view, f"invalid window {window!r}: allowed {allowed}")
        table = pipeline.tables[f"response-{window}"].table
        service = request.query.get("service")
        at = request.query.get("at")
        if at is None:
            rows = window_rows(table.items(), window, service)
            return view.json({"window": window, "rows": rows})
        if service is None:
            return bad_request(view, "the at parameter needs a service parameter")
        try:
            timestamp = float(at)
        except ValueError:
            return bad_request(view, f"invalid at {at!r}: expected Unix seconds")
        start, end = table.window.ranges(timestamp)[0]
        stored = table.get((service, (start, end))) or {}
        rows = window_rows([((service, (start, end)), stored)], window)
        return view.json({"window": window, "rows": rows})

"""Web views of response analytics: metrics API, on-call, postmortems, dashboard.

A metrics query for one dimension goes to the worker that owns that key's
partition (`table_route`). A query without one gathers every worker's rows.
"""

from __future__ import annotations

import logging
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from faust import web

from schemas.config import Config
from schemas.oncall import Target
from schemas.records import Severity
from streams.analytics.metrics import WINDOWS, window_rows
from streams.analytics.postmortem import render_postmortem
from streams.web import routing
from streams.web.oncall_views import oncall_report

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

DASHBOARD_ASSETS = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
}
DIMENSION_KINDS = ("all", "service", "severity")


def invalid_dimension(dimension: str) -> str | None:
    """Return why a dimension key is invalid, or None when it is valid."""
    kind, _, name = dimension.partition(":")
    expected = "expected all, service:NAME or severity:NAME"
    if kind == "all" and not name and ":" not in dimension:
        return None
    if kind == "service" and name:
        return None
    if kind == "severity" and name in {s.value for s in Severity}:
        return None
    return f"invalid dimension {dimension!r}: {expected}"


# Times a query may name, in Unix seconds: 1970 to the start of 2100. Faust
# lists every window from 0 up to a time, so a far-future one exhausts memory.
MAX_QUERY_TIME_S = 4_102_444_800.0


def _float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    problem = (
        f"invalid {name} {raw!r}: expected Unix seconds from 0 to "
        f"{MAX_QUERY_TIME_S:.0f} (the start of 2100)"
    )
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(problem) from None
    if not 0.0 <= value <= MAX_QUERY_TIME_S:
        raise ValueError(problem)
    return value


def _asset(name: str) -> bytes:
    return resources.files("streams.web").joinpath("dashboard", name).read_bytes()


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    incidents = pipeline.tables["incidents"]
    targets = pipeline.config.targets

    def bad_request(view: web.View, message: str) -> web.Response:
        return view.json({"error": message}, status=400)

    def rows_in_range(
        window: str, dimension: str | None, kind: str | None, request: web.Request
    ) -> list[dict[str, Any]]:
        table = pipeline.tables[f"response-{window}"].table
        since = _float_param(request, "from")
        until = _float_param(request, "to")
        rows = window_rows(table.items(), window, dimension, kind, targets)
        return [
            row
            for row in rows
            if (since is None or row["window_end"] >= since)
            and (until is None or row["window_start"] <= until)
        ]

    def one_window(window: str, dimension: str, at: float) -> list[dict[str, Any]]:
        """Return the row of the window starting last at or before `at`."""
        table = pipeline.tables[f"response-{window}"].table
        start, end = table.window.ranges(at)[-1]
        stored = table.get((dimension, (start, end))) or {}
        return window_rows(
            [((dimension, (start, end)), stored)], window, targets=targets
        )

    def register_window(window: str) -> None:
        table = pipeline.tables[f"response-{window}"].table

        @app.page(f"/api/metrics/{window}/{{dimension}}")
        @routing.table_route_or_local(app, table, "dimension")
        async def dimension_metrics(
            view: web.View, request: web.Request, dimension: str
        ) -> web.Response:
            problem = invalid_dimension(dimension)
            if problem is not None:
                return bad_request(view, problem)
            try:
                at = _float_param(request, "at")
                if at is not None:
                    rows = one_window(window, dimension, at)
                else:
                    rows = rows_in_range(window, dimension, None, request)
            except ValueError as exc:
                return bad_request(view, str(exc))
            return view.json({"window": window, "dimension": dimension, "rows": rows})

    for name in WINDOWS:
        register_window(name)

    async def gathered_rows(
        view: web.View, request: web.Request, window: str, kind: str | None
    ) -> web.Response:
        try:
            rows = rows_in_range(window, None, kind, request)
        except ValueError as exc:
            return bad_request(view, str(exc))
        body: dict[str, Any] = {"window": window, "rows": rows}
        if routing.is_local(request):
            return view.json(body)
        parts, failed = await routing.gather_from_peers(app, request)
        for part in parts:
            rows.extend(part.get("rows", []))
        rows.sort(key=lambda row: (row["dimension"], row["window_start"]))
        if failed:
            body["unavailable_workers"] = failed
        return view.json(body)

    @app.page("/api/metrics/{window}")
    async def all_metrics(
        view: web.View, request: web.Request, window: str
    ) -> web.Response:
        if window not in WINDOWS:
            allowed = ", ".join(WINDOWS)
            return bad_request(view, f"invalid window {window!r}: allowed {allowed}")
        kind = request.query.get("kind")
        if kind is not None and kind not in DIMENSION_KINDS:
            allowed = ", ".join(DIMENSION_KINDS)
            return bad_request(view, f"invalid kind {kind!r}: allowed {allowed}")
        return await gathered_rows(view, request, window, kind)

    @app.page("/metrics/response")
    async def response_metrics(view: web.View, request: web.Request) -> web.Response:
        """Per-service rows; `service` routes to its owner, `at` picks a window."""
        window = request.query.get("window", "hourly")
        if window not in WINDOWS:
            allowed = ", ".join(WINDOWS)
            return bad_request(view, f"invalid window {window!r}: allowed {allowed}")
        service = request.query.get("service")
        if service is None:
            if "at" in request.query:
                return bad_request(view, "the at parameter needs a service parameter")
            return await gathered_rows(view, request, window, "service")
        dimension = f"service:{service}"
        routed = await routing.route_to_owner(
            app, f"response-{window}", dimension, view, request
        )
        if routed is not None:
            return routed
        try:
            at = _float_param(request, "at")
            if at is not None:
                rows = one_window(window, dimension, at)
            else:
                rows = rows_in_range(window, dimension, None, request)
        except ValueError as exc:
            return bad_request(view, str(exc))
        return view.json({"window": window, "rows": rows})

    @app.page("/api/oncall")
    async def on_call(view: web.View, request: web.Request) -> web.Response:
        """Return whom each policy pages now, level by level, and its routes.

        A schedule target names whoever is on call on it at the pipeline
        clock, and a user target the user, each with their receivers.
        """
        config = pipeline.config
        now = pipeline.clock.now()
        policies = []
        for name, policy in sorted(config.policies.items()):
            levels = [
                {
                    "delay_s": level.delay.total_seconds(),
                    "targets": [
                        _paged(config, target, now) for target in level.targets
                    ],
                }
                for level in policy.levels
            ]
            routes = [
                {"match": route.match}
                for route in config.routes
                if route.policy == name
            ]
            policies.append(
                {
                    "policy": name,
                    "on_call": levels[0]["targets"],
                    "levels": levels,
                    "routes": routes,
                    "default": name == config.default_policy,
                }
            )
        return view.json({"at": now.isoformat(), "policies": policies})

    @app.page("/incidents/{incident_id}/postmortem")
    async def postmortem(
        view: web.View, request: web.Request, incident_id: str
    ) -> web.Response:
        found = await routing.load_incident(app, incidents, incident_id, view, request)
        if not isinstance(found, dict):
            return found
        markdown = render_postmortem(found, pipeline.config.targets)
        return view.text(markdown, content_type="text/markdown")

    @app.page("/dashboard")
    async def dashboard(view: web.View, request: web.Request) -> web.Response:
        return view.html(_asset("index.html").decode())

    @app.page("/dashboard/{asset}")
    async def dashboard_asset(
        view: web.View, request: web.Request, asset: str
    ) -> web.Response:
        content_type = DASHBOARD_ASSETS.get(asset)
        if content_type is None:
            return view.json({"error": f"asset {asset!r} not found"}, status=404)
        return view.bytes(_asset(asset), content_type=content_type)


def _paged(config: Config, target: Target, at: datetime) -> dict[str, Any]:
    """Return whom a policy target pages at `at`, with their receivers."""
    if target.schedule is not None:
        [row] = oncall_report(config, [target.schedule], at)["schedules"]
        shift = row["on_call"]
        return {
            "schedule": target.schedule,
            "user": shift["user"] if shift else None,
            "receivers": row["receivers"],
        }
    if target.user is not None:
        known = config.users.get(target.user)
        return {
            "user": target.user,
            "receivers": list(known.receivers) if known else [],
        }
    return {"receiver": target.receiver, "receivers": [target.receiver]}

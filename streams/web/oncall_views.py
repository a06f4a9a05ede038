"""On-call views: who is on call on each schedule, now or at a given time."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faust import web

from schemas.config import Config
from streams.escalate.schedules import on_call

if TYPE_CHECKING:
    from streams.app import Pipeline


def parse_time(text: str) -> datetime:
    """Parse ISO 8601 (UTC when it names no zone) or Unix seconds.

    Raises ValueError naming the value and the accepted forms.
    """
    problem = (
        f"invalid time {text!r}: use ISO 8601, such as 2024-05-01T09:00:00+02:00, "
        "or Unix seconds"
    )
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(problem)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(problem) from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(problem) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def oncall_report(config: Config, names: list[str], at: datetime) -> dict[str, Any]:
    """Return who is on call at `at` on each named schedule, with their receivers."""
    rows = []
    for name in names:
        shift = on_call(config.schedules[name], at)
        user = config.users.get(shift.user) if shift else None
        rows.append(
            {
                "schedule": name,
                "on_call": shift.as_json() if shift else None,
                "receivers": list(user.receivers) if user else [],
            }
        )
    return {"at": at.astimezone(UTC).isoformat(), "schedules": rows}


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    config = pipeline.config

    def answer(view: web.View, request: web.Request, names: list[str]) -> web.Response:
        text = request.query.get("at")
        try:
            at = pipeline.clock.now() if text is None else parse_time(text)
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        try:
            report = oncall_report(config, names, at)
        except OverflowError:
            error = f"invalid time {text!r}: too far in the future for the schedules"
            return view.json({"error": error}, status=400)
        return view.json(report)

    @app.page("/oncall")
    async def every_schedule(view: web.View, request: web.Request) -> web.Response:
        return answer(view, request, sorted(config.schedules))

    @app.page("/oncall/{schedule}")
    async def one_schedule(
        view: web.View, request: web.Request, schedule: str
    ) -> web.Response:
        if schedule not in config.schedules:
            defined = sorted(config.schedules)
            return view.json(
                {"error": f"schedule {schedule!r} not found; defined: {defined}"},
                status=404,
            )
        return answer(view, request, [schedule])

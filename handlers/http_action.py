"""Runbook HTTP action: render it from an incident, then send it or only record it."""

from __future__ import annotations

import string
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from schemas.config import HttpAction
from schemas.records import IncidentEvent


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"unknown template field {key!r}; known: {sorted(self)}")


def template_fields(event: IncidentEvent) -> dict[str, str]:
    """Return the values a runbook template may use: incident fields and labels."""
    fields = {f"labels.{name}": value for name, value in event.labels.items()}
    fields.update(
        incident_id=event.incident_id,
        service=event.service,
        severity=str(event.severity),
        rule=event.rule,
        title=event.title,
    )
    return fields


def _render(template: str, fields: dict[str, str], escape: Any = str) -> str:
    formatter = string.Formatter()
    out = []
    for literal, name, _, _ in formatter.parse(template):
        out.append(literal)
        if name is not None:
            out.append(escape(_Fields(fields)[name]))
    return "".join(out)


def _render_body(value: Any, fields: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _render(value, fields)
    if isinstance(value, dict):
        return {k: _render_body(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_body(v, fields) for v in value]
    return value


def render_request(action: HttpAction, event: IncidentEvent) -> dict[str, Any]:
    """Render the request: URL values percent-encoded, body values JSON-encoded.

    Raises ValueError for an unknown template field or a header value that
    would contain a line break.
    """
    fields = template_fields(event)
    try:
        url = _render(action.url, fields, lambda v: quote(v, safe=""))
        headers = {k: _render(v, fields) for k, v in action.headers.items()}
        body = _render_body(action.body, fields) if action.body is not None else None
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} would contain a line break")
    return {"method": action.method, "url": url, "headers": headers, "json": body}


async def send_request(
    session: aiohttp.ClientSession, action: HttpAction, request: dict[str, Any]
) -> dict[str, Any]:
    """Send a rendered request and return its step result."""
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=action.timeout.total_seconds())
    try:
        async with session.request(
            request["method"],
            request["url"],
            headers=request["headers"],
            json=request["json"],
            timeout=timeout,
        ) as response:
            body = (await response.content.read(4096)).decode(errors="replace")
            ok = response.status == action.expected_status
            return {
                "status": "succeeded" if ok else "failed",
                "http_status": response.status,
                "response": body,
                "duration_s": round(time.monotonic() - started, 3),
                "error": None
                if ok
                else f"expected HTTP {action.expected_status}, got {response.status}",
            }
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {
            "status": "failed",
            "http_status": None,
            "response": "",
            "duration_s": round(time.monotonic() - started, 3),
            "error": f"request failed: {exc!r}",
        }

"""Runbook HTTP action: send a rendered request and report the step result.

Rendering, with URL and header escaping, lives in `streams.runbooks.render`.
The step's timeout cancels the request from outside (see the runner).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

# Bytes of the response body kept in the step result.
RESPONSE_KEPT_BYTES = 4096


async def send_request(
    session: aiohttp.ClientSession, request: dict[str, Any], expected_status: int
) -> dict[str, Any]:
    """Send a rendered request and return its step result."""
    started = time.monotonic()
    try:
        async with session.request(
            request["method"],
            request["url"],
            headers=request["headers"],
            json=request["json"],
        ) as response:
            raw = await response.content.read(RESPONSE_KEPT_BYTES)
            ok = response.status == expected_status
            return {
                "status": "succeeded" if ok else "failed",
                "http_status": response.status,
                "response": raw.decode(errors="replace"),
                "duration_s": round(time.monotonic() - started, 3),
                "error": None
                if ok
                else f"expected HTTP {expected_status}, got {response.status}",
            }
    except aiohttp.ClientError as exc:
        return {
            "status": "failed",
            "http_status": None,
            "response": "",
            "duration_s": round(time.monotonic() - started, 3),
            "error": f"request failed: {exc!r}",
        }

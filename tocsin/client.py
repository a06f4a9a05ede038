"""A small client of the web view, used by the CLI and the demo."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class WebViewError(Exception):
    """The web view rejected a request or could not be reached."""


def request(
    base_url: str, path: str, body: dict[str, Any] | None = None, timeout_s: float = 10
) -> Any:
    """Send a GET (or a POST when `body` is given) and return the decoded JSON."""
    return json.loads(_send(base_url, path, body, timeout_s) or b"null")


def request_text(base_url: str, path: str, timeout_s: float = 10) -> str:
    """Send a GET and return the body as text."""
    return _send(base_url, path, None, timeout_s).decode()


def _send(
    base_url: str, path: str, body: dict[str, Any] | None, timeout_s: float
) -> bytes:
    if not base_url.startswith(("http://", "https://")):
        raise WebViewError(
            f"invalid web view URL {base_url!r}: expected http://HOST:PORT, "
            "such as http://127.0.0.1:6066"
        )
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            raw: bytes = response.read()
            return raw
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise WebViewError(
            f"{req.method} {path} failed: HTTP {exc.code} {detail}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebViewError(f"cannot reach the web view at {base_url}: {exc}") from exc

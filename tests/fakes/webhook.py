"""Fake webhook endpoint that verifies signatures and drops repeated keys.

It behaves as a careful webhook consumer should: a request whose
`Idempotency-Key` it already applied gets 200 and is not applied again.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from .server import FakeServer, TlsCertificate

PATH = "/hooks/tocsin"


class FakeWebhook(FakeServer):
    """Webhook endpoint on POST /hooks/tocsin.

    With a `secret`, a request whose `signature_header` is not `sha256=` and
    the HMAC-SHA256 of the body under it is rejected with 401.
    """

    def __init__(
        self,
        secret: str | None = None,
        signature_header: str = "X-Tocsin-Signature",
        *,
        tls: TlsCertificate | None = None,
    ) -> None:
        super().__init__(tls=tls)
        self.secret = secret
        self.signature_header = signature_header
        self._applied: dict[str, dict[str, Any]] = {}

    @property
    def hook_url(self) -> str:
        return self.url + PATH

    @property
    def applied(self) -> dict[str, dict[str, Any]]:
        """Bodies applied once each, by idempotency key."""
        with self._lock:
            return copy.deepcopy(self._applied)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.secret is not None:
            expected = hmac.new(self.secret.encode(), body, hashlib.sha256)
            received = request.headers.get(self.signature_header, "")
            if not hmac.compare_digest(received, f"sha256={expected.hexdigest()}"):
                return web.json_response({"error": "invalid signature"}, status=401)
        try:
            decoded = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key missing"}, status=400)
        with self._lock:
            repeated = key in self._applied
            if not repeated:
                self._applied[key] = decoded
        return web.json_response({"ok": True, "repeated": repeated})

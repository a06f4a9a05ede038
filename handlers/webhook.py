"""Webhook receiver: each notification as a JSON POST, optionally signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from handlers.base import DeliveryError, parse_retry_after, retriable_status
from schemas.records import Notification

log = logging.getLogger(__name__)

# The body's version; a breaking change of its shape gets a new number.
BODY_VERSION = 1


def webhook_body(notification: Notification) -> bytes:
    """Encode the JSON body: the notification's ids and its incident event."""
    event = notification.event
    body = {
        "version": BODY_VERSION,
        "notification_id": notification.notification_id,
        "idempotency_key": notification.notification_id,
        "receiver": notification.receiver,
        "incident_id": event.incident_id,
        "transition": event.kind,
        "transition_seq": event.seq,
        "event": event.model_dump(mode="json"),
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: SecretStr, body: bytes) -> str:
    """Return `sha256=` and the hex HMAC-SHA256 of `body` under `secret`."""
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def redacted_url(url: str) -> str:
    """Return the URL's scheme, host and port only.

    Webhook URLs often carry a token in their path or query, so errors and
    logs name only where the request went.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookReceiver:
    """POST every notification to a URL as JSON.

    Each request carries an `Idempotency-Key` header with the notification
    id, the same on every retry, so the endpoint can drop repeats: a request
    that timed out may have been applied. With a secret, `signature_header`
    carries `sha256=` and the HMAC-SHA256 of the exact body bytes.
    """

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        secret: SecretStr | None = None,
        signature_header: str = "X-Tocsin-Signature",
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        self._secret = secret
        self._signature_header = signature_header
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"WebhookReceiver(name={self.name!r}, url={redacted_url(self._url)!r})"

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        body = webhook_body(notification)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": notification.notification_id,
        }
        if self._secret is not None:
            headers[self._signature_header] = signature(self._secret, body)
        where = redacted_url(self._url)
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self._url, data=body, headers=headers) as response,
            ):
                status = response.status
                retry_after = response.headers.get("Retry-After")
                await response.read()
        except TimeoutError:
            raise DeliveryError(
                f"webhook request to {where} timed out after {self._timeout.total} s",
                retriable=True,
                outcome_unknown=True,
            ) from None
        except aiohttp.ClientError as exc:
            # The exception's text can contain the whole URL, so only its
            # type is shown.
            raise DeliveryError(
                f"webhook request to {where} failed: {type(exc).__name__}",
                retriable=True,
                outcome_unknown=True,
            ) from None
        if 200 <= status < 300:
            return {"last_status": status}
        raise DeliveryError(
            f"webhook {where} returned HTTP {status}",
            retriable=retriable_status(status),
            retry_after_s=parse_retry_after(retry_after),
            outcome_unknown=status >= 500,
        )

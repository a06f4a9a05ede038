"""Email receiver: each notification as a plain-text message over SMTP."""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiosmtplib
from pydantic import SecretStr

from handlers.base import DeliveryError
from schemas.records import Notification

log = logging.getLogger(__name__)


def email_message(
    notification: Notification, sender: str, to: list[str], subject_prefix: str
) -> EmailMessage:
    """Build the message; its Message-ID derives from the notification id."""
    event = notification.event
    message = EmailMessage()
    subject = (
        f"{subject_prefix} {event.kind.upper()} {event.severity} "
        f"{event.service}: {event.title}"
    )
    # A header must be one line, and titles come from alert annotations.
    message["Subject"] = " ".join(subject.split())[:200]

    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(event.at)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "tocsin.invalid"
    local = notification.notification_id.replace(":", ".")
    message["Message-ID"] = f"<{local}@{domain}>"
    message["X-Tocsin-Idempotency-Key"] = notification.notification_id

    lines = [
        f"Incident {event.incident_id}: {event.title}",
        "",
        f"Transition: {event.kind} by {event.actor} at {event.at.isoformat()}",
        f"State:      {event.state}",
        f"Severity:   {event.severity}",
        f"Service:    {event.service}",
        f"Rule:       {event.rule}",
        f"Opened:     {event.opened_at.isoformat()}",
        "",
        "Labels:",
        *(f"  {name}={value}" for name, value in sorted(event.labels.items())),
    ]
    # A runbook's notify step carries its text in the event's details.
    text = event.details.get("message")
    if isinstance(text, str):
        runbook = event.details.get("runbook", "")
        lines[1:1] = ["", f"Runbook {runbook}: {text}"]
    message.set_content("\n".join(lines) + "\n")
    return message


class EmailReceiver:
    """Send every notification as an email through one SMTP server.

    With `starttls` the client upgrades the connection before it
    authenticates, and a server without STARTTLS fails the delivery for
    good. The configuration accepts a username only with `starttls` or
    `tls`, so the password never travels in plain text. `tls_context` replaces
    the system's trusted certificates (tests pass one that trusts their
    server). SMTP has no idempotency key, so a retry after a lost reply can
    deliver a second copy. The Message-ID is the same on every try, so mail
    clients and servers that deduplicate by it can drop that copy.
    """

    kind = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        starttls: bool = True,
        tls: bool = False,
        username: str | None = None,
        password: SecretStr | None = None,
        subject_prefix: str = "[tocsin]",
        timeout_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self._host = host
        self._port = port
        self._sender = sender
        self._to = list(to)
        self._starttls = starttls
        self._tls = tls
        self._username = username
        self._password = password
        self._subject_prefix = subject_prefix
        self._timeout_s = timeout_s
        self._tls_context = tls_context

    def __repr__(self) -> str:
        return (
            f"EmailReceiver(name={self.name!r}, host={self._host!r}, "
            f"port={self._port}, to={self._to!r})"
        )

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        message = email_message(
            notification, self._sender, self._to, self._subject_prefix
        )
        where = f"{self._host}:{self._port}"
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=(
                    self._password.get_secret_value() if self._password else None
                ),
                use_tls=self._tls,
                start_tls=self._starttls if not self._tls else False,
                timeout=self._timeout_s,
                tls_context=self._tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise DeliveryError(
                f"smtp server {where} rejected every recipient: codes {codes}",
                retriable=all(400 <= code < 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"smtp server {where} rejected the message: {exc.code} "
                f"{_first_line(exc.message)}",
                retriable=400 <= exc.code < 500,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"smtp server {where} presented an untrusted certificate: "
                f"{exc.verify_message}",
                retriable=False,
            ) from None
        except aiosmtplib.SMTPException as exc:
            # aiosmtplib 5.1 raises a plain SMTPException when the server
            # lacks STARTTLS, so only its text identifies that case.
            unsupported = isinstance(exc, aiosmtplib.SMTPNotSupported) or (
                "not supported" in str(exc)
            )
            raise DeliveryError(
                f"smtp delivery to {where} failed: {type(exc).__name__}: "
                f"{_first_line(str(exc))}",
                retriable=not unsupported,
                outcome_unknown=not unsupported,
            ) from None
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"smtp delivery to {where} failed: {type(exc).__name__}: "
                f"{_first_line(str(exc))}",
                retriable=True,
                outcome_unknown=True,
            ) from None
        return {"message_id": message["Message-ID"]}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""

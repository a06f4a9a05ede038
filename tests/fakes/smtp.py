"""Local SMTP server with STARTTLS and AUTH, built on aiosmtpd, for the email receiver.

The server binds 127.0.0.1, requires STARTTLS before any mail command and
authentication before MAIL, and accepts one username and password. Tests queue
faults for the next messages: a reply code at DATA, or a dropped connection
after the message was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .server import HOST, TlsCertificate


@dataclass(frozen=True)
class ReceivedMail:
    """A message that the server accepted, with its envelope."""

    sender: str
    recipients: list[str]
    message: Message


def _free_port() -> int:
    # aiosmtpd's controller checks readiness by connecting to its port, so
    # it needs a fixed port rather than 0. A port freed here can be taken by
    # another process before the server binds it, which fails the start.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


class FakeSmtp:
    """SMTP server on 127.0.0.1 that stores what it accepts in `mails`."""

    def __init__(
        self,
        tls: TlsCertificate,
        username: str = "tocsin",
        password: str = "smtp-test-password",
        *,
        offer_starttls: bool = True,
    ) -> None:
        self.username = username
        self.password = password
        self._tls = tls
        self._offer_starttls = offer_starttls
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._faults: deque[str | float | None] = deque()
        self.auth_attempts = 0
        self._controller: Controller | None = None
        self.port = 0

    def start(self) -> None:
        """Start serving; raises RuntimeError if it is already running."""
        if self._controller is not None:
            raise RuntimeError("FakeSmtp is already running")
        self.port = _free_port()
        options: dict[str, Any] = {
            "authenticator": self._authenticate,
            "auth_required": True,
            "auth_require_tls": True,
        }
        if self._offer_starttls:
            options["tls_context"] = self._tls.server_context()
            options["require_starttls"] = True
        controller = Controller(
            self, hostname=HOST, port=self.port, ready_timeout=5.0, **options
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop serving; stopping a stopped server does nothing."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def mails(self) -> list[ReceivedMail]:
        """Every accepted message, oldest first."""
        with self._lock:
            return list(self._mails)

    def fail_next(self, code: int, count: int = 1) -> None:
        """Reply `code` at DATA for the next `count` messages; nothing is stored."""
        if not 400 <= code <= 599:
            raise ValueError(f"code must be an SMTP error code (400-599): {code}")
        with self._lock:
            self._faults.extend([f"{code} injected failure"] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Wait `seconds` at DATA for the next `count` messages, then accept them."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative: {seconds}")
        with self._lock:
            self._faults.extend([float(seconds)] * count)

    def drop_after_next(self, count: int = 1) -> None:
        """Store the next `count` messages, then close the connection unanswered."""
        with self._lock:
            self._faults.extend([None] * count)

    # aiosmtpd hooks

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        self.auth_attempts += 1
        valid = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        # handled=False makes aiosmtpd send the 535 reply itself.
        return AuthResult(success=valid, handled=False)

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self._lock:
            fault = self._faults.popleft() if self._faults else ""
        if isinstance(fault, float):
            await asyncio.sleep(fault)
        elif fault:
            return fault
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        mail = ReceivedMail(
            sender=str(envelope.mail_from),
            recipients=list(envelope.rcpt_tos),
            message=message_from_bytes(content),
        )
        with self._lock:
            self._mails.append(mail)
        if fault is None:
            with contextlib.suppress(AttributeError):
                server.transport.close()
        return "250 Message accepted"

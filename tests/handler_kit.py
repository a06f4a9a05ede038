"""The shared handler test kit: one target per receiver type over its test server.

Each target starts the receiver's test server, builds the real receiver with
a known secret, injects failures, and lists how each failure must be
classified. `tests/unit/test_handler_kit.py` runs the same tests on every
target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from factories import make_notification
from fakes.pagerduty import FakePagerDuty
from fakes.server import TlsCertificate
from fakes.slack import FakeSlack
from fakes.smtp import FakeSmtp
from fakes.webhook import FakeWebhook
from pydantic import SecretStr

from handlers.base import Receiver
from handlers.limits import KeyedRateLimiter
from handlers.mail import EmailReceiver
from handlers.pagerduty import PagerDutyReceiver
from handlers.slack import SlackReceiver
from handlers.webhook import WebhookReceiver
from schemas.records import Notification

SLACK_TOKEN = "xoxb-kit-secret-token-0001"
ROUTING_KEY = "KITR0UT1NGKEY000000000000000SECR"
WEBHOOK_SECRET = "kit-webhook-signing-secret"
WEBHOOK_URL_TOKEN = "kit-url-token-in-query"
SMTP_PASSWORD = "kit-smtp-password-secret"


@dataclass(frozen=True)
class Classification:
    """How the receiver must classify one injected failure code."""

    code: int
    retriable: bool
    retry_after: bool = False


class KitTarget(Protocol):
    """A receiver type under the kit, bound to its running test server."""

    name: str
    secrets: tuple[str, ...]
    failures: tuple[Classification, ...]

    def receiver(self, timeout_s: float = 5.0) -> Receiver: ...

    def notification(self) -> Notification: ...

    def fail_next(self, code: int, retry_after_s: int | None = None) -> None: ...

    def drop_next(self) -> None: ...

    def delay_next(self, seconds: float) -> None: ...

    def delivered(self) -> int:
        """Return how many notifications the server accepted."""
        ...


HTTP_FAILURES = (
    Classification(400, retriable=False),
    Classification(401, retriable=False),
    Classification(403, retriable=False),
    Classification(404, retriable=False),
    Classification(408, retriable=True),
    Classification(429, retriable=True, retry_after=True),
    Classification(500, retriable=True),
    Classification(502, retriable=True),
    Classification(503, retriable=True),
    Classification(504, retriable=True),
)


@dataclass
class SlackTarget:
    server: FakeSlack
    name: str = "slack"
    secrets: tuple[str, ...] = (SLACK_TOKEN,)
    failures: tuple[Classification, ...] = HTTP_FAILURES

    def receiver(self, timeout_s: float = 5.0) -> Receiver:
        return SlackReceiver(
            "kit-slack",
            "#oncall",
            SecretStr(SLACK_TOKEN),
            self.server.url + "/api/",
            timeout_s=timeout_s,
            limiter=KeyedRateLimiter(0.0),
        )

    def notification(self) -> Notification:
        return make_notification("kit-slack")

    def fail_next(self, code: int, retry_after_s: int | None = None) -> None:
        self.server.fail_next(code, retry_after_s=retry_after_s)

    def drop_next(self) -> None:
        self.server.drop_next()

    def delay_next(self, seconds: float) -> None:
        self.server.delay_next(seconds)

    def delivered(self) -> int:
        return len(self.server.messages)


@dataclass
class PagerDutyTarget:
    server: FakePagerDuty
    name: str = "pagerduty"
    secrets: tuple[str, ...] = (ROUTING_KEY,)
    failures: tuple[Classification, ...] = HTTP_FAILURES
    _built: list[PagerDutyReceiver] = field(default_factory=list)

    def receiver(self, timeout_s: float = 5.0) -> Receiver:
        built = PagerDutyReceiver(
            "kit-pagerduty",
            SecretStr(ROUTING_KEY),
            self.server.url,
            timeout_s=timeout_s,
        )
        self._built.append(built)
        return built

    def notification(self) -> Notification:
        return make_notification("kit-pagerduty")

    def fail_next(self, code: int, retry_after_s: int | None = None) -> None:
        self.server.fail_next(code, retry_after_s=retry_after_s)

    def drop_next(self) -> None:
        self.server.drop_next()

    def delay_next(self, seconds: float) -> None:
        self.server.delay_next(seconds)

    def delivered(self) -> int:
        return len(self.server.events)

    def close(self) -> None:
        for built in self._built:
            built._client.close()


@dataclass
class WebhookTarget:
    server: FakeWebhook
    name: str = "webhook"
    secrets: tuple[str, ...] = (WEBHOOK_SECRET, WEBHOOK_URL_TOKEN)
    failures: tuple[Classification, ...] = (
        *HTTP_FAILURES,
        Classification(410, retriable=False),
    )

    def receiver(self, timeout_s: float = 5.0) -> Receiver:
        return WebhookReceiver(
            "kit-webhook",
            f"{self.server.hook_url}?token={WEBHOOK_URL_TOKEN}",
            secret=SecretStr(WEBHOOK_SECRET),
            timeout_s=timeout_s,
        )

    def notification(self) -> Notification:
        return make_notification("kit-webhook")

    def fail_next(self, code: int, retry_after_s: int | None = None) -> None:
        self.server.fail_next(code, retry_after_s=retry_after_s)

    def drop_next(self) -> None:
        self.server.drop_next()

    def delay_next(self, seconds: float) -> None:
        self.server.delay_next(seconds)

    def delivered(self) -> int:
        return len(self.server.applied)


@dataclass
class EmailTarget:
    server: FakeSmtp
    certificate: TlsCertificate
    name: str = "email"
    secrets: tuple[str, ...] = (SMTP_PASSWORD,)
    # SMTP reply codes at DATA: 4xx is transient and 5xx permanent (RFC 5321).
    failures: tuple[Classification, ...] = (
        Classification(450, retriable=True),
        Classification(451, retriable=True),
        Classification(452, retriable=True),
        Classification(550, retriable=False),
        Classification(552, retriable=False),
        Classification(554, retriable=False),
    )

    def receiver(self, timeout_s: float = 5.0) -> Receiver:
        return EmailReceiver(
            "kit-email",
            host="127.0.0.1",
            port=self.server.port,
            sender="tocsin@example.com",
            to=["oncall@example.com"],
            username=self.server.username,
            password=SecretStr(SMTP_PASSWORD),
            timeout_s=timeout_s,
            tls_context=self.certificate.client_context(),
        )

    def notification(self) -> Notification:
        return make_notification("kit-email")

    def fail_next(self, code: int, retry_after_s: int | None = None) -> None:
        self.server.fail_next(code)

    def drop_next(self) -> None:
        self.server.drop_after_next()

    def delay_next(self, seconds: float) -> None:
        self.server.delay_next(seconds)

    def delivered(self) -> int:
        return len(self.server.mails)


TARGETS = ("slack", "pagerduty", "webhook", "email")


@contextmanager
def running_target(
    name: str, certificate: TlsCertificate, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KitTarget]:
    """Start the test server of the named receiver type and yield its target."""
    with ExitStack() as stack:
        if name == "slack":
            yield SlackTarget(stack.enter_context(FakeSlack(SLACK_TOKEN)))
        elif name == "pagerduty":
            # The receiver builds its client without `verify`, so httpx2 trusts
            # the server's certificate through SSL_CERT_FILE.
            monkeypatch.setenv("SSL_CERT_FILE", str(Path(certificate.cert_path)))
            target = PagerDutyTarget(
                stack.enter_context(FakePagerDuty(tls=certificate))
            )
            stack.callback(target.close)
            yield target
        elif name == "webhook":
            yield WebhookTarget(stack.enter_context(FakeWebhook(WEBHOOK_SECRET)))
        elif name == "email":
            server = FakeSmtp(certificate, password=SMTP_PASSWORD)
            yield EmailTarget(stack.enter_context(server), certificate)
        else:
            raise ValueError(f"unknown kit target {name!r}; known: {TARGETS}")


def deliver(receiver: Receiver, notification: Notification) -> dict[str, Any]:
    return asyncio.run(receiver.deliver(notification, {}))

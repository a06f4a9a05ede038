"""EmailReceiver against a local SMTP server with STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from factories import INCIDENT_ID, make_notification
from fakes.server import TlsCertificate, create_self_signed_certificate
from fakes.smtp import FakeSmtp
from pydantic import SecretStr

from handlers.base import DeliveryError
from handlers.mail import EmailReceiver, email_message
from schemas.records import EventKind, Notification

SENDER = "Tocsin <tocsin@example.com>"
TO = ["oncall@example.com", "sre@example.com"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    return create_self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp(certificate: TlsCertificate) -> Iterator[FakeSmtp]:
    with FakeSmtp(certificate) as server:
        yield server


def receiver_for(
    server: FakeSmtp, certificate: TlsCertificate, password: str | None = None
) -> EmailReceiver:
    return EmailReceiver(
        "email-oncall",
        host="127.0.0.1",
        port=server.port,
        sender=SENDER,
        to=TO,
        username=server.username,
        password=SecretStr(password or server.password),
        timeout_s=5.0,
        tls_context=certificate.client_context(),
    )


def deliver(receiver: EmailReceiver, notification: Notification) -> dict[str, Any]:
    return asyncio.run(receiver.deliver(notification, {}))


def test_message_sent_after_starttls_and_auth(
    smtp: FakeSmtp, certificate: TlsCertificate
) -> None:
    state = deliver(receiver_for(smtp, certificate), make_notification("email-oncall"))

    mails = smtp.mails
    assert len(mails) == 1
    assert mails[0].recipients == TO
    assert mails[0].sender == "tocsin@example.com"
    assert smtp.auth_attempts == 1
    assert state == {"message_id": mails[0].message["Message-ID"]}


def test_message_names_incident_and_transition(
    smtp: FakeSmtp, certificate: TlsCertificate
) -> None:
    deliver(receiver_for(smtp, certificate), make_notification("email-oncall"))

    message = smtp.mails[0].message
    assert message["Subject"] == "[tocsin] OPENED high api: CPU above 90 %"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert f"Incident {INCIDENT_ID}: CPU above 90 %" in body.decode()


def test_message_id_stable_per_notification() -> None:
    notification = make_notification("email-oncall")
    first = email_message(notification, SENDER, TO, "[tocsin]")
    second = email_message(notification, SENDER, TO, "[tocsin]")

    assert first["Message-ID"] == second["Message-ID"]
    assert first["Message-ID"] == "<g1-1.1.email-oncall@example.com>"
    assert first["X-Tocsin-Idempotency-Key"] == notification.notification_id


def test_runbook_message_in_body() -> None:
    notification = make_notification(
        "email-oncall",
        kind=EventKind.RUNBOOK_FINISHED,
        details={"runbook": "restart-api", "message": "restart limit reached"},
    )

    body = email_message(notification, SENDER, TO, "[tocsin]").get_content()

    assert "Runbook restart-api: restart limit reached" in body


def test_subject_kept_on_one_line() -> None:
    notification = make_notification("email-oncall", title="disk\r\nBcc: x@y.z")

    subject = email_message(notification, SENDER, TO, "[tocsin]")["Subject"]

    assert "\n" not in subject
    assert "\r" not in subject


def test_wrong_password_is_permanent(
    smtp: FakeSmtp, certificate: TlsCertificate
) -> None:
    receiver = receiver_for(smtp, certificate, password="wrong-password")

    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, make_notification("email-oncall"))

    assert excinfo.value.retriable is False
    assert "535" in str(excinfo.value)
    assert "wrong-password" not in str(excinfo.value)
    assert smtp.mails == []


def test_server_without_starttls_is_permanent(certificate: TlsCertificate) -> None:
    with FakeSmtp(certificate, offer_starttls=False) as plain:
        receiver = receiver_for(plain, certificate)
        with pytest.raises(DeliveryError) as excinfo:
            deliver(receiver, make_notification("email-oncall"))

    assert excinfo.value.retriable is False
    assert "STARTTLS" in str(excinfo.value)
    assert plain.auth_attempts == 0


def test_untrusted_certificate_is_permanent(smtp: FakeSmtp) -> None:
    receiver = EmailReceiver(
        "email-oncall",
        host="127.0.0.1",
        port=smtp.port,
        sender=SENDER,
        to=TO,
        username=smtp.username,
        password=SecretStr(smtp.password),
        timeout_s=5.0,
    )

    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, make_notification("email-oncall"))

    assert excinfo.value.retriable is False
    assert "untrusted certificate" in str(excinfo.value)
    assert smtp.auth_attempts == 0


def test_connection_refused_is_retriable(certificate: TlsCertificate) -> None:
    server = FakeSmtp(certificate)
    server.port = 1
    receiver = receiver_for(server, certificate)

    with pytest.raises(DeliveryError) as excinfo:
        deliver(receiver, make_notification("email-oncall"))

    assert excinfo.value.retriable is True
    assert "127.0.0.1:1" in str(excinfo.value)


def test_repr_hides_password(smtp: FakeSmtp, certificate: TlsCertificate) -> None:
    assert smtp.password not in repr(receiver_for(smtp, certificate))

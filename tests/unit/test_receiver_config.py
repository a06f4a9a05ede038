"""Webhook and email receivers in the configuration file, and building them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from handlers.console import ConsoleReceiver
from handlers.mail import EmailReceiver
from handlers.webhook import WebhookReceiver
from schemas.config import ConfigError, parse_config
from streams.notify.receivers import build_receivers
from tocsin.settings import Settings

PATH = Path("config.yaml")

WEBHOOK: dict[str, Any] = {
    "type": "webhook",
    "url": "https://hooks.example.com/tocsin",
    "secret_env": "TOCSIN_TEST_WEBHOOK_SECRET",
}
EMAIL: dict[str, Any] = {
    "type": "email",
    "host": "smtp.example.com",
    "sender": "Tocsin <tocsin@example.com>",
    "to": ["oncall@example.com"],
    "username": "tocsin",
    "password_env": "TOCSIN_TEST_SMTP_PASSWORD",
}


def problems_of(receiver: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"receivers": {"ops": receiver}}, PATH)
    return excinfo.value.problems


def test_webhook_and_email_accepted() -> None:
    config = parse_config({"receivers": {"hook": WEBHOOK, "mail": EMAIL}}, PATH)

    assert config.receivers["hook"].type == "webhook"
    assert config.receivers["mail"].type == "email"


def test_email_defaults_to_starttls_on_587() -> None:
    config = parse_config({"receivers": {"mail": EMAIL}}, PATH)
    mail = config.receivers["mail"]

    assert mail.type == "email"
    assert mail.port == 587
    assert mail.starttls is True


@pytest.mark.parametrize(
    ("receiver", "expected"),
    [
        (
            {**WEBHOOK, "url": "ftp://x"},
            "receivers.ops.url: invalid value 'ftp://x'; expected text matching",
        ),
        ({**WEBHOOK, "secret_env": "1BAD"}, "receivers.ops.secret_env"),
        ({**WEBHOOK, "headers": {"X Bad": "v"}}, "invalid header name 'X Bad'"),
        ({**WEBHOOK, "headers": {"X-A": "a\nb"}}, "header 'X-A' contains a line"),
        ({**EMAIL, "to": []}, "receivers.ops.to"),
        ({**EMAIL, "to": ["not-an-address"]}, "invalid email address"),
        ({**EMAIL, "sender": "nobody"}, "invalid email address 'nobody'"),
        ({**EMAIL, "tls": True}, "tls and starttls are exclusive"),
        ({**EMAIL, "password_env": None}, "username and password_env must be set"),
        ({**EMAIL, "starttls": False}, "a username needs starttls or tls"),
        ({**EMAIL, "port": 0}, "receivers.ops.port"),
        ({**EMAIL, "password": "hunter2"}, "receivers.ops.password: unknown field"),
    ],
)
def test_invalid_receiver_named(receiver: dict[str, Any], expected: str) -> None:
    problems = problems_of(receiver)

    assert any(expected in problem for problem in problems), problems


def test_secret_in_file_not_echoed() -> None:
    problems = problems_of({**EMAIL, "password": "hunter2"})

    assert all("hunter2" not in problem for problem in problems)


def test_built_with_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_TEST_WEBHOOK_SECRET", "s1")
    monkeypatch.setenv("TOCSIN_TEST_SMTP_PASSWORD", "s2")
    config = parse_config({"receivers": {"hook": WEBHOOK, "mail": EMAIL}}, PATH)

    built = build_receivers(config, Settings())

    assert isinstance(built["hook"], WebhookReceiver)
    assert isinstance(built["mail"], EmailReceiver)


def test_missing_secret_falls_back_to_console(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TOCSIN_TEST_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("TOCSIN_TEST_SMTP_PASSWORD", raising=False)
    config = parse_config({"receivers": {"hook": WEBHOOK, "mail": EMAIL}}, PATH)

    with caplog.at_level(logging.WARNING):
        built = build_receivers(config, Settings())

    assert isinstance(built["hook"], ConsoleReceiver)
    assert isinstance(built["mail"], ConsoleReceiver)
    assert "env=TOCSIN_TEST_WEBHOOK_SECRET" in caplog.text
    assert "env=TOCSIN_TEST_SMTP_PASSWORD" in caplog.text


def test_unsigned_webhook_needs_no_secret() -> None:
    unsigned = {key: value for key, value in WEBHOOK.items() if key != "secret_env"}
    config = parse_config({"receivers": {"hook": unsigned}}, PATH)

    assert isinstance(build_receivers(config, Settings())["hook"], WebhookReceiver)

"""Configuration models of the webhook and email receivers.

Secrets are never in the file: each model names the environment variable
that contains its secret.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from typing import Literal

from pydantic import Field, field_validator, model_validator

from schemas.durations import Duration
from schemas.rules import Strict

# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _valid_address(value: str) -> str:
    _, address = parseaddr(value)
    local, _, domain = address.partition("@")
    if not local or not domain or any(c in address for c in " \r\n"):
        raise ValueError(
            f"invalid email address {value!r}: expected user@domain, "
            "optionally as 'Name <user@domain>'"
        )
    return value


class WebhookReceiver(Strict):
    """POST each notification as JSON to `url`.

    With `secret_env` set, the body is signed with HMAC-SHA256 using the
    secret in that environment variable, and the hex digest is sent in
    `signature_header` as `sha256=<digest>`.
    """

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s/]+")
    headers: dict[str, str] = Field(default_factory=dict)
    secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    signature_header: str = "X-Tocsin-Signature"
    timeout: Duration = timedelta(seconds=10)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} contains a line break")
        return headers

    @field_validator("signature_header")
    @classmethod
    def _valid_signature_header(cls, name: str) -> str:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"invalid header name {name!r}")
        return name


class EmailReceiver(Strict):
    """Send each notification as an email through an SMTP server.

    `starttls` upgrades the connection before authenticating; `tls` connects
    with TLS from the start (usually port 465). The password comes from the
    environment variable `password_env`.
    """

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    sender: str
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[tocsin]"
    timeout: Duration = timedelta(seconds=10)

    @field_validator("sender")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        return _valid_address(value)

    @field_validator("to")
    @classmethod
    def _valid_recipients(cls, values: list[str]) -> list[str]:
        return [_valid_address(value) for value in values]

    @model_validator(mode="after")
    def _consistent(self) -> EmailReceiver:
        if self.tls and self.starttls:
            raise ValueError(
                "tls and starttls are exclusive: set starttls: false with tls: true"
            )
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env must be set together")
        if self.username is not None and not (self.tls or self.starttls):
            raise ValueError(
                "a username needs starttls or tls, so the password is never "
                "sent in plain text"
            )
        return self

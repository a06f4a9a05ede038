"""Build the receivers the configuration names, falling back to the console."""

from __future__ import annotations

import logging
import os

from pydantic import SecretStr

from handlers.base import Receiver
from handlers.console import ConsoleReceiver
from handlers.limits import KeyedRateLimiter
from handlers.mail import EmailReceiver
from handlers.pagerduty import PagerDutyReceiver
from handlers.slack import MESSAGE_INTERVAL_S, SlackReceiver
from handlers.webhook import WebhookReceiver
from schemas import config as cfg
from schemas.receivers import EmailReceiver as EmailSpec
from schemas.receivers import WebhookReceiver as WebhookSpec
from tocsin.settings import Settings

log = logging.getLogger(__name__)


def _secret(env_name: str, fallback: SecretStr | None) -> SecretStr | None:
    value = os.environ.get(env_name)
    if value:
        return SecretStr(value)
    if fallback is not None and fallback.get_secret_value():
        return fallback
    return None


def build_receivers(config: cfg.Config, settings: Settings) -> dict[str, Receiver]:
    """Return a receiver per configured name.

    A receiver whose secret is not set (a Slack token, a PagerDuty routing
    key, a webhook signing secret or an SMTP password) prints to the console
    instead, with a warning at start.
    """
    receivers: dict[str, Receiver] = {"console": ConsoleReceiver()}
    # One limiter for every Slack receiver, because Slack limits per channel.
    slack_limiter = KeyedRateLimiter(MESSAGE_INTERVAL_S)
    for name, spec in config.receivers.items():
        receivers[name] = _build(name, spec, settings, slack_limiter)
    return receivers


def _build(
    name: str, spec: cfg.Receiver, settings: Settings, slack_limiter: KeyedRateLimiter
) -> Receiver:
    if isinstance(spec, cfg.SlackReceiver):
        token = _secret(spec.token_env, settings.slack_token)
        if token is not None:
            return SlackReceiver(
                name,
                spec.channel,
                token,
                settings.slack_base_url,
                settings.http_timeout_s,
                slack_limiter,
            )
        log.warning(
            "receiver has no token; printing to the console receiver=%s env=%s",
            name,
            spec.token_env,
        )
    elif isinstance(spec, cfg.PagerDutyReceiver):
        key = _secret(spec.routing_key_env, settings.pagerduty_routing_key)
        if key is not None:
            return PagerDutyReceiver(
                name, key, settings.pagerduty_events_url, settings.http_timeout_s
            )
        log.warning(
            "receiver has no routing key; printing to the console receiver=%s env=%s",
            name,
            spec.routing_key_env,
        )
    elif isinstance(spec, WebhookSpec | EmailSpec):
        built = _build_outside(name, spec, settings)
        if built is not None:
            return built
    return ConsoleReceiver(name)


def _build_outside(
    name: str, spec: WebhookSpec | EmailSpec, settings: Settings
) -> Receiver | None:
    """Build a webhook or email receiver, or return None if its secret is unset."""
    secret_env = spec.secret_env if isinstance(spec, WebhookSpec) else spec.password_env
    secret = _secret(secret_env, None) if secret_env is not None else None
    if secret_env is not None and secret is None:
        log.warning(
            "receiver's secret is not set; printing to the console receiver=%s env=%s",
            name,
            secret_env,
        )
        return None
    if isinstance(spec, WebhookSpec):
        return WebhookReceiver(
            name,
            spec.url,
            headers=spec.headers,
            secret=secret,
            signature_header=spec.signature_header,
            timeout_s=spec.timeout.total_seconds(),
        )
    return EmailReceiver(
        name,
        host=spec.host,
        port=spec.port,
        sender=spec.sender,
        to=spec.to,
        starttls=spec.starttls,
        tls=spec.tls,
        username=spec.username,
        password=secret,
        subject_prefix=spec.subject_prefix,
        timeout_s=spec.timeout.total_seconds(),
    )

"""Build the receivers the configuration names, falling back to the console."""

from __future__ import annotations

import logging
import os

from pydantic import SecretStr

from handlers.base import Receiver
from handlers.console import ConsoleReceiver
from handlers.limits import KeyedRateLimiter
from handlers.pagerduty import PagerDutyReceiver
from handlers.slack import MESSAGE_INTERVAL_S, SlackReceiver
from schemas import config as cfg
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

    A Slack or PagerDuty receiver whose secret is not set prints to the
    console instead, with a warning at start.
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
    return ConsoleReceiver(name)

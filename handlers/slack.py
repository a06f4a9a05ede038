"""Slack receiver: one Block Kit message per incident, updated on each transition."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.base import DeliveryError, parse_retry_after
from schemas.records import EventKind, IncidentState, Notification

log = logging.getLogger(__name__)

# Slack's limit for the text of a section block is 3000 characters.
SECTION_TEXT_MAX = 3000
# Error codes Slack documents as transient; any other `ok: false` is permanent.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)

STATE_EMOJI = {
    IncidentState.OPEN: ":rotating_light:",
    IncidentState.ACKNOWLEDGED: ":eyes:",
    IncidentState.RESOLVED: ":white_check_mark:",
}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    log.warning("slack text cut length=%d limit=%d", len(text), limit)
    return text[: limit - 1] + "…"


def incident_blocks(notification: Notification) -> list[dict[str, Any]]:
    """Render the incident message: summary, fields and, until resolved, buttons."""
    event = notification.event
    headline = f"{STATE_EMOJI[event.state]} *{event.title}*"
    fields = (
        f"*State:* {event.state}\n*Severity:* {event.severity}\n"
        f"*Service:* {event.service}\n*Opened:* {event.opened_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(headline, SECTION_TEXT_MAX)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(fields, SECTION_TEXT_MAX)},
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"incident `{event.incident_id}`"}],
        },
    ]
    if event.state is not IncidentState.RESOLVED:
        blocks.append(_buttons(event.incident_id, event.state))
    return blocks


def _buttons(incident_id: str, state: IncidentState) -> dict[str, Any]:
    elements = []
    if state is IncidentState.OPEN:
        elements.append(_button("Acknowledge", "tocsin_acknowledge", incident_id))
    elements.append(_button("Resolve", "tocsin_resolve", incident_id))
    return {"type": "actions", "block_id": "tocsin_actions", "elements": elements}


def _button(label: str, action_id: str, incident_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": incident_id,
    }


def _mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reads as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def approval_blocks(notification: Notification) -> list[dict[str, Any]]:
    """Render a runbook approval request with its Approve button, if it is one."""
    details = notification.event.details
    run_id = details.get("approval_run_id")
    if not isinstance(run_id, str):
        return []
    message = _mrkdwn_escape(str(details.get("message", "")))
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Approve"},
        "style": "primary",
        "action_id": "tocsin_runbook_approve",
        "value": run_id,
    }
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(message, SECTION_TEXT_MAX)},
        },
        {
            "type": "actions",
            "block_id": "tocsin_runbook_approval",
            "elements": [button],
        },
    ]


def transition_text(notification: Notification) -> str:
    event = notification.event
    text = f"{event.kind} by {event.actor} at {event.at:%Y-%m-%d %H:%M:%S %Z}"
    message = event.details.get("message")
    if event.kind is EventKind.RUNBOOK_FINISHED and isinstance(message, str):
        runbook = event.details.get("runbook", "runbook")
        text = _mrkdwn_escape(f"{runbook}: {message}")
    return text


class SlackReceiver:
    """Post an incident's message to a channel and keep it current.

    The first notification posts the message; later ones update it in place
    with `chat.update` and add the transition as a reply in its thread.
    """

    kind = "slack"

    def __init__(
        self,
        name: str,
        channel: str,
        token: SecretStr,
        base_url: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.channel = channel
        # slack-sdk's own retry handlers are off: the notify stage's retry
        # policy is the one place that decides when to try again.
        self._client = AsyncWebClient(
            token=token.get_secret_value(),
            base_url=base_url,
            timeout=int(timeout_s),
            retry_handlers=[],
        )

    def __repr__(self) -> str:
        return f"SlackReceiver(name={self.name!r}, channel={self.channel!r})"

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        text = f"{notification.event.title} ({notification.event.state})"
        blocks = incident_blocks(notification)
        approval = approval_blocks(notification)
        ts = state.get("ts")
        channel = state.get("channel", self.channel)
        if ts is None:
            response = await self._call(
                self._client.chat_postMessage,
                channel=self.channel,
                text=text,
                blocks=blocks + approval,
            )
            return {"ts": response["ts"], "channel": response["channel"]}
        await self._call(
            self._client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks
        )
        if notification.event.kind is not EventKind.OPENED:
            reply: dict[str, Any] = {"text": transition_text(notification)}
            if approval:
                reply["blocks"] = approval
            await self._call(
                self._client.chat_postMessage, channel=channel, thread_ts=ts, **reply
            )
        return state

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            raise _classify(exc, self.channel) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(
                f"slack request to channel {self.channel} failed: {exc!r}",
                retriable=True,
            ) from exc


def _classify(exc: SlackApiError, channel: str) -> DeliveryError:
    response = exc.response
    status = response.status_code
    error = response.get("error") if isinstance(response.data, dict) else None
    headers = response.headers or {}
    retry_after = parse_retry_after(
        next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    )
    retriable = status == 429 or status >= 500 or error in TRANSIENT_ERRORS
    return DeliveryError(
        f"slack rejected the message to channel {channel}: "
        f"HTTP {status}, error {error or 'unknown'}",
        retriable=retriable,
        retry_after_s=retry_after,
    )

"""Slack receiver: one Block Kit message per incident, updated on each transition."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.base import DeliveryError, parse_retry_after, retriable_status
from handlers.limits import KeyedRateLimiter
from schemas.records import EventKind, IncidentState, Notification

log = logging.getLogger(__name__)

# Slack's limit for the text of a section block is 3000 characters.
SECTION_TEXT_MAX = 3000
# Error codes Slack documents as transient; any other `ok: false` is permanent.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)

# Slack allows about one message per second per channel (chat.postMessage
# rate limits); updates are spaced the same way.
MESSAGE_INTERVAL_S = 1.0
# The `event_type` of the metadata that marks Tocsin's messages.
METADATA_EVENT_TYPE = "tocsin_notification"
# How far back a retry looks for a message that an unanswered post created.
HISTORY_LOOKBACK_S = 3600.0
# Slack channel IDs: C (public), G (private) or D (direct), then letters and
# digits.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
# conversations.list takes a page size under 1000. The receiver reads at most
# CHANNEL_LIST_MAX_PAGES pages to find a channel's ID.
CHANNEL_LIST_PAGE_SIZE = 999
CHANNEL_LIST_MAX_PAGES = 20

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
    with `chat.update` and add the transition as a reply in its thread. A
    message update (a transition that targets other receivers) does the same
    once the message is posted, and nothing before.

    Every message carries the notification id in its metadata. When a post
    failed in a way that may still have posted it (a timeout, a dropped
    connection, a 5xx), the retry first reads the channel history or the
    thread and reuses the message it finds, so a retry posts nothing twice.
    Posts and updates to one channel are spaced by `limiter`, one second
    apart unless another is given, and a 429 blocks the channel for its
    Retry-After.
    """

    kind = "slack"

    def __init__(
        self,
        name: str,
        channel: str,
        token: SecretStr,
        base_url: str,
        timeout_s: float = 10.0,
        limiter: KeyedRateLimiter | None = None,
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
        self._limiter = limiter or KeyedRateLimiter(MESSAGE_INTERVAL_S)
        # Notification ids whose last post may have reached Slack unanswered.
        # The notify stage adds the ids a crashed worker was delivering.
        self._uncertain: set[str] = set()
        # Channel ids that Slack returned for the configured channel names.
        self._channel_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SlackReceiver(name={self.name!r}, channel={self.channel!r})"

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        text = f"{notification.event.title} ({notification.event.state})"
        blocks = incident_blocks(notification)
        key = notification.notification_id
        approval = approval_blocks(notification)
        ts = state.get("ts")
        channel = state.get("channel") or self._channel_ids.get(
            self.channel, self.channel
        )
        if ts is None and notification.message_update:
            # The receiver never posted this incident's message, and an
            # update alone must not post one.
            log.debug(
                "slack message update skipped, no message posted receiver=%s "
                "notification_id=%s",
                self.name,
                key,
            )
            return state
        if ts is None:
            if key in self._uncertain:
                channel = await self._channel_id()
            found = await self._find_earlier_post(key, channel, thread_ts=None)
            if found is not None:
                return {"ts": found, "channel": channel}
            response = await self._post(
                key, channel=self.channel, text=text, blocks=blocks + approval
            )
            self._remember_channel_id(str(response["channel"]))
            return {"ts": response["ts"], "channel": response["channel"]}
        await self._call(
            self._client.chat_update,
            limited=True,
            channel=channel,
            ts=ts,
            text=text,
            blocks=blocks,
        )
        if notification.event.kind is not EventKind.OPENED:
            found = await self._find_earlier_post(key, channel, thread_ts=ts)
            if found is None:
                reply: dict[str, Any] = {"text": transition_text(notification)}
                if approval:
                    reply["blocks"] = approval
                await self._post(key, channel=channel, thread_ts=ts, **reply)
        return state

    def assume_outcome_unknown(self, notification_id: str) -> None:
        """Look up an earlier post of `notification_id` before posting it."""
        self._uncertain.add(notification_id)

    async def _post(self, key: str, **kwargs: Any) -> Any:
        """Post a message that carries `key` in its metadata."""
        metadata = {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key}}
        try:
            response = await self._call(
                self._client.chat_postMessage, limited=True, metadata=metadata, **kwargs
            )
        except DeliveryError as exc:
            if exc.outcome_unknown:
                self._uncertain.add(key)
            raise
        self._uncertain.discard(key)
        return response

    async def _find_earlier_post(
        self, key: str, channel: str, thread_ts: str | None
    ) -> str | None:
        """Return the ts of a message with `key` if an earlier post may have landed.

        Looks only when a post of `key` failed with an unknown outcome. A
        lookup that Slack rejects for good (a channel given by name, or a
        missing history scope) is logged, and the post goes ahead.
        """
        if key not in self._uncertain:
            return None
        try:
            if thread_ts is None:
                oldest = f"{time.time() - HISTORY_LOOKBACK_S:.6f}"
                response = await self._call(
                    self._client.conversations_history,
                    limited=False,
                    channel=channel,
                    oldest=oldest,
                    include_all_metadata=True,
                    inclusive=True,
                )
            else:
                response = await self._call(
                    self._client.conversations_replies,
                    limited=False,
                    channel=channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                )
        except DeliveryError as exc:
            if exc.retriable:
                raise
            log.warning(
                "slack history lookup failed, posting again may duplicate a "
                "message receiver=%s notification_id=%s: %s",
                self.name,
                key,
                exc,
            )
            return None
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("key") == key:
                log.info(
                    "slack message already posted, not posting again "
                    "receiver=%s notification_id=%s ts=%s",
                    self.name,
                    key,
                    message.get("ts"),
                )
                self._uncertain.discard(key)
                return str(message["ts"])
        return None

    async def _channel_id(self) -> str:
        """Return the configured channel's ID, listing the channels if needed.

        Slack reads history only by channel ID. Without the `channels:read`
        and `groups:read` scopes the listing fails and the configured value
        is returned, so the history lookup then fails and is logged.
        """
        known = self._channel_ids.get(self.channel)
        if known is not None:
            return known
        if CHANNEL_ID.match(self.channel):
            return self.channel
        name = self.channel.removeprefix("#")
        cursor = ""
        for _ in range(CHANNEL_LIST_MAX_PAGES):
            try:
                response = await self._call(
                    self._client.conversations_list,
                    limited=False,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=CHANNEL_LIST_PAGE_SIZE,
                    cursor=cursor or None,
                )
            except DeliveryError as exc:
                if exc.retriable:
                    raise
                log.warning(
                    "slack channel listing failed receiver=%s channel=%s: %s",
                    self.name,
                    self.channel,
                    exc,
                )
                return self.channel
            for found in response.get("channels") or []:
                if found.get("name") == name:
                    self._remember_channel_id(str(found["id"]))
                    return str(found["id"])
            metadata = response.get("response_metadata") or {}
            cursor = str(metadata.get("next_cursor") or "")
            if not cursor:
                break
        log.warning(
            "slack channel not found in the listing receiver=%s channel=%s",
            self.name,
            self.channel,
        )
        return self.channel

    def _remember_channel_id(self, channel_id: str) -> None:
        """Store the ID Slack returned for the configured channel.

        The limiter then spaces calls by name and by ID as one channel,
        because updates and replies name the channel by the ID.
        """
        self._channel_ids[self.channel] = channel_id
        self._limiter.alias(self.channel, channel_id)

    async def _call(self, method: Any, *, limited: bool, **kwargs: Any) -> Any:
        """Call a Web API method, spacing it in its channel's slots if `limited`."""
        channel = kwargs.get("channel", "")
        if limited:
            await self._limiter.acquire(channel)
        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            error = _classify(exc, self.channel)
            if error.retry_after_s is not None:
                self._limiter.hold(channel, error.retry_after_s)
            raise error from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(
                f"slack request to channel {self.channel} failed: {exc!r}",
                retriable=True,
                outcome_unknown=True,
            ) from exc


def _classify(exc: SlackApiError, channel: str) -> DeliveryError:
    response = exc.response
    status = response.status_code
    error = response.get("error") if isinstance(response.data, dict) else None
    headers = response.headers or {}
    retry_after = parse_retry_after(
        next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    )
    retriable = retriable_status(status) or error in TRANSIENT_ERRORS
    return DeliveryError(
        f"slack rejected the message to channel {channel}: "
        f"HTTP {status}, error {error or 'unknown'}",
        retriable=retriable,
        retry_after_s=retry_after,
        outcome_unknown=status >= 500,
    )

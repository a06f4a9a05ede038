"""Fake Slack Web API: chat.postMessage, chat.update, conversations.history and
conversations.replies, and auth.test.

Point slack-sdk at it with `AsyncWebClient(token=..., base_url=fake.url + "/api/")`.
As the real Web API does, the fake returns API errors with HTTP 200 and a body of
`{"ok": false, "error": CODE}`. It accepts arguments as a query string, a
form-encoded body or a JSON body, and it reads `blocks` and `attachments` given as
JSON strings, as form-encoded requests carry them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any, TypedDict

from aiohttp import web

from .server import FakeServer, TlsCertificate

logger = logging.getLogger(__name__)

# Slack channel IDs: C (public), G (private) or D (direct), then capital
# letters and digits.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class SlackMessage(TypedDict):
    """A message as chat.postMessage created it or chat.update left it."""

    method: str
    """API method that produced this state: chat.postMessage or chat.update."""
    channel: str
    ts: str
    thread_ts: str | None
    text: str | None
    blocks: list[dict[str, Any]] | None
    attachments: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    """Message metadata (`event_type` and `event_payload`), if posted with it."""


class SlackApiFailure(Exception):
    """Raised inside a handler to respond with `{"ok": false, "error": error}`."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FakeSlack(FakeServer):
    """Fake Slack Web API that checks the bot token and records accepted messages.

    `channels`, if given, is the set of channel values that exist. Any other
    channel gets `channel_not_found`. Without it, every non-empty channel exists.

    The fake treats channels as Slack does: messages are stored under the
    channel's ID and responses return it, posts and updates accept a name
    (with or without `#`) or an ID, the history methods accept only an ID,
    and conversations.list lists the named channels. `channel_ids`, if given,
    maps channel names (without `#`) to IDs, and no other name exists.
    Without it, the fake gives every new name an ID on first use, as
    `channel_id` returns it.
    """

    def __init__(
        self,
        token: str = "xoxb-fake-token",
        *,
        channels: Iterable[str] | None = None,
        channel_ids: dict[str, str] | None = None,
        team_id: str = "T0FAKE0001",
        user_id: str = "U0FAKE0001",
        bot_id: str = "B0FAKE0001",
        tls: TlsCertificate | None = None,
    ) -> None:
        super().__init__(tls=tls)
        self.token = token
        self.channels = frozenset(channels) if channels is not None else None
        # Whether a name the fake has not seen gets an ID on first use.
        self.assign_ids = channel_ids is None
        self.channel_ids = dict(channel_ids) if channel_ids is not None else {}
        self.team_id = team_id
        self.user_id = user_id
        self.bot_id = bot_id
        self._messages: list[SlackMessage] = []
        self._current: dict[tuple[str, str], SlackMessage] = {}
        self._last_ts_micros = 0

    @property
    def messages(self) -> list[SlackMessage]:
        """Copies of every accepted postMessage and update, oldest first."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def channel_id(self, channel: str) -> str:
        """Return the ID of a channel given by name or ID, assigning one if needed."""
        if CHANNEL_ID.match(channel) or channel in self.channel_ids.values():
            return channel
        name = channel.removeprefix("#")
        with self._lock:
            found = self.channel_ids.get(name)
            if found is None:
                found = _generated_id(name)
                self.channel_ids[name] = found
        return found

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        """Return a copy of the current state of one message, or None.

        `channel` is the channel's ID or name.
        """
        with self._lock:
            channel_id = self.channel_ids.get(channel.removeprefix("#"), channel)
            found = self._current.get((channel_id, ts))
            return copy.deepcopy(found) if found is not None else None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_post("/api/auth.test", self._auth_test)
        app.router.add_get("/api/conversations.list", self._list_channels)
        app.router.add_post("/api/conversations.list", self._list_channels)
        for method in ("conversations.history", "conversations.replies"):
            handler = self._history if method.endswith("history") else self._replies
            app.router.add_get(f"/api/{method}", handler)
            app.router.add_post(f"/api/{method}", handler)
        app.router.add_get("/api/auth.test", self._auth_test)

    def error_body(self, status: int) -> dict[str, Any]:
        """Body of an injected error, with the `ratelimited` code Slack sends on 429."""
        if status == 429:
            error = "ratelimited"
        elif status == 503:
            error = "service_unavailable"
        elif status >= 500:
            error = "internal_error"
        else:
            error = "invalid_request"
        return {"ok": False, "error": error}

    # Handlers

    async def _post_message(self, request: web.Request) -> web.Response:
        try:
            arguments = await self._authorized_arguments(request)
            channel = self._require_channel(arguments)
            text = _optional_text(arguments, "text")
            blocks = _optional_json_list(arguments, "blocks", "invalid_blocks_format")
            attachments = _optional_json_list(
                arguments, "attachments", "invalid_attachments"
            )
            if not text and not blocks and not attachments:
                raise SlackApiFailure("no_text")
            metadata = _optional_metadata(arguments)
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)

        thread_ts = _optional_text(arguments, "thread_ts") or None
        # NOTE: the fake does not check that thread_ts names an existing message.
        with self._lock:
            message = SlackMessage(
                method="chat.postMessage",
                channel=channel,
                ts=self._next_ts(),
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                attachments=attachments,
                metadata=metadata,
            )
            self._store(message)
        return web.json_response(
            {
                "ok": True,
                "channel": channel,
                "ts": message["ts"],
                "message": self._message_body(message),
            }
        )

    async def _update(self, request: web.Request) -> web.Response:
        """Replace the text, blocks or attachments given and keep the others."""
        try:
            arguments = await self._authorized_arguments(request)
            channel = self._require_channel(arguments)
            ts = _optional_text(arguments, "ts")
            text = _optional_text(arguments, "text")
            blocks = _optional_json_list(arguments, "blocks", "invalid_blocks_format")
            attachments = _optional_json_list(
                arguments, "attachments", "invalid_attachments"
            )
            with self._lock:
                previous = self._current.get((channel, ts or ""))
                if previous is None:
                    raise SlackApiFailure("message_not_found")
                if not text and not blocks and not attachments:
                    raise SlackApiFailure("no_text")
                message = SlackMessage(
                    method="chat.update",
                    channel=channel,
                    ts=previous["ts"],
                    thread_ts=previous["thread_ts"],
                    text=text if text is not None else previous["text"],
                    blocks=blocks if blocks is not None else previous["blocks"],
                    attachments=(
                        attachments
                        if attachments is not None
                        else previous["attachments"]
                    ),
                    metadata=previous["metadata"],
                )
                self._store(message)
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)

        return web.json_response(
            {
                "ok": True,
                "channel": channel,
                "ts": message["ts"],
                "text": message["text"],
                "message": self._message_body(message),
            }
        )

    async def _history(self, request: web.Request) -> web.Response:
        """List a channel's top-level messages, newest first.

        Supports `oldest`, `latest`, `limit` (default 100, at most 999) and
        `include_all_metadata`; there is one page, so no cursor is returned.
        """
        try:
            arguments = await self._authorized_arguments(request)
            channel = self._require_channel(arguments, id_only=True)
            limit = _limit(arguments)
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)
        oldest = float(arguments.get("oldest") or 0)
        latest = float(arguments.get("latest") or "inf")
        with self._lock:
            found = [
                message
                for (message_channel, _), message in self._current.items()
                if message_channel == channel
                and message["thread_ts"] is None
                and oldest < float(message["ts"]) <= latest
            ]
        found.sort(key=lambda message: float(message["ts"]), reverse=True)
        return self._listing(found[:limit], arguments, has_more=len(found) > limit)

    async def _replies(self, request: web.Request) -> web.Response:
        """List a thread: its parent message first, then its replies, oldest first."""
        try:
            arguments = await self._authorized_arguments(request)
            channel = self._require_channel(arguments, id_only=True)
            limit = _limit(arguments)
            ts = _optional_text(arguments, "ts")
            with self._lock:
                parent = self._current.get((channel, ts or ""))
                if parent is None:
                    raise SlackApiFailure("thread_not_found")
                replies = [
                    message
                    for (message_channel, _), message in self._current.items()
                    if message_channel == channel and message["thread_ts"] == ts
                ]
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)
        replies.sort(key=lambda message: float(message["ts"]))
        thread = [parent, *replies]
        return self._listing(thread[:limit], arguments, has_more=len(thread) > limit)

    async def _list_channels(self, request: web.Request) -> web.Response:
        """List the channels of `channel_ids`, `limit` at a time, with a cursor."""
        try:
            arguments = await self._authorized_arguments(request)
            limit = _limit(arguments)
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)
        cursor = str(arguments.get("cursor") or "0")
        start = int(cursor) if cursor.isdigit() else 0
        with self._lock:
            names = sorted(self.channel_ids.items())
        page = names[start : start + limit]
        following = start + limit
        return web.json_response(
            {
                "ok": True,
                "channels": [
                    {"id": channel_id, "name": name, "is_channel": True}
                    for name, channel_id in page
                ],
                "response_metadata": {
                    "next_cursor": str(following) if following < len(names) else ""
                },
            }
        )

    def _listing(
        self, messages: list[SlackMessage], arguments: dict[str, Any], has_more: bool
    ) -> web.Response:
        with_metadata = str(arguments.get("include_all_metadata", "")).lower() in {
            "1",
            "true",
        }
        bodies = []
        for message in messages:
            body = self._message_body(message)
            if with_metadata and message["metadata"] is not None:
                body["metadata"] = copy.deepcopy(message["metadata"])
            bodies.append(body)
        return web.json_response({"ok": True, "messages": bodies, "has_more": has_more})

    async def _auth_test(self, request: web.Request) -> web.Response:
        try:
            await self._authorized_arguments(request)
        except SlackApiFailure as failure:
            return _error_response(request, failure.error)
        return web.json_response(
            {
                "ok": True,
                "url": f"{self.url}/",
                "team": "Fake Workspace",
                "user": "fake-bot",
                "team_id": self.team_id,
                "user_id": self.user_id,
                "bot_id": self.bot_id,
                "is_enterprise_install": False,
            }
        )

    # Helpers

    async def _authorized_arguments(self, request: web.Request) -> dict[str, Any]:
        """Read the request arguments and check the token before anything else.

        A JSON body must carry the token in the Authorization header. Query and
        form arguments may carry it as `token`, as the Web API allows.
        """
        arguments: dict[str, Any] = dict(request.query)
        is_json = request.content_type == "application/json"
        if is_json:
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise SlackApiFailure("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackApiFailure("invalid_json")
            arguments.update(body)
        elif request.content_type in FORM_CONTENT_TYPES:
            form = await request.post()
            arguments.update(
                {key: value for key, value in form.items() if isinstance(value, str)}
            )

        token = _bearer_token(request.headers.get("Authorization", ""))
        if token is None and not is_json:
            token = arguments.get("token") or None
        arguments.pop("token", None)
        if token is None:
            raise SlackApiFailure("not_authed")
        if token != self.token:
            raise SlackApiFailure("invalid_auth")
        return arguments

    def _require_channel(self, arguments: dict[str, Any], id_only: bool = False) -> str:
        """Return the channel the request names, as an ID when IDs are known."""
        channel = _optional_text(arguments, "channel")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        if self.channels is not None and channel not in self.channels:
            raise SlackApiFailure("channel_not_found")
        if channel in self.channel_ids.values():
            return channel
        if self.assign_ids and CHANNEL_ID.match(channel):
            return channel
        if id_only:
            raise SlackApiFailure("channel_not_found")
        if self.assign_ids:
            return self.channel_id(channel)
        found = self.channel_ids.get(channel.removeprefix("#"))
        if found is None:
            raise SlackApiFailure("channel_not_found")
        return found

    def _next_ts(self) -> str:
        """Return a ts later than every earlier one. The caller must hold the lock."""
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        seconds, fraction = divmod(micros, 1_000_000)
        return f"{seconds}.{fraction:06d}"

    def _store(self, message: SlackMessage) -> None:
        """Record an accepted message. The caller must hold the lock."""
        self._messages.append(message)
        self._current[(message["channel"], message["ts"])] = message

    def _message_body(self, message: SlackMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "text": message["text"] or "",
            "ts": message["ts"],
            "user": self.user_id,
            "bot_id": self.bot_id,
        }
        if message["thread_ts"] is not None:
            body["thread_ts"] = message["thread_ts"]
        if message["blocks"] is not None:
            body["blocks"] = copy.deepcopy(message["blocks"])
        if message["attachments"] is not None:
            body["attachments"] = copy.deepcopy(message["attachments"])
        return body


def _generated_id(name: str) -> str:
    """Return a stable ID shaped like Slack's public channel IDs for `name`."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:10].upper()
    return f"C{digest}"


def _error_response(request: web.Request, error: str) -> web.Response:
    logger.info("FakeSlack rejected %s %s: %s", request.method, request.path, error)
    return web.json_response({"ok": False, "error": error})


def _bearer_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _optional_text(arguments: dict[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    return None if value is None else str(value)


def _limit(arguments: dict[str, Any]) -> int:
    value = arguments.get("limit", 100)
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise SlackApiFailure("invalid_limit") from None
    if not 1 <= limit <= 999:
        raise SlackApiFailure("invalid_limit")
    return limit


def _optional_metadata(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """Return the `metadata` argument, decoding a JSON string first.

    Raises SlackApiFailure with `invalid_metadata_format` unless it is an
    object with a string `event_type` and an object `event_payload`.
    """
    value = arguments.get("metadata")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackApiFailure("invalid_metadata_format") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise SlackApiFailure("invalid_metadata_format")
    return value


def _optional_json_list(
    arguments: dict[str, Any], name: str, error: str
) -> list[dict[str, Any]] | None:
    """Return the argument as a list of objects, decoding a JSON string first.

    Raises SlackApiFailure with `error` if the value is not a list of objects.
    """
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackApiFailure(error) from None
    if not isinstance(value, list):
        raise SlackApiFailure(error)
    if not all(isinstance(item, dict) for item in value):
        raise SlackApiFailure(error)
    return value

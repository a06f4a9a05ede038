"""Slack interactivity endpoint: Acknowledge and Resolve presses become commands.

Slack posts a form with one `payload` field holding the interaction JSON and
signs it with the app's signing secret. A verified press is published to the
commands topic, keyed by the incident's group key, and correlate applies it.
The endpoint never changes a table and never updates the Slack message itself:
the notify stage does that when the transition reaches the timeline.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from faust import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from slack_sdk.signature import Clock, SignatureVerifier

from schemas.records import Command, CommandKind, group_key_of, stable_hash
from schemas.runbooks import RunbookApproval
from streams import topics
from streams.deadletter import describe_validation_error
from streams.runbooks.engine import group_key_of_run

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

PATH = "/slack/actions"
SOURCE = f"POST {PATH}"
STAGE = "slack_actions"
SECRET_SETTING = "TOCSIN_SLACK_SIGNING_SECRET"

# Requests whose timestamp is further than this from wall time are rejected
# as replays. slack-sdk 3.48.0's SignatureVerifier hard-codes the same 300 s,
# in both directions.
MAX_TIMESTAMP_SKEW_S = 300

# The action ids of the buttons handlers/slack.py renders.
ACTION_KINDS = {
    "tocsin_acknowledge": CommandKind.ACKNOWLEDGE,
    "tocsin_resolve": CommandKind.RESOLVE,
}
# The Approve button of a runbook's approval step; its value is the run id.
APPROVE_ACTION = "tocsin_runbook_approve"

REDACTED = "[redacted]"
# JSON keys whose values grant access: the legacy verification `token`,
# `bot_access_token` of workflow steps, and `response_url`, which lets its
# holder post messages to the channel.
SECRET_KEY = re.compile(r"^(?:\w+_)?token$|^response_urls?$")
SECRET_IN_TEXT = re.compile(
    r'("(?:\w+_)?token"|"response_urls?")\s*:\s*"(?:[^"\\]|\\.)*"'
)
# Rejections of one reason are logged once and then every this many times.
REJECTION_LOG_EVERY = 100


class Rejection(StrEnum):
    """Reason a request is rejected as not signed by Slack."""

    MISSING_HEADERS = "missing_headers"
    INVALID_TIMESTAMP = "invalid_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    INVALID_SIGNATURE = "invalid_signature"

    @property
    def message(self) -> str:
        return REJECTION_MESSAGES[self]


REJECTION_MESSAGES = {
    Rejection.MISSING_HEADERS: (
        "missing X-Slack-Signature or X-Slack-Request-Timestamp header"
    ),
    Rejection.INVALID_TIMESTAMP: (
        "invalid X-Slack-Request-Timestamp: expected Unix seconds"
    ),
    Rejection.STALE_TIMESTAMP: (
        f"X-Slack-Request-Timestamp is more than {MAX_TIMESTAMP_SKEW_S} s from "
        "the server's time: a replayed request, or a server clock that is wrong"
    ),
    Rejection.INVALID_SIGNATURE: (
        "invalid X-Slack-Signature: it does not match the request body signed "
        f"with {SECRET_SETTING}"
    ),
}


class _WallClock(Clock):
    """slack-sdk's clock interface over an injectable wall-time function."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall

    def now(self) -> float:
        return self._wall()


class RequestVerifier:
    """Check Slack's request signature and timestamp against wall time.

    Slack signs with real time, so the check uses `wall` (`time.time` unless
    a test injects another), never the pipeline clock, which may be replaying
    history.
    """

    def __init__(
        self, signing_secret: SecretStr, wall: Callable[[], float] = time.time
    ) -> None:
        self._wall = wall
        self._verifier = SignatureVerifier(
            signing_secret.get_secret_value(), _WallClock(wall)
        )

    def __repr__(self) -> str:
        return "RequestVerifier(signing_secret=SecretStr('**********'))"

    def check(self, body: bytes, headers: Mapping[str, str]) -> Rejection | None:
        """Return why the request is rejected, or None if Slack signed it."""
        normalized = {name.lower(): value for name, value in headers.items()}
        timestamp = normalized.get("x-slack-request-timestamp")
        signature = normalized.get("x-slack-signature")
        if not timestamp or not signature:
            return Rejection.MISSING_HEADERS
        # Unix seconds have at most 11 digits until the year 5138; a longer
        # value would also overflow the float comparison below.
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 11:
            return Rejection.INVALID_TIMESTAMP
        if abs(self._wall() - int(timestamp)) > MAX_TIMESTAMP_SKEW_S:
            return Rejection.STALE_TIMESTAMP
        try:
            valid = self._verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError:
            # slack-sdk's verifier decodes the body as UTF-8 and raises on other
            # bytes, which no valid signature covers.
            return Rejection.INVALID_SIGNATURE
        return None if valid else Rejection.INVALID_SIGNATURE


class _SlackModel(BaseModel):
    # Slack adds fields over time, so unknown ones are ignored.
    model_config = ConfigDict(frozen=True, extra="ignore")


class SlackUser(_SlackModel):
    """The user who pressed the button."""

    id: str = Field(min_length=1, max_length=64)
    username: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)

    @property
    def actor(self) -> str:
        label = self.username or self.name
        return f"{label} ({self.id})" if label else self.id


class SlackAction(_SlackModel):
    """One pressed element of a `block_actions` payload."""

    action_id: str = Field(min_length=1)
    action_ts: str = Field(min_length=1)
    block_id: str | None = None
    value: str | None = None


class SlackContainer(_SlackModel):
    """The location of the pressed element: for a message, its channel and `ts`."""

    type: str
    message_ts: str | None = None
    channel_id: str | None = None


class BlockActionsPayload(_SlackModel):
    """The part of a `block_actions` interaction payload that Tocsin reads."""

    type: Literal["block_actions"]
    user: SlackUser
    actions: list[SlackAction]
    container: SlackContainer | None = None


class InvalidPayload(ValueError):
    """A signed interactivity request whose payload Tocsin cannot read."""


def commands_from_body(body: bytes, at: datetime) -> list[Command]:
    """Map a verified interactivity request to the commands its presses ask for.

    Interaction types other than `block_actions`, and actions other than
    Tocsin's buttons, map to no command. Raises InvalidPayload, naming the
    field and value, if any part of the request is invalid, so a request maps
    to all of its commands or to none.
    """
    data = _payload_json(body)
    interaction = data.get("type")
    if not isinstance(interaction, str):
        raise InvalidPayload(
            f"invalid payload field type: expected an interaction type such as "
            f"block_actions, got {interaction!r}"
        )
    if interaction != "block_actions":
        log.debug("slack interaction ignored type=%s", interaction)
        return []
    try:
        payload = BlockActionsPayload.model_validate(redact_json(data))
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from exc
    commands = []
    for index, action in enumerate(payload.actions):
        kind = ACTION_KINDS.get(action.action_id)
        if kind is None:
            log.debug("slack action ignored action_id=%s", action.action_id)
            continue
        commands.append(_command(payload, index, kind, at))
    return commands


def approvals_from_body(body: bytes, at: datetime) -> list[RunbookApproval]:
    """Map a verified interactivity request to the runbook approvals it presses.

    The approver is the Slack username (or name), with the user id beside
    it, and the runbooks stage checks either against the step's approvers.
    Raises InvalidPayload like `commands_from_body`.
    """
    data = _payload_json(body)
    if data.get("type") != "block_actions":
        return []
    try:
        payload = BlockActionsPayload.model_validate(redact_json(data))
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from exc
    approvals = []
    for index, action in enumerate(payload.actions):
        if action.action_id != APPROVE_ACTION:
            continue
        run_id = action.value or ""
        try:
            group_key = group_key_of_run(run_id)
        except ValueError as exc:
            raise InvalidPayload(f"invalid actions.{index}.value: {exc}") from exc
        user = payload.user
        container = payload.container
        identity = (
            container.channel_id if container else None,
            container.message_ts if container else None,
            action.action_ts,
            action.action_id,
        )
        approvals.append(
            RunbookApproval(
                approval_id=f"slack-{stable_hash(*identity)}",
                run_id=run_id,
                group_key=group_key,
                approver=user.username or user.name or user.id,
                user_id=user.id,
                source="slack",
                at=at,
            )
        )
    return approvals


def _payload_json(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"invalid request body: not UTF-8 ({exc})") from exc
    values = urllib.parse.parse_qs(text, keep_blank_values=True).get("payload", [])
    if len(values) != 1:
        raise InvalidPayload(
            f"invalid form field payload: expected it once, found {len(values)} "
            "(Slack sends the interaction as form-encoded payload=<JSON>)"
        )
    try:
        data = json.loads(values[0])
    except ValueError as exc:
        excerpt = _redact_text(values[0])[:80]
        raise InvalidPayload(
            f"invalid form field payload: not JSON ({exc}); got {excerpt!r}"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidPayload(
            f"invalid form field payload: expected a JSON object, "
            f"got {type(data).__name__}"
        )
    return data


def _command(
    payload: BlockActionsPayload, index: int, kind: CommandKind, at: datetime
) -> Command:
    action = payload.actions[index]
    incident_id = action.value or ""
    try:
        group_key_of(incident_id)
    except ValueError as exc:
        raise InvalidPayload(f"invalid actions.{index}.value: {exc}") from exc
    container = payload.container
    channel_id = container.channel_id if container else None
    message_ts = container.message_ts if container else None
    # The id derives from the press alone, so a second delivery of one press
    # (same message and action_ts) gets the same id and correlate drops it.
    identity = (channel_id, message_ts, action.action_ts, action.action_id)
    details = {
        "slack_user_id": payload.user.id,
        "channel_id": channel_id,
        "message_ts": message_ts,
        "action_ts": action.action_ts,
    }
    return Command(
        command_id=f"slack-{stable_hash(*identity)}",
        kind=kind,
        incident_id=incident_id,
        actor=payload.user.actor,
        source="slack",
        at=at,
        details={key: value for key, value in details.items() if value is not None},
    )


def redact_json(value: Any) -> Any:
    """Return a copy of decoded JSON with every secret value replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if SECRET_KEY.match(str(key)) else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def redact_body(body: bytes) -> bytes:
    """Return the form body with secrets replaced, fit for a dead-letter record.

    JSON field values are redacted by key. A value that is not JSON has its
    `"token": "..."` style pairs replaced textually, so a payload that failed
    to parse is still stripped.
    """
    text = body.decode("utf-8", errors="replace")
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
    redacted = [(_redact_text(key), _redact_field(key, value)) for key, value in pairs]
    return urllib.parse.urlencode(redacted).encode()


def _redact_field(key: str, value: str) -> str:
    if SECRET_KEY.match(key):
        return REDACTED
    try:
        data = json.loads(value)
    except ValueError:
        return _redact_text(value)
    return json.dumps(redact_json(data))


def _redact_text(text: str) -> str:
    return SECRET_IN_TEXT.sub(rf'\1:"{REDACTED}"', text)


@dataclass(frozen=True)
class Reply:
    """The HTTP status and JSON body to return; no body means an empty 200."""

    status: int
    body: dict[str, str] | None = None


PublishCommand = Callable[[str, Command], Awaitable[None]]
PublishApproval = Callable[[RunbookApproval], Awaitable[None]]
DeadLetterInput = Callable[[bytes, str], Awaitable[None]]


class SlackActions:
    """Verify, parse and publish Slack button presses, independent of faust.

    `publish` receives the group key and the command; `dead_letter` receives
    the redacted body and the reason. `now` stamps commands with the pipeline
    clock, and `wall` is the wall time the signature timestamp is checked
    against. `publish_approval` receives runbook approvals; without it
    Approve presses are ignored.
    """

    def __init__(
        self,
        signing_secret: SecretStr | None,
        publish: PublishCommand,
        dead_letter: DeadLetterInput,
        now: Callable[[], datetime],
        wall: Callable[[], float] = time.time,
        publish_approval: PublishApproval | None = None,
    ) -> None:
        secret = _usable_secret(signing_secret)
        self._verifier = None if secret is None else RequestVerifier(secret, wall)
        self._publish = publish
        self._dead_letter = dead_letter
        self._now = now
        self._publish_approval = publish_approval
        self.rejected: Counter[Rejection] = Counter()

    def __repr__(self) -> str:
        return f"SlackActions(configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self._verifier is not None

    async def handle(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """Verify one interactivity request and publish its commands if valid."""
        if self._verifier is None:
            return Reply(503, {"error": not_configured_message()})
        rejection = self._verifier.check(body, headers)
        if rejection is not None:
            self._count_rejection(rejection)
            return Reply(401, {"error": rejection.message})
        publish_approval = self._publish_approval
        try:
            commands = commands_from_body(body, self._now())
            approvals = []
            if publish_approval is not None:
                approvals = approvals_from_body(body, self._now())
        except InvalidPayload as exc:
            await self._dead_letter(redact_body(body), str(exc))
            return Reply(400, {"error": str(exc)})
        for approval in approvals:
            assert publish_approval is not None  # approvals is empty without it
            await publish_approval(approval)
            log.info(
                "slack runbook approval accepted run_id=%s approver=%r",
                approval.run_id,
                approval.approver,
            )
        for command in commands:
            await self._publish(group_key_of(command.incident_id), command)
            log.info(
                "slack command accepted kind=%s incident_id=%s command_id=%s actor=%r",
                command.kind,
                command.incident_id,
                command.command_id,
                command.actor,
            )
        return Reply(200)

    def _count_rejection(self, rejection: Rejection) -> None:
        self.rejected[rejection] += 1
        count = self.rejected[rejection]
        if count == 1 or count % REJECTION_LOG_EVERY == 0:
            log.warning(
                "slack request rejected with 401 reason=%s count=%d",
                rejection,
                count,
            )


def _usable_secret(secret: SecretStr | None) -> SecretStr | None:
    # A blank secret counts as unset, because slack-sdk's SignatureVerifier
    # raises ValueError for one and the worker would not start.
    if secret is None or not secret.get_secret_value().strip():
        return None
    return secret


def not_configured_message() -> str:
    return (
        f"Slack actions are disabled: set {SECRET_SETTING} to the signing "
        "secret of the Slack app (Basic Information, App Credentials)"
    )


def register(pipeline: Pipeline, wall: Callable[[], float] = time.time) -> None:
    """Register `POST /slack/actions` on the pipeline's app."""

    async def publish(group_key: str, command: Command) -> None:
        await pipeline.publish(topics.COMMANDS, group_key, command)

    async def dead_letter(raw: bytes, error: str) -> None:
        await pipeline.dead_letters.send_raw(STAGE, SOURCE, raw, error)

    async def publish_approval(approval: RunbookApproval) -> None:
        await pipeline.publish(topics.RUNBOOK_APPROVALS, approval.group_key, approval)

    actions = SlackActions(
        pipeline.settings.slack_signing_secret,
        publish,
        dead_letter,
        pipeline.clock.now,
        wall,
        publish_approval,
    )
    if not actions.configured:
        log.info("slack actions return 503 until %s is set", SECRET_SETTING)

    @pipeline.app.page(PATH)
    class SlackActionsView(web.View):
        async def post(self, request: web.Request) -> web.Response:
            reply = await actions.handle(await request.read(), request.headers)
            if reply.body is None:
                return self.bytes(b"", status=reply.status)
            return self.json(reply.body, status=reply.status)

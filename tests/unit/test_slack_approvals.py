"""Runbooks in Slack: the Approve button, its press, and runbook messages."""

from __future__ import annotations

import asyncio

import pytest
from factories import T0, make_notification
from pydantic import SecretStr
from test_slack_actions import SECRET, form, make_action, make_payload, sign, wall

from handlers.slack import approval_blocks, transition_text
from schemas.records import Command, EventKind
from schemas.runbooks import RunbookApproval
from streams.web.slack_actions import (
    APPROVE_ACTION,
    InvalidPayload,
    Reply,
    SlackActions,
    approvals_from_body,
)

RUN_ID = "g1-1:1:restart"


def approve_press(value: str = RUN_ID) -> bytes:
    return form(make_payload(make_action(APPROVE_ACTION, value)))


def test_press_maps_to_approval() -> None:
    [approval] = approvals_from_body(approve_press(), T0)

    assert approval.run_id == RUN_ID
    assert approval.group_key == "g1"
    assert approval.approver == "alice"
    assert approval.user_id == "U0ALICE"
    assert approval.source == "slack"


def test_same_press_same_approval_id() -> None:
    first = approvals_from_body(approve_press(), T0)[0].approval_id

    assert first == approvals_from_body(approve_press(), T0)[0].approval_id


def test_invalid_run_id_names_value() -> None:
    with pytest.raises(InvalidPayload, match="invalid run id 'nope'"):
        approvals_from_body(approve_press("nope"), T0)


def test_other_buttons_are_not_approvals() -> None:
    assert approvals_from_body(form(make_payload()), T0) == []


class Sent:
    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.approvals: list[RunbookApproval] = []

    async def publish(self, group_key: str, command: Command) -> None:
        self.commands.append(command)

    async def approve(self, approval: RunbookApproval) -> None:
        self.approvals.append(approval)

    async def dead_letter(self, raw: bytes, error: str) -> None:
        raise AssertionError(error)


def test_handler_publishes_approval() -> None:
    sent = Sent()
    actions = SlackActions(
        SecretStr(SECRET),
        sent.publish,
        sent.dead_letter,
        lambda: T0,
        wall,
        sent.approve,
    )
    body = approve_press()

    reply = asyncio.run(actions.handle(body, sign(body)))

    assert reply == Reply(200)
    assert [a.run_id for a in sent.approvals] == [RUN_ID]
    assert sent.commands == []


def test_approval_request_has_button() -> None:
    notification = make_notification(
        details={"approval_run_id": RUN_ID, "message": "restart <host> & go?"}
    )

    section, actions = approval_blocks(notification)

    assert section["text"]["text"] == "restart &lt;host&gt; &amp; go?"
    assert actions["elements"][0]["action_id"] == APPROVE_ACTION
    assert actions["elements"][0]["value"] == RUN_ID


def test_other_notifications_have_no_button() -> None:
    assert approval_blocks(make_notification()) == []


def test_runbook_message_in_thread_text() -> None:
    notification = make_notification(
        kind=EventKind.RUNBOOK_FINISHED,
        details={"runbook": "restart", "message": "restarted <web-1>"},
    )

    assert transition_text(notification) == "restart: restarted &lt;web-1&gt;"

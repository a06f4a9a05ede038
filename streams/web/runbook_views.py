"""Runbook views: list runs, show one, approve a run's pending approval step."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from faust import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.runbooks import RunbookApproval
from streams import topics
from streams.deadletter import describe_validation_error
from streams.runbooks.agent import pending_approval

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


class ApproveRequest(BaseModel):
    """Body of `POST /runbooks/runs/{run_id}/approve`."""

    model_config = ConfigDict(extra="forbid", title="approval request")

    approver: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


async def request_approval(
    pipeline: Pipeline, stored: dict[str, Any], approver: str, source: str
) -> str:
    """Publish an approval for a stored run to its partition; return its id.

    The runbooks stage checks the approver and the expiry when it applies it.
    """
    approval = RunbookApproval(
        approval_id=str(uuid.uuid4()),
        run_id=stored["run_id"],
        group_key=stored["group_key"],
        approver=approver,
        source=source,
        at=pipeline.clock.now(),
    )
    await pipeline.publish(topics.RUNBOOK_APPROVALS, approval.group_key, approval)
    log.info(
        "runbook approval requested run_id=%s approver=%s source=%s",
        approval.run_id,
        approver,
        source,
    )
    return approval.approval_id


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    runs = pipeline.tables["runbook-runs"]
    by_name = {runbook.name: runbook for runbook in pipeline.config.runbooks}

    # NOTE: like /incidents, this lists the runs of this worker's partitions.
    @app.page("/runbooks/runs")
    async def list_runs(view: web.View, request: web.Request) -> web.Response:
        incident_id = request.query.get("incident_id")
        rows = [
            run
            for run in runs.values()
            if incident_id is None or run["incident_id"] == incident_id
        ]
        rows.sort(key=lambda run: (run["started_at"], run["run_id"]))
        return view.json({"runs": rows})

    @app.page("/runbooks/runs/{run_id}")
    async def show_run(
        view: web.View, request: web.Request, run_id: str
    ) -> web.Response:
        stored = runs.get(run_id)
        if stored is None:
            return view.json({"error": f"run {run_id!r} not found"}, status=404)
        return view.json(stored)

    @app.page("/runbooks/runs/{run_id}/approve")
    class Approve(web.View):
        async def post(self, request: web.Request, run_id: str) -> web.Response:
            try:
                body = ApproveRequest.model_validate_json(await request.read() or b"{}")
            except ValidationError as exc:
                return self.json({"error": describe_validation_error(exc)}, status=400)
            stored = runs.get(run_id)
            if stored is None:
                return self.json({"error": f"run {run_id!r} not found"}, status=404)
            if stored["status"] != "awaiting_approval":
                error = f"run {run_id!r} is {stored['status']}, not awaiting approval"
                return self.json({"error": error}, status=409)
            approval_id = await request_approval(
                pipeline, stored, body.approver, "http"
            )
            action = pending_approval(stored, by_name)
            if action is not None and body.approver not in action.approvers:
                # The approval is still published, so the approvals agent
                # puts the rejected attempt on the incident's timeline.
                error = (
                    f"{body.approver!r} is not an approver of run {run_id!r}; "
                    f"allowed: {action.approvers}"
                )
                return self.json({"error": error}, status=403)
            return self.json({"approval_id": approval_id}, status=202)

"""Postmortem drafts rendered from a stored incident."""

from __future__ import annotations

from typing import Any

from streams.analytics.postmortem import TO_WRITE, render_postmortem


def stored_incident(**overrides: Any) -> dict[str, Any]:
    incident: dict[str, Any] = {
        "incident_id": "g1-1",
        "state": "resolved",
        "service": "api",
        "severity": "critical",
        "title": "API down",
        "rule": "api_down",
        "labels": {"service": "api", "affected_users": "200"},
        "opened_at": "2024-05-01T12:00:00Z",
        "started_at": "2024-05-01T11:58:00Z",
        "acknowledged_at": "2024-05-01T12:04:00Z",
        "acknowledged_by": "alice via http",
        "resolved_at": "2024-05-01T12:30:00Z",
        "resolved_by": "bob via cli",
        "notes": [{"at": "2024-05-01T12:10:00Z", "actor": "alice", "note": "rollback"}],
        "timeline": [
            {
                "seq": 1,
                "kind": "opened",
                "at": "2024-05-01T12:00:00Z",
                "actor": "detect",
            },
            {
                "seq": 2,
                "kind": "runbook_finished",
                "at": "2024-05-01T12:01:00Z",
                "actor": "restart",
                "details": {
                    "runbook": "restart",
                    "status": "rendered",
                    "dry_run": True,
                    "steps": [{}],
                },
            },
            {
                "seq": 3,
                "kind": "acknowledged",
                "at": "2024-05-01T12:04:00Z",
                "actor": "alice via http",
            },
            {
                "seq": 4,
                "kind": "resolved",
                "at": "2024-05-01T12:30:00Z",
                "actor": "bob via cli",
                "details": {"how": "by a person", "resolution": "false_positive"},
            },
        ],
    }
    incident.update(overrides)
    return incident


def section(markdown: str, title: str) -> str:
    after = markdown.split(f"## {title}\n", 1)[1]
    return after.split("\n## ", 1)[0]


def test_draft_has_every_section() -> None:
    markdown = render_postmortem(stored_incident())

    for title in (
        "Summary",
        "Impact",
        "Detection",
        "Response times",
        "Timeline",
        "Runbook runs",
        "Notes",
        "Root cause",
        "Follow-ups",
    ):
        assert f"\n## {title}\n" in markdown, title


def test_timeline_lists_every_transition_with_actor() -> None:
    timeline = section(render_postmortem(stored_incident()), "Timeline")

    rows = [line for line in timeline.splitlines() if line.startswith("| 2024")]
    assert len(rows) == 4
    assert "| acknowledged | alice via http |" in rows[2]


def test_response_times_against_targets() -> None:
    times = section(render_postmortem(stored_incident()), "Response times")

    assert "4.0 min by alice via http (within the 5 min target)" in times
    assert "30.0 min by bob via cli (within the 60 min target)" in times


def test_impact_score_in_draft() -> None:
    impact = section(render_postmortem(stored_incident()), "Impact")

    # critical weighs 5: 5 * 0.5 h * 200 users.
    assert "Impact score: 500.00" in impact


def test_detection_time() -> None:
    detection = section(render_postmortem(stored_incident()), "Detection")

    assert "Time to detect: 2.0 min" in detection


def test_runbook_run_listed() -> None:
    runs = section(render_postmortem(stored_incident()), "Runbook runs")

    assert "restart rendered (dry run, 1 steps)" in runs


def test_false_positive_resolution_shown() -> None:
    summary = section(render_postmortem(stored_incident()), "Summary")

    assert "Resolution: false positive" in summary


def test_root_cause_left_blank() -> None:
    assert (
        section(render_postmortem(stored_incident()), "Root cause").strip() == TO_WRITE
    )


def test_unacknowledged_open_incident() -> None:
    incident = stored_incident(
        state="open", acknowledged_at=None, resolved_at=None, timeline=[]
    )

    times = section(render_postmortem(incident), "Response times")

    assert "never acknowledged" in times
    assert "not resolved" in times


def test_pipe_in_details_escaped() -> None:
    incident = stored_incident(
        timeline=[
            {
                "seq": 1,
                "kind": "note_added",
                "at": "2024-05-01T12:00:00Z",
                "actor": "a|b",
                "details": {},
            }
        ]
    )

    timeline = section(render_postmortem(incident), "Timeline")

    assert "a\\|b" in timeline

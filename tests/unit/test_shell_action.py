"""Runbook shell actions run as real child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import alive

from handlers.shell_action import (
    ShellRejected,
    kill_group,
    kill_recorded_group,
    process_group_of,
    redacted_head,
    run_command,
)

PYTHON = sys.executable
ALLOWLIST = [PYTHON]


def python(code: str, *args: str, **options: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "env": {},
        "cwd": "/",
        "allowlist": ALLOWLIST,
        "max_output_bytes": 1000,
    }
    kwargs.update(options)
    return asyncio.run(run_command([PYTHON, "-c", code, *args], **kwargs))


def test_argument_reaches_program_literally() -> None:
    result = python("import sys; print(sys.argv[1:])", "web-1; rm -rf /")

    assert result["stdout"].strip() == "['web-1; rm -rf /']"
    assert result["exit_code"] == 0
    assert result["status"] == "succeeded"


def test_environment_only_declared() -> None:
    env_program = "/usr/bin/env"
    result = asyncio.run(
        run_command([env_program], {"TARGET": "h1"}, "/", [env_program], 1000)
    )

    assert result["stdout"] == "TARGET=h1\n"


def test_working_directory_used(tmp_path: Path) -> None:
    result = python("import os; print(os.getcwd())", cwd=str(tmp_path))

    assert result["stdout"].strip() == str(tmp_path)


def test_output_capped() -> None:
    result = python("print('x' * 5000)", max_output_bytes=100)

    assert result["stdout"] == "x" * 100


def test_stderr_captured() -> None:
    result = python("import sys; sys.stderr.write('bad'); sys.exit(3)")

    assert result["stderr"] == "bad"
    assert result["exit_code"] == 3
    assert result["status"] == "failed"
    assert "expected exit code 0, got 3" in result["error"]


def test_expected_exit_code_accepted() -> None:
    result = python("import sys; sys.exit(3)", expected_exit_code=3)

    assert result["status"] == "succeeded"


def test_executable_not_allowlisted_rejected() -> None:
    with pytest.raises(ShellRejected, match="not in shell_allowlist"):
        asyncio.run(run_command(["/bin/sh", "-c", "true"], {}, "/", ALLOWLIST, 100))


def test_missing_cwd_rejected(tmp_path: Path) -> None:
    with pytest.raises(ShellRejected, match="not a directory"):
        python("pass", cwd=str(tmp_path / "missing"))


HANGS_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


def test_cancel_kills_process_and_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"

    async def cancelled() -> None:
        task = asyncio.ensure_future(
            run_command(
                [PYTHON, "-c", HANGS_WITH_CHILD, str(pid_file)],
                {},
                "/",
                ALLOWLIST,
                100,
            )
        )
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "child never started"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a group in its own session, as a shell step does, with a child."""
    pid_file = tmp_path / "child.pid"
    leader = subprocess.Popen(
        [PYTHON, "-c", HANGS_WITH_CHILD, str(pid_file)], start_new_session=True
    )
    assert wait_until(lambda: pid_file.exists() and bool(pid_file.read_text()))
    child = int(pid_file.read_text())
    yield leader, child
    if leader.poll() is None:
        kill_group(leader.pid)
        leader.wait(timeout=10)
    if alive(child):
        os.kill(child, signal.SIGKILL)


def test_recorded_group_killed(orphan: tuple[subprocess.Popen[bytes], int]) -> None:
    leader, child = orphan
    group = process_group_of(leader.pid)
    assert group is not None

    outcome = kill_recorded_group(group)

    assert outcome == "killed"
    assert leader.wait(timeout=10) == -signal.SIGKILL
    assert wait_until(lambda: not alive(child))


def test_reused_group_id_not_killed(
    orphan: tuple[subprocess.Popen[bytes], int],
) -> None:
    leader, child = orphan
    group = process_group_of(leader.pid)
    assert group is not None
    earlier = group.model_copy(update={"start_ticks": group.start_ticks - 1})

    outcome = kill_recorded_group(earlier)

    assert outcome == "not_running"
    assert leader.poll() is None
    assert alive(child)


def test_group_of_other_boot_not_killed(
    orphan: tuple[subprocess.Popen[bytes], int],
) -> None:
    leader, child = orphan
    group = process_group_of(leader.pid)
    assert group is not None
    elsewhere = group.model_copy(update={"boot_id": "another-boot"})

    outcome = kill_recorded_group(elsewhere)

    assert outcome == "other_machine"
    assert leader.poll() is None
    assert alive(child)


def test_group_without_leader_killed(
    orphan: tuple[subprocess.Popen[bytes], int],
) -> None:
    leader, child = orphan
    group = process_group_of(leader.pid)
    assert group is not None
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=10)

    outcome = kill_recorded_group(group)

    assert outcome == "killed"
    assert wait_until(lambda: not alive(child))


def test_ended_group_not_running(orphan: tuple[subprocess.Popen[bytes], int]) -> None:
    leader, child = orphan
    group = process_group_of(leader.pid)
    assert group is not None
    kill_group(leader.pid)
    leader.wait(timeout=10)
    assert wait_until(lambda: not alive(child))

    assert kill_recorded_group(group) == "not_running"


def test_on_start_receives_group_id(tmp_path: Path) -> None:
    started: list[int] = []

    async def record(pid: int) -> None:
        started.append(pid)
        assert os.getpgid(pid) == pid

    result = python("print('ok')", on_start=record)

    assert result["status"] == "succeeded"
    assert len(started) == 1


SECRET = "zq-secret-0123456789-abcdef"


def test_secret_cut_by_output_limit_redacted() -> None:
    code = f"import sys; sys.stdout.write('abcdefghij' + {SECRET!r} + ' tail')"
    result = asyncio.run(
        run_command(
            [PYTHON, "-c", code],
            {},
            "/",
            [PYTHON],
            max_output_bytes=24,
            secrets=[SECRET],
        )
    )

    assert result["stdout"] == "abcdefghij[redacted]"
    assert "zq-" not in result["stdout"]


def test_redaction_keeps_bytes_after_secret() -> None:
    data = f"{SECRET} then {SECRET} end".encode()

    head = redacted_head(data, [SECRET], len(SECRET) + 6)

    assert head == b"[redacted] then "


def test_redaction_does_not_shift_cut() -> None:
    # Redacting the first secret frees room, yet the second, which starts
    # past the limit, must not slide into the kept bytes.
    data = f"{SECRET}{SECRET}".encode()

    head = redacted_head(data, [SECRET], len(SECRET))

    assert head == b"[redacted]"

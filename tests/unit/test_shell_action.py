"""Runbook shell actions run as real child processes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from handlers.shell_action import ShellRejected, run_command

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


def alive(pid: int) -> bool:
    """Return whether `pid` runs; a zombie waiting for its parent does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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

"""Runbook shell action: run an allowlisted program from an argv list, bounded.

The program never goes through a shell: argv reaches `execve` as given, so
a value such as `; rm -rf /` is one literal argument. It starts in its own
session, so cancelling the step kills its whole process group, children
included, unless a child has moved to a session of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

# How long a killed group gets to exit before its pipes are abandoned.
KILL_WAIT_S = 5.0


class ShellRejected(ValueError):
    """The command is not allowed to run: executable not allowlisted, bad cwd."""


def check_command(argv: Sequence[str], cwd: str, allowlist: Sequence[str]) -> None:
    """Raise ShellRejected unless argv[0] is allowlisted and cwd is a directory."""
    if not argv or argv[0] not in allowlist:
        executable = argv[0] if argv else None
        raise ShellRejected(
            f"executable {executable!r} is not in shell_allowlist {list(allowlist)}"
        )
    if not os.path.isdir(cwd):
        raise ShellRejected(f"working directory {cwd!r} is not a directory")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """Read a stream to its end, keeping the first `limit` bytes only."""
    if stream is None:
        return b""
    head = bytearray()
    while chunk := await stream.read(65_536):
        if len(head) < limit:
            head += chunk[: limit - len(head)]
    return bytes(head)


async def run_command(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    allowlist: Sequence[str],
    max_output_bytes: int,
    expected_exit_code: int = 0,
) -> dict[str, Any]:
    """Run the command and return its step result.

    Raises ShellRejected before starting anything. If the caller cancels
    this coroutine (the step timed out), the process group is killed with
    SIGKILL and the cancellation propagates.
    """
    check_command(argv, cwd, allowlist)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    log.info("shell step started pid=%d executable=%s", process.pid, argv[0])
    try:
        stdout, stderr = await asyncio.gather(
            _read_capped(process.stdout, max_output_bytes),
            _read_capped(process.stderr, max_output_bytes),
        )
        exit_code = await process.wait()
    except asyncio.CancelledError:
        _kill_group(process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), KILL_WAIT_S)
        log.warning("shell step killed pid=%d executable=%s", process.pid, argv[0])
        raise
    # Children left behind by a program that exited are killed too.
    _kill_group(process)
    ok = exit_code == expected_exit_code
    return {
        "status": "succeeded" if ok else "failed",
        "exit_code": exit_code,
        "stdout": stdout.decode(errors="replace"),
        "stderr": stderr.decode(errors="replace"),
        "duration_s": round(time.monotonic() - started, 3),
        "error": None
        if ok
        else f"expected exit code {expected_exit_code}, got {exit_code}",
    }

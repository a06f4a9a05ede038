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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from schemas.records import ProcessGroup

log = logging.getLogger(__name__)

# How long a killed group gets to exit before its pipes are abandoned.
KILL_WAIT_S = 5.0
PROC = Path("/proc")
BOOT_ID = PROC / "sys/kernel/random/boot_id"
# Indexes into the fields of /proc/PID/stat that follow the command name,
# which start with field 3 (state): see proc(5).
_STATE, _PGRP, _SESSION, _START_TICKS = 0, 2, 3, 19


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


def kill_group(pgid: int) -> None:
    """Send SIGKILL to process group `pgid`; a group that is gone is ignored."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name, or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def process_group_of(pid: int) -> ProcessGroup | None:
    """Return the identity of the group that `pid` leads, or None without /proc."""
    fields = _stat_fields(pid)
    boot_id = _boot_id()
    if fields is None or boot_id is None:
        return None
    return ProcessGroup(
        pgid=pid, start_ticks=int(fields[_START_TICKS]), boot_id=boot_id
    )


def _group_running(group: ProcessGroup) -> bool:
    """Return whether a live process belongs to the recorded group.

    Linux reuses no process id while a group or session of that id exists,
    so a live process in group and session `pgid` is the recorded group's,
    unless the leader itself runs with another start time.
    """
    found = False
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[_STATE] in {"Z", "X"}:
            continue
        if int(fields[_PGRP]) != group.pgid or int(fields[_SESSION]) != group.pgid:
            continue
        if int(entry.name) == group.pgid:
            return int(fields[_START_TICKS]) == group.start_ticks
        found = found or int(fields[_START_TICKS]) >= group.start_ticks
    return found


def kill_recorded_group(
    group: ProcessGroup,
) -> Literal["killed", "not_running", "other_machine"]:
    """Kill a group recorded by an earlier worker process if it still runs.

    Returns "other_machine" without killing anything when the group was
    recorded under another boot id: another machine, or before a reboot.
    """
    if _boot_id() != group.boot_id:
        return "other_machine"
    if not _group_running(group):
        return "not_running"
    kill_group(group.pgid)
    log.warning("shell step process group killed pgid=%d", group.pgid)
    return "killed"


# The text that replaces a secret in a program's output.
REDACTED = b"[redacted]"


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """Read a stream to its end, keeping the first `limit` bytes only."""
    if stream is None:
        return b""
    head = bytearray()
    while chunk := await stream.read(65_536):
        if len(head) < limit:
            head += chunk[: limit - len(head)]
    return bytes(head)


def redacted_head(data: bytes, secrets: Sequence[str], limit: int) -> bytes:
    """Return the first `limit` bytes of `data` with every secret in them redacted.

    A secret that the cut at `limit` splits is redacted too, as long as
    `data` reaches past the cut by the length of the longest secret. Spans
    are found in the uncut data, so no redaction shifts later bytes into
    the kept head.
    """
    hidden = bytearray(min(len(data), limit))
    for secret in secrets:
        needle = secret.encode()
        if not needle:
            continue
        start = data.find(needle)
        while 0 <= start < limit:
            end = min(start + len(needle), limit)
            hidden[start:end] = b"\x01" * (end - start)
            start = data.find(needle, start + 1)
    head = bytearray()
    index = 0
    while index < len(hidden):
        if hidden[index]:
            head += REDACTED
            while index < len(hidden) and hidden[index]:
                index += 1
        else:
            head.append(data[index])
            index += 1
    return bytes(head)


async def run_command(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    allowlist: Sequence[str],
    max_output_bytes: int,
    expected_exit_code: int = 0,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the command and return its step result.

    `on_start` is awaited with the process id, which is also the process
    group id, once the program runs. Each of `secrets` in the output is
    replaced by `[redacted]`, also where the output limit cuts it. Raises
    ShellRejected before starting anything. If the caller cancels this
    coroutine (the step timed out), the process group is killed with SIGKILL
    and the cancellation propagates.
    """
    check_command(argv, cwd, allowlist)
    margin = max((len(secret.encode()) for secret in secrets), default=0)
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
        if on_start is not None:
            await on_start(process.pid)
        stdout, stderr = await asyncio.gather(
            _read_capped(process.stdout, max_output_bytes + margin),
            _read_capped(process.stderr, max_output_bytes + margin),
        )
        exit_code = await process.wait()
    except BaseException:  # cancelled, or `on_start` failed: nothing may outlive it
        kill_group(process.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), KILL_WAIT_S)
        log.warning("shell step killed pid=%d executable=%s", process.pid, argv[0])
        raise
    # Children left behind by a program that exited are killed too.
    kill_group(process.pid)
    ok = exit_code == expected_exit_code
    return {
        "status": "succeeded" if ok else "failed",
        "exit_code": exit_code,
        "stdout": redacted_head(stdout, secrets, max_output_bytes).decode(
            errors="replace"
        ),
        "stderr": redacted_head(stderr, secrets, max_output_bytes).decode(
            errors="replace"
        ),
        "duration_s": round(time.monotonic() - started, 3),
        "error": None
        if ok
        else f"expected exit code {expected_exit_code}, got {exit_code}",
    }

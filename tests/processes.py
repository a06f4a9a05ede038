"""Process checks shared by the tests that start programs through runbooks."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Return whether `pid` runs; a zombie waiting for its parent does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

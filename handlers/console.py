"""The console receiver: one line per transition on standard output."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from schemas.records import Notification


class ConsoleReceiver:
    """Print notifications; used when no other receiver is configured."""

    kind = "console"

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        event = notification.event
        line = (
            f"[{self.name}] {event.at:%Y-%m-%d %H:%M:%S} {event.kind.upper()} "
            f"{event.incident_id} {event.severity} {event.service}: {event.title}"
        )
        message = event.details.get("message")
        if isinstance(message, str):
            line += f" ({message})"
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        return state

"""The receiver interface and the one error type every handler raises."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from schemas.records import Notification


class DeliveryError(Exception):
    """A delivery failed. `retriable` is true when trying again can help.

    `retry_after_s` carries the wait the service asked for (HTTP 429
    Retry-After), if it asked. `outcome_unknown` is true when the request
    may have taken effect although it failed (a timeout, a dropped
    connection, a 5xx), so a retry must check before it repeats it.
    """

    def __init__(
        self,
        message: str,
        *,
        retriable: bool,
        retry_after_s: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after_s = retry_after_s
        self.outcome_unknown = outcome_unknown


class Receiver(Protocol):
    """Something a notification can be delivered to."""

    name: str
    kind: str

    async def deliver(
        self, notification: Notification, state: dict[str, Any]
    ) -> dict[str, Any]:
        """Deliver one notification and return the receiver's new state.

        `state` is what this receiver stored for the incident after its last
        delivery (for Slack, the message to update), or empty.
        """
        ...


@runtime_checkable
class ChecksEarlierPosts(Protocol):
    """A receiver that can look for a delivery an earlier attempt may have made."""

    def assume_outcome_unknown(self, notification_id: str) -> None:
        """Make the next delivery of `notification_id` check for an earlier one."""
        ...


def retriable_status(status: int) -> bool:
    """Return whether an HTTP status is worth retrying: 408, 429 and 5xx."""
    return status in {408, 429} or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds of a Retry-After header given in seconds, if valid."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None

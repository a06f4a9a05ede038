"""Placeholder replaced by the pagerduty_webhooks views."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import Pipeline


def register(pipeline: Pipeline) -> None:
    """Register the views of this module on the pipeline's app."""

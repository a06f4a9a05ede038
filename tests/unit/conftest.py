"""Unit-test setup: import tests/ modules as top-level and keep traffic local."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/ has no __init__.py, so its modules (fakes, harness) import as top-level
# names, and so does factories.py next to this file.
TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep client traffic on 127.0.0.1.

    slack-sdk and httpx2 read the proxy variables when no proxy is given.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)

"""The ``batchcore`` pytest plugin (entry point ``pytest11``): fixtures for provider tests.

Disable with ``pytest -p no:batchcore``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batchcore.testing.clock import ManualClock
from batchcore.testing.server import LoopbackServer


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A started :class:`LoopbackServer` with no routes; add them with ``@server.route``."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def manual_clock() -> ManualClock:
    """A :class:`ManualClock` starting at a fixed, recent time."""
    return ManualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z

"""The in-memory fake provider, under its former module name.

:mod:`batchcore.testing.fake_backend` holds :class:`FakeBackend` (the fake vendor) and
:class:`Outcome`; :mod:`batchcore.testing.fake_provider` holds :class:`FakeBatchProvider`. Both
are also importable from :mod:`batchcore.testing`.
"""

from __future__ import annotations

from batchcore.testing.fake_backend import (
    FAKE_MODEL,
    OPERATIONS,
    FakeAPIError,
    FakeBackend,
    FakeBatch,
    FakeTransportError,
    Outcome,
)
from batchcore.testing.fake_provider import FakeBatchProvider

__all__ = [
    "FAKE_MODEL",
    "OPERATIONS",
    "FakeAPIError",
    "FakeBackend",
    "FakeBatch",
    "FakeBatchProvider",
    "FakeTransportError",
    "Outcome",
]

"""The in-memory fake provider, under its former module name.

:mod:`batchcore.testing.fake_backend` holds :class:`FakeBackend` (the fake vendor),
:mod:`batchcore.testing.fake_batches` its :class:`Outcome` and :class:`FakeBatch`,
:mod:`batchcore.testing.fake_errors` what its failed calls raise, and
:mod:`batchcore.testing.fake_provider` :class:`FakeBatchProvider`. The fake's main names are
also importable from :mod:`batchcore.testing`.
"""

from __future__ import annotations

from batchcore.testing.fake_backend import FAKE_MODEL, OPERATIONS, FakeBackend
from batchcore.testing.fake_batches import FakeBatch, Outcome
from batchcore.testing.fake_errors import FakeAPIError, FakeTransportError
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

"""Test support for batchcore users and provider authors.

* :class:`LoopbackServer`, :class:`Fault` - an HTTP server on 127.0.0.1 with fault injection,
  the base of every bundled vendor emulator.
* :class:`VendorEmulator` - the base of those emulators: server, clock, working directory.
* :class:`ManualClock` - a clock tests advance by hand; :class:`SleepRecorder` - a sleep
  function that records the waits asked for instead of waiting.
* ``ProviderContractTests`` - the conformance kit (:mod:`batchcore.testing.kit`; it imports
  pytest, so it loads on first use), and :class:`ContractBackend`, what an emulator implements
  so the kit can drive it.
* :class:`FakeBatchProvider`, :class:`FakeBackend`, :class:`Outcome` - an in-memory provider
  with a controllable clock and scripted outcomes, for testing code that drives batches.
* :mod:`batchcore.testing.openapi` - reading OpenAPI documents, for copying a vendor's schemas
  into tests.

Importing this package does not import pytest; the pytest plugin (``-p no:batchcore`` turns it
off) provides the ``loopback_server`` and ``manual_clock`` fixtures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchcore.testing.clock import ManualClock, SleepRecorder
from batchcore.testing.contract_backend import ContractBackend
from batchcore.testing.emulator import VendorEmulator
from batchcore.testing.fake_backend import FakeBackend
from batchcore.testing.fake_batches import Outcome
from batchcore.testing.fake_provider import FakeBatchProvider
from batchcore.testing.server import Fault, LoopbackServer, RecordedCall, Request, Response

if TYPE_CHECKING:  # type checkers see the lazily loaded name as what it is
    from batchcore.testing.kit import ProviderContractTests

__all__ = [
    "ContractBackend",
    "FakeBackend",
    "FakeBatchProvider",
    "Fault",
    "LoopbackServer",
    "ManualClock",
    "Outcome",
    "ProviderContractTests",
    "RecordedCall",
    "Request",
    "Response",
    "SleepRecorder",
    "VendorEmulator",
]


def __getattr__(name: str) -> Any:
    # The kit imports pytest: load it only when asked for.
    if name == "ProviderContractTests":
        from batchcore.testing.kit import ProviderContractTests

        return ProviderContractTests
    raise AttributeError(f"module 'batchcore.testing' has no attribute {name!r}")

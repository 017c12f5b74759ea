"""Test support for batchcore users and provider authors.

* :class:`LoopbackServer`, :class:`Fault` - an HTTP server on 127.0.0.1 with fault injection,
  the base of every bundled vendor emulator.
* :class:`ManualClock` - a clock tests advance by hand.
* ``ProviderContractTests`` - the conformance kit (imports pytest, so it loads on first use).
* ``FakeBatchProvider`` - an in-memory provider with a controllable clock and scripted outcomes.

Importing this package does not import pytest; the pytest plugin (``-p no:batchcore`` turns it
off) provides the ``loopback_server`` and ``manual_clock`` fixtures.
"""

from __future__ import annotations

from typing import Any

from batchcore.testing.clock import ManualClock
from batchcore.testing.server import Fault, LoopbackServer, RecordedCall, Request, Response

__all__ = [
    "FakeBatchProvider",
    "Fault",
    "LoopbackServer",
    "ManualClock",
    "ProviderContractTests",
    "RecordedCall",
    "Request",
    "Response",
]

_LAZY = {
    "ProviderContractTests": "batchcore.testing.contract",
    "FakeBatchProvider": "batchcore.testing.fake",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'batchcore.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)

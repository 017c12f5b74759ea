"""What a vendor emulator implements so the conformance kit can drive it.

The kit only needs four things from a backend: move its clock, break the next call, count the
calls, and name a request it will fail inside a batch. Emulators built on
:class:`~batchcore.testing.LoopbackServer` implement them in a few lines; the in-memory
:class:`~batchcore.testing.fake.FakeBackend` implements them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from batchcore.errors import (
    AuthenticationError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from batchcore.models import BatchRequest

__all__ = ["EXPECTED_FAULT_ERRORS", "FAULT_KINDS", "TRANSIENT_FAULT_KINDS", "ContractBackend"]

#: The error each injected fault must surface as (the provider's own subclasses are fine).
EXPECTED_FAULT_ERRORS: Mapping[str, type[ProviderError]] = {
    "rate_limit": RateLimitError,  # HTTP 429 with retry-after: 0
    "server_error": ProviderServerError,  # HTTP 500
    "overloaded": OverloadedError,  # HTTP 503 or 529, the vendor's spelling
    "unauthorized": AuthenticationError,  # HTTP 401
    "reset": ProviderConnectionError,  # the connection is reset before any response
}

#: Every fault kind a backend may be asked to inject.
FAULT_KINDS: tuple[str, ...] = tuple(EXPECTED_FAULT_ERRORS)

#: The kinds a provider must retry (under its ``max_retries``).
TRANSIENT_FAULT_KINDS: tuple[str, ...] = tuple(
    kind for kind, error in EXPECTED_FAULT_ERRORS.items() if error.retryable
)


@runtime_checkable
class ContractBackend(Protocol):
    """The handle on a vendor emulator that lets the kit drive time and faults."""

    def advance(self, seconds: float) -> None:
        """Move the backend's clock forward (batches progress with it)."""

    def inject_fault(self, kind: str) -> bool:
        """Make the NEXT HTTP call the provider makes fail. kinds: ``"rate_limit"`` (429 with
        retry-after: 0), ``"server_error"`` (500), ``"overloaded"`` (503 or 529, the vendor's
        spelling), ``"unauthorized"`` (401), ``"reset"`` (connection reset). Return False when
        this kind is not supported (the test then skips)."""

    def call_count(self) -> int:
        """HTTP calls received so far (the kit checks prepare_payloads makes none)."""

    def failing_request(self, custom_id: str, model: str) -> BatchRequest | None:
        """A request the backend will answer with a per-request error inside the batch (not an
        HTTP error), or None if it cannot."""

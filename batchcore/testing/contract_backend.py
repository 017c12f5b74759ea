"""What a vendor emulator implements so the conformance kit can drive it.

The kit needs these things from a backend: the fault kinds it can inject (declared in
``FAULTS``, never probed), a way to inject one, its clock (to read and to move), a count of
the calls it received and of the batches it created, and a request it will fail inside a
batch. Emulators
built on :class:`~batchcore.testing.VendorEmulator` get most of it from the base class; the
in-memory :class:`~batchcore.testing.FakeBackend` implements it too.
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

__all__ = [
    "CONTRACT_BACKEND_MEMBERS",
    "CORRUPT_RESULT_LINE",
    "EXPECTED_FAULT_ERRORS",
    "FAULT_KINDS",
    "LOST_CREATE",
    "TRANSIENT_FAULT_KINDS",
    "ContractBackend",
]

#: The error each injected call fault must surface as (the provider's own subclasses are fine).
EXPECTED_FAULT_ERRORS: Mapping[str, type[ProviderError]] = {
    "rate_limit": RateLimitError,  # HTTP 429 with retry-after: 0
    "server_error": ProviderServerError,  # HTTP 500
    "overloaded": OverloadedError,  # HTTP 503 or 529, the vendor's spelling
    "unauthorized": AuthenticationError,  # HTTP 401
    "reset": ProviderConnectionError,  # the connection is reset before any response
}

#: The fault kinds that make the next call fail, whatever it is.
FAULT_KINDS: tuple[str, ...] = tuple(EXPECTED_FAULT_ERRORS)

#: The kinds a provider must retry (under its ``max_retries``).
TRANSIENT_FAULT_KINDS: tuple[str, ...] = tuple(
    kind for kind, error in EXPECTED_FAULT_ERRORS.items() if error.retryable
)

#: The fault that carries out the next batch create but loses its answer: the client's read
#: timeout fires, and the batch exists all the same.
LOST_CREATE = "lost_create"

#: The fault that garbles one line of the next download of a batch's results (the line is cut
#: in half, the rest arrives whole): the provider must raise, never skip the line.
CORRUPT_RESULT_LINE = "corrupt_result_line"

#: What a backend must have, for the message that names what is missing.
CONTRACT_BACKEND_MEMBERS: tuple[str, ...] = (
    "FAULTS",
    "now",
    "advance",
    "inject_fault",
    "call_count",
    "batch_count",
    "failing_request",
)


@runtime_checkable
class ContractBackend(Protocol):
    """The handle on a vendor emulator that lets the kit drive time and faults."""

    @property
    def FAULTS(self) -> frozenset[str]:
        """The fault kinds :meth:`inject_fault` can inject: any of :data:`FAULT_KINDS`,
        :data:`LOST_CREATE` and :data:`CORRUPT_RESULT_LINE`. The kit skips the tests of a kind
        left out, saying so."""

    def inject_fault(self, kind: str) -> None:
        """Make the NEXT call the provider makes fail with *kind* (``"lost_create"``: the next
        batch create is carried out and its answer never arrives; ``"corrupt_result_line"``:
        the next results download arrives with its second line cut in half). Raises ValueError
        for a kind not in :attr:`FAULTS`."""

    def now(self) -> float:
        """The backend's time (unix seconds). The kit gives the provider this clock, so the
        times it compares with the vendor's (when a lost create was attempted) agree."""

    def advance(self, seconds: float) -> None:
        """Move the backend's clock forward (batches progress with it)."""

    def call_count(self) -> int:
        """Calls received so far (the kit checks that what must stay offline does)."""

    def batch_count(self) -> int:
        """Batches created so far (the kit checks a lost create made exactly one)."""

    def failing_request(self, custom_id: str, model: str) -> BatchRequest | None:
        """A request the backend will answer with a per-request error inside the batch (not an
        HTTP error), or None if it cannot."""

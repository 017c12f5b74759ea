"""Provider classes used by the registry tests. Importing this module imports no SDK."""

from __future__ import annotations

from collections.abc import Iterator

from batchcore import BaseBatchProvider, BatchHandle, BatchPayload, BatchResult, BatchStatus


class NoNetworkProvider(BaseBatchProvider):
    """A provider whose network half is never called in these tests."""

    def submit(self, payload: BatchPayload) -> BatchHandle:
        raise NotImplementedError

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        raise NotImplementedError

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        raise NotImplementedError

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        raise NotImplementedError


class AlphaProvider(NoNetworkProvider):
    """Alpha: a sample provider."""

    PROVIDER_NAME = "alpha"


class BetaProvider(NoNetworkProvider):
    """Beta: another sample provider."""

    PROVIDER_NAME = "beta"


class OtherAlphaProvider(NoNetworkProvider):
    PROVIDER_NAME = "alpha"


class DirectProvider(NoNetworkProvider):
    """Targeted directly by an entry point (module:Class)."""

    PROVIDER_NAME = "direct"

"""Provider classes used by the registry tests. Importing this module imports no SDK."""

from __future__ import annotations

from collections.abc import Iterator

from batchcore import BaseBatchProvider, BatchHandle, BatchPayload, BatchResult, BatchStatus


class _Stub(BaseBatchProvider):
    def submit(self, payload: BatchPayload) -> BatchHandle:
        raise NotImplementedError

    def poll_status(self, handle: BatchHandle) -> BatchStatus:
        raise NotImplementedError

    def fetch_results(self, handle: BatchHandle) -> Iterator[BatchResult]:
        raise NotImplementedError

    def cancel(self, handle: BatchHandle) -> BatchStatus:
        raise NotImplementedError


class AlphaProvider(_Stub):
    """Alpha: a sample provider."""

    PROVIDER_NAME = "alpha"


class BetaProvider(_Stub):
    """Beta: another sample provider."""

    PROVIDER_NAME = "beta"


class OtherAlphaProvider(_Stub):
    PROVIDER_NAME = "alpha"


class DirectProvider(_Stub):
    """Targeted directly by an entry point (module:Class)."""

    PROVIDER_NAME = "direct"

"""batchcore-together: the ``together`` provider of batchcore (Together AI's Batch API).

Install it and ``batch_provider_registry.get("together")`` finds it. The emulator for tests
lives in :mod:`batchcore_together.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcore_together.provider import TogetherBatchProvider

__version__ = "0.1.0"

__all__ = ["TogetherBatchProvider", "__version__"]


def __getattr__(name: str) -> Any:
    # The provider imports requests; load it only when asked for.
    if name == "TogetherBatchProvider":
        from batchcore_together.provider import TogetherBatchProvider

        return TogetherBatchProvider
    raise AttributeError(f"module 'batchcore_together' has no attribute {name!r}")

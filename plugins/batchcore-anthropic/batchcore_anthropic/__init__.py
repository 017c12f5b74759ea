"""batchcore-anthropic: the ``anthropic`` provider of batchcore (Anthropic Message Batches).

Install it and ``batch_provider_registry.get("anthropic")`` finds it. The emulator for tests
lives in :mod:`batchcore_anthropic.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchcore_anthropic.errors import BatchNotVisibleYetError, ResultsNotReadyError

if TYPE_CHECKING:
    from batchcore_anthropic.provider import AnthropicBatchProvider

__version__ = "0.1.0"

__all__ = [
    "AnthropicBatchProvider",
    "BatchNotVisibleYetError",
    "ResultsNotReadyError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The provider imports requests; load it only when asked for.
    if name == "AnthropicBatchProvider":
        from batchcore_anthropic.provider import AnthropicBatchProvider

        return AnthropicBatchProvider
    raise AttributeError(f"module 'batchcore_anthropic' has no attribute {name!r}")

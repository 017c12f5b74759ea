"""batchcore-mistral: the ``mistral`` provider of batchcore (Mistral's batch API).

Install it and ``batch_provider_registry.get("mistral")`` finds it. The emulator for tests lives
in :mod:`batchcore_mistral.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcore_mistral.provider import MistralBatchProvider

__version__ = "0.1.0"

__all__ = ["MistralBatchProvider", "__version__"]


def __getattr__(name: str) -> Any:
    # The provider imports requests; load it only when asked for.
    if name == "MistralBatchProvider":
        from batchcore_mistral.provider import MistralBatchProvider

        return MistralBatchProvider
    raise AttributeError(f"module 'batchcore_mistral' has no attribute {name!r}")

"""The ``batch_providers`` entry point of batchcore-together.

Only registers the provider by import path: discovering it imports nothing heavy (not even
``requests``); the class loads on the first ``get("together")``.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="together",
            factory="batchcore_together.provider:TogetherBatchProvider",
            description="Together AI Batch API (uploaded JSONL, up to 50,000 requests)",
        )
    ]

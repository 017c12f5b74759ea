"""The ``batch_providers`` entry point of batchcore-mistral.

Only registers the provider by import path: discovering it imports nothing heavy (not even
``requests``); the class loads on the first ``get("mistral")``.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="mistral",
            factory="batchcore_mistral.provider:MistralBatchProvider",
            description="Mistral batch API (uploaded JSONL or inline, up to 1,000,000 requests)",
        )
    ]

"""The ``batch_providers`` entry point of batchcore-anthropic.

Only registers the provider by import path: discovering it imports nothing heavy (not even
``requests``); the class loads on the first ``get("anthropic")``.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="anthropic",
            factory="batchcore_anthropic.provider:AnthropicBatchProvider",
            description="Anthropic Message Batches API (inline JSON, up to 100,000 requests)",
        )
    ]

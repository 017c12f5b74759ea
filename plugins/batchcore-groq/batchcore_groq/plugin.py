"""The ``batch_providers`` entry point of batchcore-groq: it only names the provider.

Nothing here imports the ``openai`` SDK; the registry imports the provider class on the first
``get("groq")``.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="groq",
            factory="batchcore_groq.provider:GroqBatchProvider",
            description="Groq Batch API (OpenAI-compatible, 24h to 7d windows)",
        )
    ]

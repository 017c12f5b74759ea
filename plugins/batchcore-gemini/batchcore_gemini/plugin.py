"""The ``batch_providers`` entry point of batchcore-gemini.

Only registers the provider by import path: discovering it imports nothing heavy (not the
``google-genai`` SDK); the class loads on the first ``get("gemini")``.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="gemini",
            factory="batchcore_gemini.provider:GeminiBatchProvider",
            description="Gemini API batch mode (inline up to 20 MB, or a JSONL file up to 2 GB)",
        )
    ]

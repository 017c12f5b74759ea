"""The ``batch_providers`` entry point of batchcore-openai: it only names the providers.

Nothing here imports the ``openai`` SDK; the registry imports a provider class on the first
``get()`` of its name.
"""

from __future__ import annotations

from batchcore.plugin import ProviderSpec, hookimpl

__all__ = ["batchcore_providers"]


@hookimpl
def batchcore_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            name="openai",
            factory="batchcore_openai.provider:OpenAIBatchProvider",
            description="OpenAI Batch API (and OpenAI-compatible services)",
        ),
        ProviderSpec(
            name="azure-openai",
            factory="batchcore_openai.provider:AzureOpenAIBatchProvider",
            description="Azure OpenAI Global Batch / Data Zone Batch deployments",
        ),
    ]

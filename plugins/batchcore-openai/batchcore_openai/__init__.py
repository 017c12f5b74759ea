"""batchcore-openai: the ``openai`` and ``azure-openai`` batch providers for batchcore.

Importing this package imports no SDK: the provider classes (which use the ``openai`` SDK) and
the emulator load on first access.

* :class:`OpenAIBatchProvider`, :class:`AzureOpenAIBatchProvider` - the providers;
* :data:`IDEMPOTENCY_METADATA_KEY` - the batch metadata key a create's idempotency key rides
  in (a provider built on these finds a batch whose create answer was lost by it);
* :mod:`batchcore_openai.testing` - an emulator of the OpenAI Files and Batches API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider

__version__ = "0.1.0"

__all__ = [
    "IDEMPOTENCY_METADATA_KEY",
    "AzureOpenAIBatchProvider",
    "OpenAIBatchProvider",
    "__version__",
]

#: The batch metadata key that carries a payload's idempotency key.
IDEMPOTENCY_METADATA_KEY = "batchcore_idempotency_key"

_LAZY = {
    "OpenAIBatchProvider": "batchcore_openai.provider",
    "AzureOpenAIBatchProvider": "batchcore_openai.provider",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchcore_openai' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

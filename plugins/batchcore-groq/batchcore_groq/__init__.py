"""batchcore-groq: the ``groq`` batch provider for batchcore.

Importing this package imports no SDK: the provider class (which uses the ``openai`` SDK) and
the emulator load on first access.

* :class:`GroqBatchProvider` - the provider;
* :mod:`batchcore_groq.testing` - an emulator of Groq's Files and Batches API and the sandbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcore_groq.provider import GroqBatchProvider

__version__ = "0.1.0"

__all__ = ["GroqBatchProvider", "__version__"]

_LAZY = {"GroqBatchProvider": "batchcore_groq.provider"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchcore_groq' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""batchcore-gemini: the ``gemini`` provider of batchcore (the Gemini API's batch mode).

Install it and ``batch_provider_registry.get("gemini")`` finds it. The emulator for tests lives
in :mod:`batchcore_gemini.testing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcore_gemini.provider import GeminiBatchProvider

__version__ = "0.1.0"

__all__ = ["GeminiBatchProvider", "__version__"]


def __getattr__(name: str) -> Any:
    # The provider imports the google-genai SDK; load it only when asked for.
    if name == "GeminiBatchProvider":
        from batchcore_gemini.provider import GeminiBatchProvider

        return GeminiBatchProvider
    raise AttributeError(f"module 'batchcore_gemini' has no attribute {name!r}")

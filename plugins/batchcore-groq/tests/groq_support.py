"""Helpers shared by the tests (on the test path through ``pythonpath`` in pyproject)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchcore.models import BatchRequest

if TYPE_CHECKING:
    from batchcore_groq.provider import GroqBatchProvider

#: Builds a provider pointed at the test's emulator (the ``make_provider`` fixture).
Factory = Callable[..., "GroqBatchProvider"]

API_KEY = "gsk_test_0123456789abcdef"
MODEL = "llama-3.1-8b-instant"
#: Seconds after which every batch of a default emulator has completed.
FINISHED = 3600.0


def chat(
    custom_id: str, text: str | None = None, *, model: str = MODEL, **params: Any
) -> BatchRequest:
    """A small chat request."""
    return BatchRequest.from_dict(
        {
            "custom_id": custom_id,
            "model": model,
            "messages": [{"role": "user", "content": text or f"hello from {custom_id}"}],
            "params": params,
        }
    )

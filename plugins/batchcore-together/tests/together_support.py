"""What the tests share besides fixtures: a model, request builders, a schema assertion and a
journal standing in for the runner's store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from batchcore import BatchRequest
from batchcore_together._emulation import spec_validator
from batchcore_together.provider import TogetherBatchProvider

MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
MakeProvider = Callable[..., TogetherBatchProvider]


def chat(custom_id: str, text: str | None = None, **params: Any) -> BatchRequest:
    """A small chat request (``max_tokens`` 16 unless *params* say otherwise)."""
    return BatchRequest(
        custom_id=custom_id,
        model=params.pop("model", MODEL),
        messages=[{"role": "user", "content": text or f"Hi {custom_id}"}],
        params={"max_tokens": 16, **params},
    )


def assert_valid(name: str, instance: Any) -> None:
    """Fail with what makes *instance* break schema *name* of the emulator's schemas, strictly
    (no field the schema does not name), as the emulator checks what it receives."""
    problems = spec_validator().problems(name, instance, limit=10)
    assert not problems, f"{name}: " + "; ".join(map(str, problems))


class Journal:
    """A runner's store as submit sees it: what was staged and attempted, and which batches are
    already some other payload's."""

    def __init__(self, known: tuple[str, ...] = ()) -> None:
        self.known = set(known)
        self.staged_with: list[Mapping[str, Any]] = []
        self.attempts: list[datetime] = []

    def staged(self, staged: Mapping[str, Any]) -> None:
        self.staged_with.append(dict(staged))

    def attempting(self, at: datetime) -> None:
        self.attempts.append(at)

    def is_known(self, batch_id: str) -> bool:
        return batch_id in self.known

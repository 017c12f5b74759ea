"""Helpers shared by the tests (on the test path through ``pythonpath`` in pyproject)."""

from __future__ import annotations

from functools import cache
from typing import Any

from batchcore.models import BatchRequest
from batchcore.testing.openapi import SpecValidator
from batchcore_openai._emulation import spec_document, spec_validator

API_KEY = "sk-test-0123456789abcdef"
MODEL = "gpt-4o-mini"
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


# -- the official schemas -------------------------------------------------------------------


def _optional_nullable(node: Any) -> Any:
    """The API sends ``null`` for optional fields it has no value for, where the spec only
    declares the type: let every optional property also be null (required ones stay strict)."""
    if isinstance(node, list):
        return [_optional_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _optional_nullable(value) for key, value in node.items()}
    properties = out.get("properties")
    if isinstance(properties, dict):
        required = set(out.get("required") or ())
        out["properties"] = {
            name: schema if name in required else {"anyOf": [schema, {"type": "null"}]}
            for name, schema in properties.items()
        }
    return out


@cache
def _answers() -> SpecValidator:
    return SpecValidator(_optional_nullable(spec_document()))


def schema_errors(name: str, instance: Any) -> list[str]:
    """Why *instance* (something the emulator answered or a client sent) does not match the
    spec's component schema *name*, strictly (no field the schema does not name); optional
    fields may be null. Empty: it matches."""
    return [str(problem) for problem in _answers().problems(name, instance, limit=20)]


def request_errors(name: str, body: Any) -> list[str]:
    """Why *body* breaks the request schema *name*, exactly as the emulator checks it."""
    return [str(problem) for problem in spec_validator().problems(name, body, limit=20)]

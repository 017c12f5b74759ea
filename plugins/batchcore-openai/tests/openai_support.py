"""Helpers shared by the tests (on the test path through ``pythonpath`` in pyproject)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from batchcore.models import BatchRequest

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

_SCHEMAS = Path(__file__).with_name("openai_schemas.json")
_ROOT = "urn:openai-openapi"


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
def _registry() -> Registry:
    document = _optional_nullable(json.loads(_SCHEMAS.read_text("utf-8")))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(_ROOT, resource)


def schema_errors(name: str, instance: Any) -> list[str]:
    """Why *instance* does not match the spec's component schema *name* (empty: it does)."""
    validator = Draft202012Validator(
        {"$ref": f"{_ROOT}#/components/schemas/{name}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]

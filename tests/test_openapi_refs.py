"""Collecting the schemas an OpenAPI document's chosen schemas need."""

from __future__ import annotations

from typing import Any

import pytest

from batchcore.testing.openapi import referenced_schemas


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Batch": {
        "type": "object",
        "properties": {
            "errors": ref("Errors"),
            "usage": {"anyOf": [ref("Usage"), {"type": "null"}]},
        },
    },
    "Errors": {"type": "array", "items": ref("Error")},
    "Error": {"properties": {"line": {"type": "integer"}, "cause": ref("Error")}},  # a cycle
    "Usage": {"allOf": [ref("Tokens")]},
    "Tokens": {"type": "integer"},
    "File": {"properties": {"batch": ref("Batch")}},
    "Unused": {"type": "string"},
}


def test_the_closure_of_the_roots_in_sorted_order() -> None:
    assert referenced_schemas(SCHEMAS, ["Batch"]) == ["Batch", "Error", "Errors", "Tokens", "Usage"]
    assert referenced_schemas(SCHEMAS, iter(["Usage", "File", "Usage"])) == [
        "Batch",
        "Error",
        "Errors",
        "File",
        "Tokens",
        "Usage",
    ]
    assert referenced_schemas(SCHEMAS, []) == []


def test_only_references_with_the_prefix_are_followed() -> None:
    schemas = {
        "Root": {
            "oneOf": [
                {"$ref": "#/$defs/Kept"},
                {"$ref": "#/components/responses/Elsewhere"},
                {"$ref": "other.yaml#/$defs/Remote"},
            ]
        },
        "Kept": {"type": "string"},
        "Elsewhere": {"type": "string"},
        "Remote": {"type": "string"},
    }
    assert referenced_schemas(schemas, ["Root"], prefix="#/$defs/") == ["Kept", "Root"]
    assert referenced_schemas(schemas, ["Root"]) == ["Root"]


def test_a_missing_schema_is_named_with_what_refers_to_it() -> None:
    schemas = {"Batch": {"properties": {"gone": ref("Gone")}}}
    with pytest.raises(KeyError, match="'Gone' \\(referenced by 'Batch'\\)"):
        referenced_schemas(schemas, ["Batch"])
    with pytest.raises(KeyError, match="'Nope' \\(a root\\)"):
        referenced_schemas(schemas, ["Nope"])

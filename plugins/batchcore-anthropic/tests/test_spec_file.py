"""The part of Anthropic's spec the package ships (``_spec.json``): where it comes from, that it
is complete for what the emulator checks, and how ``extract_spec.py`` makes it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from batchcore.testing.openapi import referenced_schemas
from batchcore_anthropic._emulation import CREATE_SCHEMA, spec_document

EXTRACTOR = Path(__file__).with_name("extract_spec.py")


def _extractor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_spec", EXTRACTOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(node: Any, *, names: bool = False) -> set[str]:
    """Every key of *node*'s objects that is a schema keyword (not a property name)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not names:
                found.add(key)
            found |= _keys(value, names=key == "properties")
    elif isinstance(node, list):
        for item in node:
            found |= _keys(item)
    return found


def test_the_shipped_spec_says_where_it_comes_from() -> None:
    document = spec_document()
    source = document["x-source"]
    assert source["repository"] == "stackql-registry/stackql-provider-anthropic"
    assert source["path"].endswith("anthropic-openapi.yml")
    assert source["commit"] == "d61b7068"
    assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
    assert document["x-extracted-by"] == "tests/extract_spec.py"


def test_the_shipped_spec_holds_what_its_roots_need_and_nothing_else() -> None:
    document = spec_document()
    schemas = document["components"]["schemas"]
    assert CREATE_SCHEMA in document["x-roots"]
    assert referenced_schemas(schemas, document["x-roots"]) == sorted(schemas)
    assert not _keys(schemas) & {"description", "title", "examples", "discriminator"}
    assert not [key for key in _keys(schemas) if key.startswith("x-")]


def test_extract_keeps_the_reachable_schemas_without_annotations() -> None:
    module = _extractor()
    roots = {
        name: {"type": "object", "properties": {}, "description": "a root"} for name in module.ROOTS
    }
    roots["CreateMessageBatchParams"] = {
        "type": "object",
        "title": "Create",
        "properties": {
            "requests": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
            "description": {"type": "string", "description": "a property named description"},
        },
        "x-stainless-skip": True,
    }
    schemas = {
        **roots,
        "Item": {"type": "string", "examples": ["a"], "deprecated": True},
        "Unused": {"type": "integer"},
    }
    raw = json.dumps({"openapi": "3.1.0", "components": {"schemas": schemas}}).encode()
    document = module.extract(raw)
    assert document["x-source"]["sha256"] == hashlib.sha256(raw).hexdigest()
    kept = document["components"]["schemas"]
    assert set(kept) == set(module.ROOTS) | {"Item"}
    assert kept["Item"] == {"type": "string"}
    assert kept["CreateMessageBatchParams"] == {
        "type": "object",
        "properties": {
            "requests": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
            "description": {"type": "string"},
        },
    }

"""The part of Mistral's spec the package ships (``_spec.json``): where it comes from, that it
holds what the emulator checks and nothing else, and how ``extract_spec.py`` makes it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from batchcore.testing.openapi import referenced_schemas
from batchcore_mistral._emulation import REQUEST_SCHEMAS, spec_document

EXTRACTOR = Path(__file__).with_name("extract_spec.py")
#: The spec's sha256, as recorded where the project keeps its copy of the vendor's specs.
SOURCE_SHA256 = "61436a496404607a7c27f7d2d45989bc51bd699d2106690fd6cc76a3a6c9b692"


def _extractor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_spec", EXTRACTOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keywords(node: Any, *, names: bool = False) -> set[str]:
    """Every key of *node*'s objects that is a schema keyword (not a property name)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if not names:
                found.add(key)
            found |= _keywords(value, names=key == "properties")
    elif isinstance(node, list):
        for item in node:
            found |= _keywords(item)
    return found


def test_the_shipped_spec_says_where_it_comes_from() -> None:
    source = spec_document()["x-source"]
    assert source == {
        "repository": "mistralai/platform-docs-public",
        "path": "public/openapi.yaml",
        "commit": "222f4ba9114f84ce9f2d718b9a12fbac1e527f4b",
        "date": "2026-08-13",
        "license": "Apache-2.0",
        "sha256": SOURCE_SHA256,
    }
    assert spec_document()["x-extracted-by"] == "tests/extract_spec.py"


def test_the_shipped_spec_holds_what_its_roots_need_and_nothing_else() -> None:
    document = spec_document()
    schemas = document["components"]["schemas"]
    roots = document["x-roots"]
    assert {"CreateBatchJobRequest", "MultiPartBodyParams", *REQUEST_SCHEMAS.values()} <= set(roots)
    assert referenced_schemas(schemas, roots) == sorted(schemas)
    assert not _keywords(schemas) & {"description", "title", "examples", "discriminator"}
    assert not [key for key in _keywords(schemas) if key.startswith("x-")]
    assert document["x-inline-roots"] == {
        "MultiPartBodyParams": ["/v1/files", "post", "multipart/form-data"]
    }


def test_the_extractor_keeps_reachable_schemas_and_inline_roots() -> None:
    module = _extractor()
    schemas: dict[str, Any] = {
        name: {"type": "object", "title": name, "properties": {}} for name in module.ROOTS
    }
    schemas["CreateBatchJobRequest"] = {
        "type": "object",
        "title": "Create",
        "properties": {
            "endpoint": {"$ref": "#/components/schemas/ApiEndpoint", "examples": ["x"]},
            "title": {"type": "string", "description": "a property named title"},
        },
        "x-speakeasy-name-override": "create",
    }
    schemas["ApiEndpoint"] = {"type": "string", "enum": ["/v1/embeddings"], "title": "E"}
    schemas["Unused"] = {"type": "integer"}
    form = {
        "type": "object",
        "title": "MultiPartBodyParams",
        "properties": {"file": {"$ref": "#/components/schemas/File"}},
    }
    schemas["File"] = {"type": "string", "format": "binary", "description": "bytes"}
    document = {
        "paths": {
            "/v1/files": {
                "post": {"requestBody": {"content": {"multipart/form-data": {"schema": form}}}}
            }
        },
        "components": {"schemas": schemas},
    }
    raw = json.dumps(document).encode()
    extracted = module.extract_document(document, raw)
    assert extracted["x-source"]["sha256"] == hashlib.sha256(raw).hexdigest()
    kept = extracted["components"]["schemas"]
    assert set(kept) == {*module.ROOTS, "ApiEndpoint", "MultiPartBodyParams", "File"}
    assert kept["CreateBatchJobRequest"] == {
        "type": "object",
        "properties": {
            "endpoint": {"$ref": "#/components/schemas/ApiEndpoint"},
            "title": {"type": "string"},
        },
    }
    assert kept["MultiPartBodyParams"] == {
        "type": "object",
        "properties": {"file": {"$ref": "#/components/schemas/File"}},
    }

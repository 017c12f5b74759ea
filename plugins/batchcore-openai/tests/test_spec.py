"""The part of OpenAI's spec shipped in the package: where it comes from, that it is whole, and
what the emulator's shortcut relies on."""

from __future__ import annotations

import json
import re
from typing import Any

from extract_spec import ROOTS, SOURCE

from batchcore.testing.openapi import referenced_schemas
from batchcore_openai._emulation import REQUEST_SCHEMAS, spec_document


def test_the_spec_says_where_it_comes_from() -> None:
    document = spec_document()
    source = document["x-source"]
    assert source == {**SOURCE, "sha256": source["sha256"]}
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
    assert document["x-extracted-by"] == "tests/extract_spec.py"
    assert document["x-roots"] == list(ROOTS)


def test_the_spec_holds_every_schema_its_roots_need_and_no_other() -> None:
    schemas = spec_document()["components"]["schemas"]
    assert referenced_schemas(schemas, ROOTS) == sorted(schemas)
    assert set(REQUEST_SCHEMAS.values()) <= set(ROOTS)
    assert {"CreateBatchRequest", "CreateFileRequest"} <= set(ROOTS)


def test_the_spec_keeps_no_annotations() -> None:
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                named = where.endswith(".properties")  # property names are data
                if not named and (key in ("description", "title", "example") or key[:2] == "x-"):
                    found.append(f"{where}.{key}")
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(spec_document()["components"], "components")
    assert found == []


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec_document()["components"]["schemas"][name]
    return schema


def _ref(node: dict[str, Any]) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1]


def test_chat_message_text_is_an_unconstrained_string() -> None:
    """The emulator's body checker gives bodies that differ only in their messages' text one
    verdict; that is right only while the spec puts no constraint on that text."""
    plain = {"type": "string"}
    roles = [_ref(branch) for branch in _schema("ChatCompletionRequestMessage")["anyOf"]]
    assert len(roles) == 6
    for role in roles:
        content = _schema(role)["properties"]["content"]
        branches = content.get("anyOf") or [content]
        strings = [b for b in branches if b.get("type") == "string"]
        assert strings in ([plain], []), role
    text = _schema("ChatCompletionRequestMessageContentPartText")["properties"]["text"]
    assert text == plain


def test_unions_are_read_as_any_of() -> None:
    """OpenAI's unions overlap; the API takes a value any branch accepts."""
    assert '"oneOf"' not in json.dumps(spec_document())

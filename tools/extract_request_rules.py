"""Regenerate ``batchcore/_request_rules.json`` from OpenAI's published OpenAPI document.

    python tools/extract_request_rules.py openai-openapi.yaml > batchcore/_request_rules.json

The unified request is OpenAI's request format, so the rules every provider checks before the
network (which parameters exist per endpoint, their JSON types, ranges and enums; which keys each
message role and each content part takes) are read from OpenAI's spec rather than written by
hand. Only what a fast check needs is kept. Needs PyYAML.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import yaml

ENDPOINTS = {
    "/v1/chat/completions": "CreateChatCompletionRequest",
    "/v1/embeddings": "CreateEmbeddingRequest",
    "/v1/responses": "CreateResponse",
    "/v1/completions": "CreateCompletionRequest",
    "/v1/moderations": "CreateModerationRequest",
}
MESSAGE_UNION = "ChatCompletionRequestMessage"
SOURCE = {
    "repository": "openai/openai-openapi",
    "path": "openapi.yaml",
    "commit": "f85dbe223d40e1a31cba812ab2d755c7e98a92a3",
    "license": "MIT",
}


class Spec:
    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def deref(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            node = self.schemas[node["$ref"].rsplit("/", 1)[-1]]
            seen += 1
            if seen > 50:
                raise ValueError("reference loop")
        return node

    def properties(self, node: Any) -> dict[str, Any]:
        node = self.deref(node)
        out: dict[str, Any] = {}
        for part in node.get("allOf", []):
            out.update(self.properties(part))
        out.update(node.get("properties", {}))
        return out

    def required(self, node: Any) -> set[str]:
        node = self.deref(node)
        out = set(node.get("required", []))
        for part in node.get("allOf", []):
            out |= self.required(part)
        return out

    def variants(self, node: Any) -> list[Any]:
        """The alternatives of a union, flattened (a plain schema is its own only one)."""
        node = self.deref(node)
        for key in ("oneOf", "anyOf"):
            if key in node:
                found: list[Any] = []
                for option in node[key]:
                    found.extend(self.variants(option))
                return found
        if "allOf" in node and not node.get("properties") and len(node["allOf"]) == 1:
            return self.variants(node["allOf"][0])
        return [node]

    def rule(self, node: Any) -> dict[str, Any]:
        """Types (JSON names), nullability, range, the allowed values of its strings (when
        every string variant lists them) and the ``type`` tags of its object variants."""
        node = self.deref(node)
        types: set[str] = set()
        strings: set[Any] | None = set()
        kinds: set[str] = set()
        rule: dict[str, Any] = {}
        nullable = bool(node.get("nullable"))
        for variant in self.variants(node):
            nullable = nullable or bool(variant.get("nullable"))
            kind = variant.get("type")
            found = set(kind) if isinstance(kind, list) else {kind} if kind else set()
            if not found and (variant.get("properties") or variant.get("allOf")):
                found = {"object"}
            if not found and "enum" in variant:
                found = {"string"}
            types |= found
            if "string" in found and strings is not None:
                if "enum" in variant:
                    strings.update(v for v in variant["enum"] if v is not None)
                else:
                    strings = None
            if "object" in found:
                tag = self.deref(self.properties(variant).get("type") or {})
                if isinstance(tag, dict) and tag.get("enum"):
                    kinds.update(tag["enum"])
            for bound in ("minimum", "maximum", "minItems", "maxItems"):
                if bound in variant:
                    rule[bound] = variant[bound]
        if nullable:
            types.add("null")
        rule["types"] = sorted(types)
        if strings:
            rule["enum"] = sorted(strings, key=str)
        if kinds:
            rule["kinds"] = sorted(kinds)
        if node.get("deprecated"):
            rule["deprecated"] = True
        return rule


def message_rules(spec: Spec) -> dict[str, Any]:
    roles: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for variant in spec.variants(spec.schemas[MESSAGE_UNION]):
        properties = spec.properties(variant)
        role = spec.deref(properties["role"])["enum"][0]
        content = spec.rule(properties.get("content", {})) if "content" in properties else {}
        content_parts: set[str] = set()
        for option in spec.variants(properties.get("content", {})):
            if option.get("type") == "array":
                for part in spec.variants(option["items"]):
                    part_props = spec.properties(part)
                    kind = spec.deref(part_props["type"])["enum"][0]
                    content_parts.add(kind)
                    parts[kind] = {
                        "keys": sorted(part_props),
                        "required": sorted(spec.required(part)),
                    }
        roles[role] = {
            "keys": sorted(properties),
            "required": sorted(spec.required(variant)),
            "content": {"types": content.get("types", []), "parts": sorted(content_parts)},
        }
    return {"roles": roles, "parts": parts}


def extract(raw: bytes) -> dict[str, Any]:
    spec = Spec(yaml.safe_load(raw)["components"]["schemas"])
    endpoints = {}
    for endpoint, name in ENDPOINTS.items():
        properties = spec.properties(spec.schemas[name])
        endpoints[endpoint] = {
            "schema": name,
            "required": sorted(spec.required(spec.schemas[name])),
            "params": {key: spec.rule(value) for key, value in sorted(properties.items())},
        }
    return {
        "_provenance": {
            **SOURCE,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "note": "derived by tools/extract_request_rules.py; do not edit by hand",
        },
        "endpoints": endpoints,
        "messages": message_rules(spec),
    }


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as handle:
        document = extract(handle.read())
    json.dump(document, sys.stdout, indent=1, sort_keys=False, default=str)
    sys.stdout.write("\n")

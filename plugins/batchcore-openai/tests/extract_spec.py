"""Regenerate ``batchcore_openai/_spec.json`` from OpenAI's published OpenAPI document.

    python tests/extract_spec.py path/to/openapi.yaml > batchcore_openai/_spec.json

The source is ``openapi.yaml`` of ``openai/openai-openapi`` (MIT) at the commit in
:data:`SOURCE`; its sha256 is recorded in the output's ``x-source``. The output keeps, unchanged,
the component schemas reachable from :data:`ROOTS` (the request bodies the emulator checks, and
the objects it answers with), less annotations (descriptions, titles, examples and ``x-*``
extensions), under ``components.schemas`` so that ``$ref``\\ s still resolve. One change of
meaning: every ``oneOf`` becomes an ``anyOf``. OpenAI's unions overlap (an input item
``{"type": "message", "role": "user", "content": [...]}`` is both an ``Item`` and an
``EasyInputMessage``), JSON Schema's ``oneOf`` refuses a value more than one branch accepts, and
the API takes it: a body is valid when any branch accepts it. The emulator checks
every request body it receives against it with :class:`batchcore.testing.openapi.SpecValidator`.
Needs PyYAML.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from batchcore.testing.openapi import referenced_schemas

#: The request bodies the emulator validates, then the objects it answers with.
ROOTS = (
    "CreateBatchRequest",
    "CreateFileRequest",
    "CreateChatCompletionRequest",
    "CreateEmbeddingRequest",
    "CreateResponse",
    "CreateCompletionRequest",
    "CreateModerationRequest",
    "Batch",
    "ListBatchesResponse",
    "OpenAIFile",
    "ListFilesResponse",
    "DeleteFileResponse",
    "ErrorResponse",
    "CreateChatCompletionResponse",
    "CreateEmbeddingResponse",
    "Response",
    "CreateCompletionResponse",
    "CreateModerationResponse",
)
SOURCE = {
    "repository": "openai/openai-openapi",
    "path": "openapi.yaml",
    "commit": "f85dbe223d40e1a31cba812ab2d755c7e98a92a3",
    "date": "2026-08-21",
    "license": "MIT",
}
_ANNOTATIONS = frozenset({"description", "title", "example", "examples"})
#: Keys whose values map names to schemas: a property may be called "description".
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key in _NAME_MAPS and isinstance(value, dict):
                out[key] = {name: _clean(schema) for name, schema in value.items()}
            elif key == "oneOf":
                out["anyOf"] = _clean(value)
            else:
                out[key] = _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def extract(raw: bytes) -> dict[str, Any]:
    """The ``_spec.json`` document made from the bytes of the spec."""
    import yaml  # only to regenerate: the tests import this module without PyYAML

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = yaml.load(raw, Loader=loader)["components"]["schemas"]
    wanted = referenced_schemas(schemas, ROOTS)
    return {
        "x-source": {**SOURCE, "sha256": hashlib.sha256(raw).hexdigest()},
        "x-extracted-by": "tests/extract_spec.py",
        "x-roots": list(ROOTS),
        "components": {"schemas": {name: _clean(schemas[name]) for name in wanted}},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as source:
        document = extract(source.read())
    json.dump(document, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

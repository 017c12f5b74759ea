"""Regenerate ``anthropic_schemas.json`` from Anthropic's published OpenAPI document.

    python extract_anthropic_schemas.py path/to/anthropic-openapi.yml > anthropic_schemas.json

The source is the copy of Anthropic's spec vendored in ``stackql-registry/
stackql-provider-anthropic`` (JSON text despite the ``.yml`` name). Keeps the component schemas
reachable from :data:`ROOTS`, drops annotations (descriptions, titles, examples, defaults,
``deprecated``), ``x-*`` extensions and OpenAPI discriminators (``oneOf`` decides alone), and
rewrites every ``$ref`` into this file's ``$defs``, so the output is one self-contained JSON
Schema (2020-12) document.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from batchcore.testing.openapi import referenced_schemas

ROOTS = (
    "CreateMessageBatchParams",
    "MessageBatchIndividualRequestParams",
    "CreateMessageParams",
    "MessageBatch",
    "MessageBatchIndividualResponse",
    "ListResponse_MessageBatch_",
    "DeleteMessageBatchResponse",
    "ErrorResponse",
)
SOURCE = {
    "repository": "stackql-registry/stackql-provider-anthropic",
    "path": "stackql_anthropic_provider/provider-dev/downloaded/anthropic-openapi.yml",
    "commit": "d61b7068",
    "date": "2026-07-08",
    "note": "a vendored copy of Anthropic's published OpenAPI spec (OpenAPI 3.1)",
}
_ANNOTATIONS = frozenset(
    {"description", "examples", "example", "title", "discriminator", "deprecated", "default"}
)
_NAME_MAPS = frozenset({"properties", "$defs", "patternProperties", "dependentSchemas"})
_PREFIX = "#/components/schemas/"


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS or key.startswith("x-"):
                continue
            if key == "$ref":
                out[key] = "#/$defs/" + value.removeprefix(_PREFIX)
            elif key in _NAME_MAPS and isinstance(value, dict):
                # Keys here are property names (a property may be called "description").
                out[key] = {name: _clean(schema) for name, schema in value.items()}
            else:
                out[key] = _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def extract(raw: bytes) -> dict[str, Any]:
    schemas = json.loads(raw)["components"]["schemas"]
    wanted = referenced_schemas(schemas, ROOTS, _PREFIX)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": (
            "Extracted by extract_anthropic_schemas.py from Anthropic's published OpenAPI "
            "spec; see x-source. Annotations, x-* extensions and discriminators removed; "
            "$refs point into $defs."
        ),
        "x-source": {**SOURCE, "sha256": hashlib.sha256(raw).hexdigest()},
        "x-roots": list(ROOTS),
        "$defs": {name: _clean(schemas[name]) for name in wanted},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as source:
        document = extract(source.read())
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Regenerate ``batchcore_anthropic/_spec.json`` from Anthropic's published OpenAPI document.

    python tests/extract_spec.py path/to/anthropic-openapi.yml > batchcore_anthropic/_spec.json

The source is the copy of Anthropic's spec vendored in ``stackql-registry/
stackql-provider-anthropic`` (JSON text despite the ``.yml`` name). The output keeps, unchanged,
the component schemas reachable from :data:`ROOTS` (the Message Batches request and answer
shapes), less annotations (descriptions, titles, examples, deprecation notes, ``x-*``
extensions) and OpenAPI discriminators (``oneOf`` decides alone), under ``components.schemas``
so that references still resolve, with the source and its sha256 in ``x-source``. The emulator
checks every request body against it with :class:`batchcore.testing.openapi.SpecValidator`.
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
    {"description", "examples", "example", "title", "discriminator", "deprecated"}
)
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
            else:
                out[key] = _clean(value)
        return out
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def extract(raw: bytes) -> dict[str, Any]:
    """The ``_spec.json`` document made from the bytes of the spec."""
    schemas = json.loads(raw)["components"]["schemas"]
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

"""Regenerate ``batchcore_mistral/_spec.json`` from Mistral's published OpenAPI document.

    python tests/extract_spec.py path/to/mistral-openapi.yaml > batchcore_mistral/_spec.json

The source is ``public/openapi.yaml`` of ``mistralai/platform-docs-public`` (Apache-2.0) at the
commit in :data:`SOURCE`; the output records it with the source's sha256 in ``x-source``.

What the output keeps: the component schemas reachable from :data:`ROOTS` (the bodies the
emulator receives, then the objects it answers with), under ``components.schemas`` so that
``$ref``\\ s resolve, without annotations (descriptions, titles, examples, ``x-*`` extensions)
and without OpenAPI discriminators (each branch names its own ``type`` or ``role`` constant, so
the union decides alone). One schema is not a component in the source: the multipart form of
``POST /v1/files``, declared inline; it is kept under its own ``title``,
``MultiPartBodyParams`` (:data:`INLINE_ROOTS` says where it comes from). Needs PyYAML.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from typing import Any

from batchcore.testing.openapi import referenced_schemas

#: The component schemas the emulator checks what it receives against, then those it answers
#: with (its answers are checked against them in the tests).
ROOTS = (
    "CreateBatchJobRequest",
    "ChatCompletionRequest",
    "EmbeddingRequest",
    "BatchJob",
    "ListBatchJobsResponse",
    "CreateFileResponse",
    "GetFileResponse",
    "HTTPValidationError",
    "AssistantMessage",
    "UsageInfo",
    "EmbeddingResponse",
)
#: Schemas declared inline in the source's paths, kept under their title:
#: name -> (path, method, media type).
INLINE_ROOTS = {"MultiPartBodyParams": ("/v1/files", "post", "multipart/form-data")}
SOURCE = {
    "repository": "mistralai/platform-docs-public",
    "path": "public/openapi.yaml",
    "commit": "222f4ba9114f84ce9f2d718b9a12fbac1e527f4b",
    "date": "2026-08-13",
    "license": "Apache-2.0",
}
_ANNOTATIONS = frozenset({"description", "title", "example", "examples", "discriminator"})
#: Keys whose values map names to schemas: a property may well be called "title".
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


def _plain(value: Any) -> Any:
    # YAML reads an unquoted date as a date; JSON keeps it as the text it was.
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def extract_document(document: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """The ``_spec.json`` document made from the parsed spec *document* (of bytes *raw*)."""
    schemas = dict(document["components"]["schemas"])
    for name, (path, method, media) in INLINE_ROOTS.items():
        inline = document["paths"][path][method]["requestBody"]["content"][media]["schema"]
        if name in schemas:
            raise KeyError(f"{name} is already a component: keep it as one")
        schemas[name] = inline
    roots = (*ROOTS, *INLINE_ROOTS)
    wanted = referenced_schemas(schemas, roots)
    kept = {name: _clean(schemas[name]) for name in wanted}
    return {
        "x-source": {**SOURCE, "sha256": hashlib.sha256(raw).hexdigest()},
        "x-extracted-by": "tests/extract_spec.py",
        "x-roots": list(roots),
        "x-inline-roots": {name: list(where) for name, where in INLINE_ROOTS.items()},
        "components": {"schemas": json.loads(json.dumps(kept, default=_plain))},
    }


def extract(raw: bytes) -> dict[str, Any]:
    """The ``_spec.json`` document made from the bytes of the spec (YAML or JSON)."""
    import yaml  # only to regenerate: the tests import this module without PyYAML

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return extract_document(yaml.load(raw, Loader=loader), raw)


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

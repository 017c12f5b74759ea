"""Regenerate ``openai_schemas.json`` from OpenAI's published OpenAPI document.

    python extract_openai_schemas.py path/to/openapi.yaml > openai_schemas.json

Copies the component schemas the emulator's requests and responses are checked against, with
every schema they reference (``$ref``s keep their ``#/components/schemas/...`` form, so they
resolve inside the output document). Needs PyYAML and batchcore.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import yaml

from batchcore.testing.openapi import referenced_schemas

ROOTS = (
    "Batch",
    "CreateBatchRequest",
    "ListBatchesResponse",
    "OpenAIFile",
    "CreateFileRequest",
    "ListFilesResponse",
    "DeleteFileResponse",
    "ErrorResponse",
    "CreateChatCompletionResponse",
    "CreateCompletionResponse",
    "CreateEmbeddingResponse",
)
SOURCE = {
    "repository": "openai/openai-openapi",
    "path": "openapi.yaml",
    "commit": "f85dbe223d40e1a31cba812ab2d755c7e98a92a3",
    "license": "MIT",
}


def extract(raw: bytes) -> dict[str, Any]:
    schemas = yaml.safe_load(raw)["components"]["schemas"]
    wanted = referenced_schemas(schemas, ROOTS)
    return {
        "_provenance": {
            **SOURCE,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "extracted": sorted(ROOTS),
            "note": "component schemas copied unchanged, with the schemas they reference",
        },
        "components": {"schemas": {name: schemas[name] for name in wanted}},
    }


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as handle:
        document = extract(handle.read())
    json.dump(document, sys.stdout, indent=1, sort_keys=False, default=str)
    sys.stdout.write("\n")

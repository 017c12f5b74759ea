"""Reading a vendor's OpenAPI document, and checking what an emulator receives against it.

* :func:`referenced_schemas` - the schemas a set of roots needs, to copy the part of a vendor's
  spec an emulator checks against into its package.
* :class:`SpecValidator` - the one validator every bundled emulator uses on every request body
  it receives. OpenAPI 3.0 schemas become JSON Schema (``nullable``, ``allOf`` of objects merged),
  and, as the vendors' APIs do (and as the official SDKs' request types made strict would),
  an object refuses properties its schema does not name: a request an emulator accepts is one
  the vendor would accept.

Importing this module imports nothing heavy; :class:`SpecValidator` imports ``jsonschema`` when
it is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["SpecProblem", "SpecValidator", "referenced_schemas"]

COMPONENT_SCHEMAS = "#/components/schemas/"
_NOT_JSON_SCHEMA = frozenset(
    {
        "discriminator",
        "nullable",
        "example",
        "examples",
        "xml",
        "externalDocs",
        "readOnly",
        "writeOnly",
        "deprecated",
        "x-oaiMeta",
        "x-stainless-const",
        "x-oaiTypeLabel",
        "x-oaiExpandable",
        "x-go-type",
        "x-speakeasy-name-override",
        "x-speakeasy-unknown-values",
    }
)


def referenced_schemas(
    schemas: Mapping[str, Any], roots: Iterable[str], prefix: str = COMPONENT_SCHEMAS
) -> list[str]:
    """The names of *roots* and of every schema they reference, directly or not, sorted.

    *schemas* maps names to schemas (an OpenAPI document's ``components.schemas``); a
    reference is a ``$ref`` starting with *prefix*, followed by the name. References
    elsewhere (other documents, other sections) are not followed. A root or reference naming
    no schema raises :class:`KeyError`.
    """
    wanted: set[str] = set()
    pending: list[tuple[str, str | None]] = [(name, None) for name in roots]
    while pending:
        name, referrer = pending.pop()
        if name in wanted:
            continue
        if name not in schemas:
            where = f"referenced by {referrer!r}" if referrer else "a root"
            raise KeyError(f"no schema {name!r} ({where}) in the document")
        wanted.add(name)
        pending.extend((found, name) for found in _references(schemas[name], prefix))
    return sorted(wanted)


def _references(node: Any, prefix: str) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                found.add(ref[len(prefix) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


@attrs.frozen
class SpecProblem:
    """One reason a body breaks the spec: where (``messages.0.content``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(body)'}: {self.message}"


class SpecValidator:
    """Validates JSON bodies against named schemas of an OpenAPI 3.0 document (or its
    ``components.schemas`` part), strictly: unknown properties are refused.

    ``validator.problems("CreateChatCompletionRequest", body)`` lists what is wrong (empty
    when nothing is); ``strict=False`` accepts unknown properties, as the schema literally does.
    """

    def __init__(self, document: Mapping[str, Any], *, strict: bool = True) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        schemas = document.get("components", {}).get("schemas", document)
        self._source: Mapping[str, Any] = schemas
        self._strict = strict
        converted = {name: self._convert(schema) for name, schema in schemas.items()}
        root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": converted}
        self._registry = Registry().with_resource(
            "urn:spec", Resource.from_contents(root, default_specification=DRAFT202012)
        )
        self._cls = Draft202012Validator
        self._validators: dict[str, Any] = {}

    def problems(self, schema: str, body: Any, *, limit: int = 5) -> list[SpecProblem]:
        """What makes *body* break schema *schema* (at most *limit* problems)."""
        validator = self._validators.get(schema)
        if validator is None:
            if schema not in self._source:
                raise KeyError(f"no schema {schema!r} in the document")
            validator = self._cls({"$ref": f"urn:spec#/$defs/{schema}"}, registry=self._registry)
            self._validators[schema] = validator
        found = []
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            best = _deepest(error)
            path = ".".join(str(p) for p in best.absolute_path)
            found.append(SpecProblem(path=path, message=best.message[:300]))
            if len(found) >= limit:
                break
        return found

    # -- OpenAPI 3.0 -> JSON Schema ----------------------------------------------------------

    def _deref(self, node: Any) -> Any:
        for _ in range(64):
            if not (isinstance(node, Mapping) and isinstance(node.get("$ref"), str)):
                return node
            node = self._source[node["$ref"].rsplit("/", 1)[-1]]
        raise ValueError("reference loop")

    def _object_parts(self, node: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
        """The object schemas an ``allOf`` is made of, flattened; None when it mixes in
        anything that is not a plain object schema (then it is kept as an allOf)."""
        parts: list[Mapping[str, Any]] = []
        for part in node["allOf"]:
            part = self._deref(part)
            if "allOf" in part:
                nested = self._object_parts(part)
                if nested is None:
                    return None
                parts.extend(nested)
                extra = {k: v for k, v in part.items() if k != "allOf"}
                if extra.get("properties") or extra.get("required"):
                    parts.append(extra)
            elif any(k in part for k in ("oneOf", "anyOf", "not")) or (
                part.get("type") not in (None, "object")
            ):
                return None
            else:
                parts.append(part)
        return parts

    def _convert(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._convert(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        if isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            target = ref.replace(COMPONENT_SCHEMAS, "urn:spec#/$defs/")
            return {"$ref": target}
        if "allOf" in node:
            parts = self._object_parts(node)
            if parts is not None:
                merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
                for part in parts:
                    merged["properties"].update(part.get("properties", {}))
                    merged["required"].extend(part.get("required", []))
                    if "additionalProperties" in part:
                        merged["additionalProperties"] = part["additionalProperties"]
                rest = {k: v for k, v in node.items() if k not in ("allOf", "properties")}
                merged.update({k: v for k, v in rest.items() if k not in merged})
                if node.get("nullable"):
                    merged["nullable"] = True
                node = merged
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _NOT_JSON_SCHEMA or key.startswith("x-"):
                continue
            if key == "oneOf":
                # Vendors' unions overlap (an input item that is both a message and an
                # "easy input message"): strict JSON Schema "exactly one" refuses what the
                # vendor takes. What the vendor means is "one of these shapes": anyOf.
                key = "anyOf"
            if key in ("properties", "patternProperties", "$defs", "definitions"):
                out[key] = {name: self._convert(schema) for name, schema in value.items()}
            else:
                out[key] = self._convert(value)
        if "required" in out and not out["required"]:
            del out["required"]
        if (
            self._strict
            and "properties" in out
            and "additionalProperties" not in out
            and "patternProperties" not in out
        ):
            out["additionalProperties"] = False
        if node.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out


def _deepest(error: Any) -> Any:
    """For a union that failed, the alternative that got furthest (its message says most)."""
    best = error
    while best.context:
        # A wrong discriminator ("role" is not "developer") only says which alternative this
        # was not; prefer the error deepest inside the alternative that matched it.
        best = max(
            best.context,
            key=lambda e: (
                # "not null" only says the value was not the null a nullable field allows
                not (e.validator == "type" and e.validator_value == "null"),
                e.validator not in ("enum", "const"),
                len(e.absolute_path),
            ),
        )
    return best

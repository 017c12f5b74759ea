"""Reading OpenAPI documents, to copy the part of a vendor's spec that tests check against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["referenced_schemas"]

COMPONENT_SCHEMAS = "#/components/schemas/"


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

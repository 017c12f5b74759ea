"""Structured output: ask for JSON shaped like a pydantic model, read the answers back as models.

::

    from pydantic import BaseModel
    from batchcore import BatchRequest
    from batchcore.jobs import BatchRunner
    from batchcore.structured import parse_results, response_format

    class City(BaseModel):
        name: str
        country: str
        population: int | None

    fmt = response_format(City)      # once; every request shares it
    requests = [
        BatchRequest(custom_id=f"q{i}", model="gpt-4o-mini",
                     messages=[{"role": "user", "content": f"Describe {town}."}],
                     params={"response_format": fmt, "max_tokens": 300})
        for i, town in enumerate(["Lyon", "Porto"])
    ]
    runner = BatchRunner()
    job = runner.run("openai", requests)
    for result, city in parse_results(runner, job.id, City):
        if isinstance(city, StructuredOutputError):
            print(result.custom_id, "->", city)   # failed, refused, cut short, or off-schema
        else:
            print(city.name, city.population)

:func:`response_format` gives the unified request's ``response_format`` (OpenAI's spelling:
``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``); every provider
converts it like any other parameter (Anthropic: ``output_config.format``; Gemini:
``responseSchema``) and refuses, before anything is sent, a schema its vendor cannot express.
The schema is made strict the way OpenAI's structured outputs require (every object closed with
``additionalProperties: false``, every property required, ``$defs`` kept, ``$ref`` with sibling
keywords inlined, ``oneOf`` written as ``anyOf``) when the model allows it; a model that cannot
be strict (a free-form ``dict`` or ``Any`` field, a tuple) gets ``strict: false``, or raises
:class:`StrictSchemaError` with ``strict=True``.

Parsing happens on read (:meth:`BatchResult.parse <batchcore.models.BatchResult.parse>`,
:func:`parse_results`): models are code and are never stored, so results are parsed the same
way in the process that submitted the job and in another one that resumed it. Every way an
answer can fail to be a model instance raises one error type, :class:`StructuredOutputError`.

pydantic is an optional dependency (``pip install 'batchcore[pydantic]'``), imported only when
a model is converted or parsed; :func:`strict_json_schema` works on plain JSON schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from batchcore.errors import BatchcoreError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from batchcore.jobs.runner import BatchRunner
    from batchcore.models import BatchResult

__all__ = [
    "StrictSchemaError",
    "StructuredOutputError",
    "parse",
    "parse_each",
    "parse_results",
    "response_format",
    "strict_json_schema",
]

T = TypeVar("T")

#: OpenAI's rule for a response format's name (the strictest vendor's).
_NAME = re.compile(r"[^a-zA-Z0-9_-]")
#: Keywords OpenAI's strict mode has no room for: a schema using them cannot be strict.
_NOT_STRICT = {
    "not": "'not'",
    "if": "conditional schemas (if/then/else)",
    "then": "conditional schemas (if/then/else)",
    "else": "conditional schemas (if/then/else)",
    "patternProperties": "patternProperties (a mapping with free-form keys)",
    "dependentRequired": "dependentRequired",
    "dependentSchemas": "dependentSchemas",
    "unevaluatedProperties": "unevaluatedProperties",
    "prefixItems": "a tuple (prefixItems)",
}
#: Keywords that say what a value is; a schema with none of them accepts anything.
_TYPED = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "properties", "items")


class StructuredOutputError(BatchcoreError, ValueError):
    """A result that is not an instance of the model it was parsed with.

    ``reason`` says why: ``not_succeeded`` (the request failed, expired or was cancelled:
    there is no answer), ``refused`` (the model declined; ``refusal`` holds its words),
    ``no_text`` (the answer has no text, e.g. a tool call), ``invalid_json`` (the text is not
    JSON, often an answer cut at ``max_tokens``), ``invalid`` (JSON that breaks the model).
    ``custom_id``, ``text`` (the raw answer, or None) and ``errors`` (pydantic's validation
    errors, as ``ValidationError.errors()`` gives them) say the rest; ``result`` is the result.
    """

    def __init__(
        self,
        message: str,
        *,
        result: BatchResult,
        reason: str,
        model: str,
        errors: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.result = result
        self.custom_id = result.custom_id
        self.reason = reason
        self.model = model
        self.text = result.text
        self.refusal = result.refusal
        self.errors: tuple[Mapping[str, Any], ...] = tuple(errors)


class StrictSchemaError(BatchcoreError, ValueError):
    """A schema asked to be strict (``strict=True``) uses what strict mode cannot express;
    ``problems`` names each place."""

    def __init__(self, message: str, *, problems: Iterable[str]) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


# -- schemas --------------------------------------------------------------------------------


def strict_json_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """*schema* made strict the way OpenAI's structured outputs require, and what keeps it
    from being strict (empty when nothing does).

    A copy is returned (*schema* is not changed): every object gets ``additionalProperties:
    false`` and all its properties ``required``; a ``$ref`` with sibling keywords (a field's
    description) is inlined, a recursive one keeps only the reference; ``oneOf`` becomes
    ``anyOf`` (pydantic writes it for discriminated unions, whose branches cannot overlap) and
    the OpenAPI-only ``discriminator`` goes; a one-schema ``allOf`` is merged; ``default:
    null`` and ``uniqueItems`` (a ``set``, which pydantic rebuilds on parsing) are dropped.
    Problems: free-form objects (``additionalProperties`` other than false), schemas that
    accept anything, tuples, ``not``, conditionals, several-schema ``allOf``, and a root that
    is not an object.
    """
    copy = orjson.loads(orjson.dumps(schema))
    if not isinstance(copy, dict):
        raise TypeError(f"a JSON schema object is needed, not {type(schema).__name__}")
    walker = _Strict(copy)
    ref = copy.get("$ref")
    if isinstance(ref, str):
        # pydantic writes a recursive model as a reference to its own definition: the root
        # must be the object itself.
        copy = {**walker.resolve(ref), **{k: v for k, v in copy.items() if k != "$ref"}}
        walker.root = copy
    result = walker.node(copy, "", ())
    if not isinstance(result, dict) or result.get("type") != "object":
        walker.problems.append("the root must be an object (a model with fields)")
    return result, tuple(dict.fromkeys(walker.problems))


class _Strict:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.problems: list[str] = []

    def resolve(self, ref: str) -> Any:
        node: Any = self.root
        if not ref.startswith("#/"):
            raise ValueError(f"cannot follow the reference {ref!r} (only local '#/...' ones)")
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or token not in node:
                raise ValueError(f"the reference {ref!r} points at nothing")
            node = node[token]
        return node

    def node(self, node: Any, path: str, inlining: tuple[str, ...]) -> Any:
        where = path or "(root)"
        if not isinstance(node, dict):
            self.problems.append(f"{where}: a schema of {node!r} (not an object)")
            return node
        for key in ("$defs", "definitions"):
            defs = node.get(key)
            if isinstance(defs, dict):
                node[key] = {
                    name: self.node(item, f"{key}/{name}", inlining) for name, item in defs.items()
                }
        ref = node.get("$ref")
        if isinstance(ref, str) and set(node) - {"$ref", "$defs", "definitions"}:
            if ref in inlining:
                # A recursive reference cannot be written out: keep it, without annotations.
                return {"$ref": ref}
            target = self.resolve(ref)
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.node(merged, path, (*inlining, ref))
        if "oneOf" in node:
            if "anyOf" in node:
                self.problems.append(f"{where}: oneOf beside anyOf")
            node.setdefault("anyOf", node.pop("oneOf"))
            node.pop("discriminator", None)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            del node["allOf"]
            return self.node({**all_of[0], **node}, path, inlining)
        if all_of is not None:
            self.problems.append(f"{where}: allOf of several schemas")
        for key, why in _NOT_STRICT.items():
            if key in node:
                self.problems.append(f"{where}: {why}")
        if node.get("default", 0) is None:
            del node["default"]
        node.pop("uniqueItems", None)
        if not any(key in node for key in _TYPED):
            self.problems.append(f"{where}: accepts any value (a field typed Any?)")
        self.object_part(node, path, where, inlining)
        items = node.get("items")
        if isinstance(items, dict):
            node["items"] = self.node(items, f"{path}/items", inlining)
        elif items is not None:
            self.problems.append(f"{where}: a tuple (items as a list)")
        for key in ("anyOf", "allOf"):
            branches = node.get(key)
            if isinstance(branches, list):
                node[key] = [
                    self.node(branch, f"{path}/{key}/{i}", inlining)
                    for i, branch in enumerate(branches)
                ]
        return node

    def object_part(
        self, node: dict[str, Any], path: str, where: str, inlining: tuple[str, ...]
    ) -> None:
        kind = node.get("type")
        is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
        properties = node.get("properties")
        if not is_object and not isinstance(properties, dict):
            return
        extra = node.setdefault("additionalProperties", False)
        if extra is not False:
            self.problems.append(
                f"{where}: an object with free-form keys (a dict field, or extra='allow')"
            )
            if isinstance(extra, dict):
                node["additionalProperties"] = self.node(
                    extra, f"{path}/additionalProperties", inlining
                )
        if isinstance(properties, dict):
            node["properties"] = {
                name: self.node(item, f"{path}/{name}", inlining)
                for name, item in properties.items()
            }
            node["required"] = list(properties)


def response_format(
    model: Any,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> dict[str, Any]:
    """The unified request's ``response_format`` asking for JSON shaped like *model*.

    *model* is a pydantic model class (or any type pydantic can validate: a dataclass, a
    TypedDict), or a JSON schema given as a mapping. *name* defaults to the model's name (made
    to fit OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``); *description* is sent as the format's
    description and the schema's own. *strict*: None makes the schema strict when the model
    allows it and sends ``strict: false`` otherwise; True raises :class:`StrictSchemaError`
    when it cannot be strict; False sends the schema as pydantic writes it, not strict.
    """
    if isinstance(model, Mapping):
        raw: dict[str, Any] = orjson.loads(orjson.dumps(model))
        default_name = str(raw.get("title") or "response")
    else:
        raw = _adapter(model).json_schema()
        default_name = getattr(model, "__name__", None) or str(raw.get("title") or "response")
    problems: tuple[str, ...]
    if strict is False:
        schema, problems = raw, ("not asked to be strict",)
    else:
        schema, problems = strict_json_schema(raw)
        if problems and strict:
            raise StrictSchemaError(
                f"the schema of {default_name} cannot be strict: " + "; ".join(problems),
                problems=problems,
            )
    if description is not None:
        schema = {**schema, "description": description}
    spec: dict[str, Any] = {
        "name": _NAME.sub("_", name or default_name)[:64] or "response",
        "schema": schema,
        "strict": not problems,
    }
    if description is not None:
        spec["description"] = description
    return {"type": "json_schema", "json_schema": spec}


# -- parsing --------------------------------------------------------------------------------


def parse(result: BatchResult, model: type[T]) -> T:
    """The answer of *result* as an instance of *model* (validated by pydantic), or
    :class:`StructuredOutputError` saying why it is not one. Same as ``result.parse(model)``."""
    label = getattr(model, "__name__", repr(model))
    cid = result.custom_id
    if not result.ok:
        error = result.error
        why = f"{error.code}: {error.message}" if error is not None else "no error recorded"
        raise StructuredOutputError(
            f"result {cid!r} did not succeed ({result.status.value}; {why}): there is no "
            f"answer to parse as {label}",
            result=result,
            reason="not_succeeded",
            model=label,
        )
    text = result.text
    if text is None or not text.strip():
        if result.refusal:
            raise StructuredOutputError(
                f"result {cid!r}: the model refused to answer ({result.refusal!r}), so there "
                f"is no {label} to parse",
                result=result,
                reason="refused",
                model=label,
            )
        raise StructuredOutputError(
            f"result {cid!r} succeeded without any answer text (a tool call, or an empty "
            f"answer): there is no {label} to parse",
            result=result,
            reason="no_text",
            model=label,
        )
    ValidationError = _pydantic().ValidationError

    try:
        value: T = _adapter(model).validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        bad_json = any(e.get("type") == "json_invalid" for e in errors)
        summary = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ()))) or '(answer)'}: {e.get('msg')}"
            for e in errors[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        what = "is not JSON" if bad_json else f"does not match {label}"
        hint = " (was it cut short by max_tokens?)" if bad_json else ""
        raise StructuredOutputError(
            f"result {cid!r}: the answer {what}{hint}: {summary}{more}; the answer begins "
            f"{text[:80]!r}",
            result=result,
            reason="invalid_json" if bad_json else "invalid",
            model=label,
            errors=errors,
        ) from exc
    return value


def parse_each(
    results: Iterable[BatchResult], model: type[T]
) -> Iterator[tuple[BatchResult, T | StructuredOutputError]]:
    """``(result, instance or StructuredOutputError)`` for each of *results*, lazily."""
    for result in results:
        try:
            yield result, parse(result, model)
        except StructuredOutputError as error:
            yield result, error


def parse_results(
    runner: BatchRunner, job_id: str, model: type[T]
) -> Iterator[tuple[BatchResult, T | StructuredOutputError]]:
    """``(result, instance or StructuredOutputError)`` for every stored result of job
    *job_id*, in input order, streamed from the runner's store (works in any process that
    opens the store: the model is code, nothing about it is stored)."""
    return parse_each(runner.results(job_id), model)


def _adapter(model: Any) -> TypeAdapter[Any]:
    """pydantic's validator and schema writer for *model*, built once per model."""
    try:
        return _cached_adapter(model)
    except TypeError:  # an unhashable annotation: built every time
        return _new_adapter(model)


@lru_cache(maxsize=128)
def _cached_adapter(model: Any) -> TypeAdapter[Any]:
    return _new_adapter(model)


def _new_adapter(model: Any) -> TypeAdapter[Any]:
    return _pydantic().TypeAdapter(model)  # type: ignore[no-any-return]


def _pydantic() -> Any:
    """The pydantic module, or an ImportError that says how to install it (the one place
    structured output imports it)."""
    try:
        import pydantic
    except ImportError:
        raise ImportError(
            "structured output needs pydantic 2: pip install 'batchcore[pydantic]'"
        ) from None
    return pydantic

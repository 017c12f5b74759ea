"""The rules of the unified request, checked before anything is written or sent.

The unified request is OpenAI's request format, so its rules come from OpenAI's published
spec (``_request_rules.json``, derived by ``tools/extract_request_rules.py``, never edited by
hand): which parameters each endpoint takes, their JSON types, ranges and allowed values, which
keys each message role and each content part takes. A provider that understands more (an
Anthropic ``cache_control`` on a part) declares it in :class:`RequestExtensions`; one whose
models refuse some values declares :class:`ModelRule`\\ s. Anything else goes under
``provider_params={"<provider>": {...}}``, the one escape hatch, which passes through unchecked.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import attrs

from batchcore.errors import InvalidRequestError
from batchcore.frozen import FrozenDict
from batchcore.models import CHAT_COMPLETIONS, BatchRequest

__all__ = ["ModelRule", "RequestExtensions", "check_request_rules"]

#: Bounds the spec leaves out and the API enforces: a token budget is a positive integer.
_SUPPLEMENT: Mapping[str, Mapping[str, Any]] = {
    "max_tokens": {"minimum": 1},
    "max_completion_tokens": {"minimum": 1},
}
#: How many (parameter, value) pairs found right are remembered per endpoint.
_PASSED_LIMIT = 4096
_JSON_TYPES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
    dict: "object",
    FrozenDict: "object",
    list: "array",
    tuple: "array",
}


@attrs.frozen(kw_only=True)
class RequestExtensions:
    """What a provider understands beyond OpenAI's request format, in the unified request
    itself (not under ``provider_params``): extra parameters, message keys, content part keys
    and content part types."""

    params: frozenset[str] = frozenset()
    message_keys: frozenset[str] = frozenset()
    part_keys: frozenset[str] = frozenset()
    part_types: frozenset[str] = frozenset()


@attrs.frozen(kw_only=True)
class ModelRule:
    """Models (glob patterns) that refuse a parameter, or take it only within a range.

    ``ModelRule(models=("o1*",), param="temperature", minimum=1, maximum=1, reason=...)``: the
    value must lie in [minimum, maximum]; with neither bound, the parameter is refused.
    """

    models: tuple[str, ...]
    param: str
    reason: str
    minimum: float | None = None
    maximum: float | None = None

    def applies_to(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)

    def allows(self, value: Any) -> bool:
        if self.minimum is None and self.maximum is None:
            return False
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )


@cache
def _rules() -> Mapping[str, Any]:
    document = files("batchcore").joinpath("_request_rules.json").read_text(encoding="utf-8")
    rules: dict[str, Any] = json.loads(document)
    for endpoint in rules["endpoints"].values():
        for name, bounds in _SUPPLEMENT.items():
            if name in endpoint["params"]:
                endpoint["params"][name] = {**endpoint["params"][name], **bounds}
    roles = rules["messages"]["roles"]
    for role in roles.values():
        role["keys"] = frozenset(role["keys"])
        role["parts"] = frozenset(role["content"]["parts"])
        # {"role", "content": "text"} is complete for this role: checked in one step.
        role["plain"] = set(role["required"]) <= {"role", "content"} and (
            "string" in role["content"]["types"]
        )
    for endpoint in rules["endpoints"].values():
        # Values found right for a parameter (they depend on nothing but the spec).
        endpoint["passed"] = set()
    for part in rules["messages"]["parts"].values():
        part["keys"] = frozenset(part["keys"])
    return rules


def _refuse(
    request: BatchRequest, field: str, message: str, provider: str, *, hatch: bool = False
) -> InvalidRequestError:
    if hatch:
        name = field.split(".")[-1]
        message += (
            f"; vendor-only or new fields go under provider_params={{{provider!r}: "
            f"{{{name!r}: ...}}}}, which passes through unchecked"
        )
    return InvalidRequestError(
        f"request {request.custom_id!r}: {field}: {message}",
        custom_id=request.custom_id,
        field=field,
        provider=provider,
    )


def _type_of(value: Any) -> str:
    kind = _JSON_TYPES.get(value.__class__)
    if kind is not None:
        return kind
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return "array"
    return type(value).__name__


def _problem(value: Any, rule: Mapping[str, Any]) -> str | None:
    """What is wrong with *value* under *rule*, or None."""
    kind = _type_of(value)
    allowed = rule["types"]
    if kind not in allowed and not (kind == "integer" and "number" in allowed):
        return f"expected {' or '.join(allowed)}, got {kind} {value!r}"[:200]
    if kind in ("integer", "number"):
        if "minimum" in rule and value < rule["minimum"]:
            return f"{value!r} is below the minimum {rule['minimum']}"
        if "maximum" in rule and value > rule["maximum"]:
            return f"{value!r} is above the maximum {rule['maximum']}"
    elif kind == "string":
        if "enum" in rule and value not in rule["enum"]:
            return f"{value!r} is not one of {', '.join(map(repr, rule['enum']))}"
    elif kind == "array":
        if "minItems" in rule and len(value) < rule["minItems"]:
            return f"needs at least {rule['minItems']} item(s)"
        if "maxItems" in rule and len(value) > rule["maxItems"]:
            return f"takes at most {rule['maxItems']} items, got {len(value)}"
    elif kind == "object" and "kinds" in rule:
        tag = value.get("type")
        if tag not in rule["kinds"]:
            return f"type {tag!r} is not one of {', '.join(map(repr, rule['kinds']))}"
    return None


def check_request_rules(
    request: BatchRequest,
    *,
    provider: str,
    extensions: RequestExtensions = RequestExtensions(),
    model_rules: Sequence[ModelRule] = (),
) -> None:
    """Raise :class:`InvalidRequestError` naming the custom_id and field of the first thing in
    *request* its endpoint's spec (plus *extensions*) or a *model_rules* entry refuses."""
    rules = _rules()
    endpoint = rules["endpoints"].get(request.endpoint)
    if endpoint is None:
        return  # an endpoint the spec does not describe: the provider checks it
    messages, params = request.body_parts()
    known = endpoint["params"]
    extra = extensions.params
    passed = endpoint["passed"]
    for key, value in params.items():
        kind = value.__class__
        atom = kind is int or kind is float or kind is str or kind is bool
        # A job's requests mostly repeat the same few values (max_tokens 256, temperature
        # 0.2): a value once found right for a parameter is not checked again.
        if atom and (key, kind, value) in passed:
            continue
        rule = known.get(key)
        if rule is None:
            if key in extra:
                continue
            raise _refuse(
                request,
                f"params.{key}",
                f"not a parameter of {request.endpoint} in OpenAI's request format",
                provider,
                hatch=True,
            )
        problem = _problem(value, rule)
        if problem is not None:
            raise _refuse(request, f"params.{key}", problem, provider)
        if atom and len(passed) < _PASSED_LIMIT:
            passed.add((key, kind, value))
    for rule in model_rules:
        # None is OpenAI's "use the default", which every model accepts.
        if params.get(rule.param) is not None and rule.applies_to(request.model):
            value = params[rule.param]
            if not rule.allows(value):
                raise _refuse(
                    request,
                    f"params.{rule.param}",
                    f"model {request.model!r} {rule.reason} (got {value!r})",
                    provider,
                )
    if request.endpoint == CHAT_COMPLETIONS:
        _check_messages(request, messages, rules["messages"], provider, extensions)


def _check_messages(
    request: BatchRequest,
    messages: Sequence[Mapping[str, Any]],
    rules: Mapping[str, Any],
    provider: str,
    extensions: RequestExtensions,
) -> None:
    roles, parts = rules["roles"], rules["parts"]
    for index, message in enumerate(messages):
        role = roles.get(message.get("role"))
        if role is None:
            continue  # an unknown role is refused by BatchRequest itself
        if role["plain"] and len(message) == 2 and message.get("content").__class__ is str:
            continue  # the common case: nothing more to see
        where = f"messages[{index}]"
        for key in message:
            if key not in role["keys"] and key not in extensions.message_keys:
                raise _refuse(
                    request,
                    f"{where}.{key}",
                    f"a {message['role']} message has no field {key!r}",
                    provider,
                )
        for key in role["required"]:
            if key not in message:
                raise _refuse(
                    request,
                    f"{where}.{key}",
                    f"a {message['role']} message needs {key!r}",
                    provider,
                )
        if "content" not in message:
            continue
        content = message["content"]
        kind = _type_of(content)
        if kind not in role["content"]["types"]:
            raise _refuse(
                request,
                f"{where}.content",
                f"expected {' or '.join(role['content']['types'])}, got {kind}",
                provider,
            )
        if kind != "array":
            continue
        for number, part in enumerate(content):
            spot = f"{where}.content[{number}]"
            if _type_of(part) != "object":
                raise _refuse(request, spot, "a content part must be an object", provider)
            kind_of_part = part.get("type")
            allowed = role["parts"] | extensions.part_types
            if kind_of_part not in allowed:
                raise _refuse(
                    request,
                    f"{spot}.type",
                    f"{kind_of_part!r} is not a content part of a {message['role']} message "
                    f"(one of {', '.join(sorted(allowed))})",
                    provider,
                )
            part_rule = parts.get(kind_of_part)
            if part_rule is None:
                continue  # a provider's own part type: its conversion checks it
            for key in part:
                if key not in part_rule["keys"] and key not in extensions.part_keys:
                    raise _refuse(
                        request,
                        f"{spot}.{key}",
                        f"a {kind_of_part} part has no field {key!r}",
                        provider,
                    )
            for key in part_rule["required"]:
                if key not in part:
                    raise _refuse(
                        request, f"{spot}.{key}", f"a {kind_of_part} part needs {key!r}", provider
                    )

"""What batchcore-anthropic knows of each Claude model, in one table (:data:`MODELS`), and how
a model the table does not name is judged (:func:`model_facts`).

Facts, with where they come from:

* **Maximum output** (``max_tokens``): each model's page in Anthropic's models documentation
  ("Max output"), without beta headers (this provider sends none).
* **Sampling** (``temperature``, ``top_p``): Anthropic's OpenAPI spec marks both deprecated,
  with the notes that models released after Claude Opus 4.6 reject any ``temperature`` but 1.0
  and any ``top_p`` below 0.99 (values kept for backwards compatibility). Anthropic's migration
  guides name Claude Opus 4.7 as the first such model (Claude Sonnet 4.6, released twelve days
  after Opus 4.6, still takes both); the API answers "`temperature` is deprecated for this
  model." The migration guides of Claude Sonnet 4.5 and Haiku 4.5 say that setting both
  ``temperature`` and ``top_p`` is a 400 error ("`temperature` and `top_p` cannot both be
  specified for this model. Please use only one."); the same error is reported for Claude Opus
  4.1, 4.5, 4.6 and Sonnet 4.6. Older models (Claude 3.x, Claude Opus 4 and Sonnet 4) predate
  both rules.
* **Structured output** (``output_config.format``, what ``response_format`` json_schema
  becomes): Anthropic's structured outputs page ("generally available on the Claude API for
  ... Claude Opus 4.7, Claude Opus 4.6, Claude Sonnet 4.6, Claude Sonnet 4.5, Claude Opus 4.5
  and Claude Haiku 4.5", and Mythos Preview, Opus 4.8, Fable 5, Mythos 5 and Sonnet 5 in its
  later versions). Claude Opus 4.1 had it only as a beta behind a header this provider does not
  send; Claude 3.x, Opus 4 and Sonnet 4 never had it.
* ``top_k`` is deprecated the same way, but it only reaches Anthropic through
  ``provider_params``, which passes through unchecked.

A ``claude-*`` model the table does not name is judged by the version in its id (dated
snapshots and ``-latest`` aliases, current ids ``claude-opus-4-8`` and older ones
``claude-3-5-sonnet-20241022`` alike): it takes the rules of the newest model of the table at or
below its version, so a model newer than the table gets the newest rules (refusing offline
what such a model refuses), and one older than the table the rules of the models before them
(no sampling rule, no structured output). A ``claude-*`` name without a version this module can
read gets the newest rules, which are also the strictest (and a warning, once per name): such
names have been new previews (``claude-mythos-preview``). Its maximum output is never guessed.
A name outside ``claude-*`` (added with config ``models``) is not judged: the API decides.
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import re
from collections.abc import Mapping
from functools import lru_cache

import attrs

from batchcore.plugin import BatchRequest

__all__ = ["LEGACY", "MODELS", "ModelFacts", "Sampling", "model_facts", "model_problem"]

log = logging.getLogger("batchcore_anthropic")


class Sampling(enum.Enum):
    """How a model takes the sampling parameters ``temperature`` and ``top_p``."""

    #: Both, within the API's ranges (models older than the rule against setting both).
    ANY = "any"
    #: Either one, within the API's ranges; not both in one request.
    ONE_OF = "one_of"
    #: Deprecated: ``temperature`` only at 1.0, ``top_p`` only from 0.99 (values that change
    #: nothing, accepted for backwards compatibility).
    DEPRECATED = "deprecated"


#: Sampling rules from the most lenient to the strictest.
_STRICTNESS = (Sampling.ANY, Sampling.ONE_OF, Sampling.DEPRECATED)

# Current ids (claude-opus-4-1, claude-sonnet-4-20250514, claude-sonnet-5) and older ones
# (claude-3-5-sonnet-20241022, claude-3-haiku-20240307), each with a dated or -latest suffix.
_CURRENT_ID = re.compile(
    r"^claude-(?P<family>[a-z]+)-(?P<major>\d{1,2})(?:-(?P<minor>\d{1,2}))?(?:-(?:\d{8}|latest))?$"
)
_OLDER_ID = re.compile(
    r"^claude-(?P<major>\d{1,2})(?:-(?P<minor>\d{1,2}))?-(?P<family>[a-z]+)(?:-(?:\d{8}|latest))?$"
)


def model_version(model: str) -> tuple[int, int] | None:
    """The (major, minor) version in a Claude model id, or None when it carries none."""
    found = _CURRENT_ID.match(model) or _OLDER_ID.match(model)
    if found is None:
        return None
    return int(found["major"]), int(found["minor"] or 0)


@attrs.frozen(kw_only=True)
class ModelFacts:
    """One model: its id (and its dated snapshots, ``<id>-2025...``), its largest
    ``max_tokens`` (None when not documented), how it takes sampling parameters and whether it
    takes structured output. *inferred* is None for a model the table names; for another, it
    says which rules it was given and why (refusals quote it)."""

    model: str
    max_output_tokens: int | None
    sampling: Sampling
    structured_output: bool
    inferred: str | None = None

    @property
    def patterns(self) -> tuple[str, str]:
        return (self.model, f"{self.model}-2*")

    @property
    def version(self) -> tuple[int, int] | None:
        return model_version(self.model)

    def matches(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.patterns)


_ANY, _ONE_OF, _DEPRECATED = Sampling.ANY, Sampling.ONE_OF, Sampling.DEPRECATED


def _model(name: str, max_output: int | None, sampling: Sampling, structured: bool) -> ModelFacts:
    return ModelFacts(
        model=name, max_output_tokens=max_output, sampling=sampling, structured_output=structured
    )


#: The models of Anthropic's spec (its ``Model`` enumeration), oldest first.
MODELS: tuple[ModelFacts, ...] = (
    _model("claude-opus-4-1", 32_000, _ONE_OF, structured=False),
    _model("claude-sonnet-4-5", 64_000, _ONE_OF, structured=True),
    _model("claude-haiku-4-5", 64_000, _ONE_OF, structured=True),
    _model("claude-opus-4-5", 64_000, _ONE_OF, structured=True),
    _model("claude-opus-4-6", 128_000, _ONE_OF, structured=True),
    _model("claude-sonnet-4-6", 128_000, _ONE_OF, structured=True),
    _model("claude-opus-4-7", 128_000, _DEPRECATED, structured=True),
    _model("claude-mythos-preview", None, _DEPRECATED, structured=True),
    _model("claude-opus-4-8", 128_000, _DEPRECATED, structured=True),
    _model("claude-fable-5", 128_000, _DEPRECATED, structured=True),
    _model("claude-mythos-5", 128_000, _DEPRECATED, structured=True),
    _model("claude-sonnet-5", 128_000, _DEPRECATED, structured=True),
)

#: The rules of models older than every model of :data:`MODELS` (Claude 3.x, Claude Opus 4
#: and Sonnet 4): both sampling parameters, no structured output.
LEGACY = ModelFacts(
    model="older than claude-opus-4-1",
    max_output_tokens=None,
    sampling=_ANY,
    structured_output=False,
)


def _versioned() -> list[tuple[tuple[int, int], ModelFacts]]:
    return sorted(
        ((version, facts) for facts in MODELS if (version := facts.version) is not None),
        key=lambda pair: pair[0],
    )


def _strictest(models: list[ModelFacts], *, model: str, inferred: str) -> ModelFacts:
    """The rules that hold for every one of *models*, given to *model* (whose maximum output
    is not guessed)."""
    return ModelFacts(
        model=model,
        max_output_tokens=None,
        sampling=max((facts.sampling for facts in models), key=_STRICTNESS.index),
        structured_output=all(facts.structured_output for facts in models),
        inferred=inferred,
    )


def _names(models: list[ModelFacts]) -> str:
    return ", ".join(facts.model for facts in models)


@lru_cache(maxsize=256)
def model_facts(model: str) -> ModelFacts | None:
    """The facts of *model*: the table's for a model it names (or a dated snapshot of one),
    inferred ones for another ``claude-*`` model (see the module's documentation), None for a
    name outside ``claude-*``."""
    known = next((facts for facts in MODELS if facts.matches(model)), None)
    if known is not None or not model.startswith("claude-"):
        return known
    versioned = _versioned()
    version = model_version(model)
    if version is None:
        newest = [facts for v, facts in versioned if v == versioned[-1][0]]
        log.warning(
            "model %r: batchcore cannot read a version in its name; it is checked with the "
            "rules of the newest models it knows (%s), the strictest",
            model,
            _names(newest),
        )
        return _strictest(
            newest,
            model=model,
            inferred=f"its name has no version batchcore can read, so it gets the rules of the "
            f"newest models batchcore knows ({_names(newest)})",
        )
    below = [v for v, _ in versioned if v <= version]
    if not below:
        return attrs.evolve(
            LEGACY,
            model=model,
            inferred=f"a model older than those batchcore knows ({versioned[0][1].model} on)",
        )
    nearest = [facts for v, facts in versioned if v == below[-1]]
    at_newest = below[-1] == versioned[-1][0]
    return _strictest(
        nearest,
        model=model,
        inferred=f"batchcore's table does not name it, so it gets the rules of "
        f"{_names(nearest)}" + (", the newest models batchcore knows" if at_newest else ""),
    )


_WHY_SAMPLING = "sampling parameters are deprecated for models released after Claude Opus 4.6"
_HATCH = "or send it anyway under provider_params={'anthropic': {...}}, which is not checked"


def model_problem(request: BatchRequest) -> tuple[str, str] | None:
    """``(field, why)`` for the first thing in *request* its model would refuse (the facts of
    :func:`model_facts`), or None. Values left at None are OpenAI's "use the default", which
    every model takes."""
    facts = model_facts(request.model)
    if facts is None:
        return None
    params = request.body_parts()[1]
    model = repr(request.model)
    why = f" ({facts.inferred})" if facts.inferred else ""
    limit = facts.max_output_tokens
    if limit is not None:
        for key in ("max_tokens", "max_completion_tokens"):
            value = params.get(key)
            if value.__class__ is int and value > limit:
                return f"params.{key}", f"model {model} writes at most {limit} tokens, got {value}"
    temperature, top_p = params.get("temperature"), params.get("top_p")
    if facts.sampling is _DEPRECATED:
        if temperature is not None and temperature != 1:
            return "params.temperature", (
                f"model {model} takes temperature only at 1.0{why} ({_WHY_SAMPLING}; got "
                f"{temperature!r}); leave it out, {_HATCH}"
            )
        if top_p is not None and not (_number(top_p) and 0.99 <= top_p <= 1):
            return "params.top_p", (
                f"model {model} takes top_p only from 0.99 to 1{why} ({_WHY_SAMPLING}; got "
                f"{top_p!r}); leave it out, {_HATCH}"
            )
    elif facts.sampling is _ONE_OF and temperature is not None and top_p is not None:
        return "params.top_p", (
            f"model {model} takes temperature or top_p, not both{why}; keep one, {_HATCH}"
        )
    if not facts.structured_output and _asks_for_schema(params.get("response_format")):
        return "params.response_format", (
            f"model {model} has no structured output (output_config.format){why}; use a model "
            f"that has it (Claude Sonnet 4.5, Haiku 4.5, Opus 4.5 or newer), {_HATCH}"
        )
    return None


def _number(value: object) -> bool:
    return value.__class__ is int or value.__class__ is float


def _asks_for_schema(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "json_schema"

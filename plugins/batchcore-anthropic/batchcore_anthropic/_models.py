"""What batchcore-anthropic knows of each Claude model, in one table (:data:`MODELS`).

Facts, with where they come from:

* **Maximum output** (``max_tokens``): each model's page in Anthropic's models documentation
  ("Max output"), without beta headers (this provider sends none).
* **Sampling** (``temperature``, ``top_p``): Anthropic's OpenAPI spec marks both deprecated,
  with the notes that models released after Claude Opus 4.6 reject any ``temperature`` but 1.0
  and any ``top_p`` below 0.99 (values kept for backwards compatibility). Anthropic's migration
  guides name Claude Opus 4.7 as the first such model (Claude Sonnet 4.6, released twelve days
  after Opus 4.6, still takes both). The migration guides of Claude Sonnet 4.5 and Haiku 4.5
  say that setting both ``temperature`` and ``top_p`` is a 400 error; the same error is
  reported for Claude Opus 4.1, 4.5, 4.6 and Sonnet 4.6.
* ``top_k`` is deprecated the same way, but it only reaches Anthropic through
  ``provider_params``, which passes through unchecked.

A model the table does not name (an older or a newer one) gets no offline check: the API
decides. The refusals a model would answer are data for the core's check
(:data:`MODEL_RULES`); the mapping reads the rest (:func:`model_facts`).
"""

from __future__ import annotations

import enum
import fnmatch
from functools import lru_cache

import attrs

from batchcore.plugin import ModelRule

__all__ = ["MODELS", "MODEL_RULES", "ModelFacts", "Sampling", "model_facts"]


class Sampling(enum.Enum):
    """How a model takes the sampling parameters ``temperature`` and ``top_p``."""

    #: Either one, within the API's ranges; not both in one request.
    ONE_OF = "one_of"
    #: Deprecated: ``temperature`` only at 1.0, ``top_p`` only from 0.99 (values that change
    #: nothing, accepted for backwards compatibility).
    DEPRECATED = "deprecated"


@attrs.frozen(kw_only=True)
class ModelFacts:
    """One model: its id (and its dated snapshots, ``<id>-2025...``), its largest
    ``max_tokens`` (None when not documented) and how it takes sampling parameters."""

    model: str
    max_output_tokens: int | None
    sampling: Sampling

    @property
    def patterns(self) -> tuple[str, str]:
        return (self.model, f"{self.model}-2*")

    def matches(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.patterns)


_ONE_OF, _DEPRECATED = Sampling.ONE_OF, Sampling.DEPRECATED

#: The models of Anthropic's spec (its ``Model`` enumeration), oldest first.
MODELS: tuple[ModelFacts, ...] = (
    ModelFacts(model="claude-opus-4-1", max_output_tokens=32_000, sampling=_ONE_OF),
    ModelFacts(model="claude-sonnet-4-5", max_output_tokens=64_000, sampling=_ONE_OF),
    ModelFacts(model="claude-haiku-4-5", max_output_tokens=64_000, sampling=_ONE_OF),
    ModelFacts(model="claude-opus-4-5", max_output_tokens=64_000, sampling=_ONE_OF),
    ModelFacts(model="claude-opus-4-6", max_output_tokens=128_000, sampling=_ONE_OF),
    ModelFacts(model="claude-sonnet-4-6", max_output_tokens=128_000, sampling=_ONE_OF),
    ModelFacts(model="claude-opus-4-7", max_output_tokens=128_000, sampling=_DEPRECATED),
    ModelFacts(model="claude-mythos-preview", max_output_tokens=None, sampling=_DEPRECATED),
    ModelFacts(model="claude-opus-4-8", max_output_tokens=128_000, sampling=_DEPRECATED),
    ModelFacts(model="claude-fable-5", max_output_tokens=128_000, sampling=_DEPRECATED),
    ModelFacts(model="claude-mythos-5", max_output_tokens=128_000, sampling=_DEPRECATED),
    ModelFacts(model="claude-sonnet-5", max_output_tokens=128_000, sampling=_DEPRECATED),
)

_DEPRECATED_MODELS = tuple(
    pattern for facts in MODELS if facts.sampling is _DEPRECATED for pattern in facts.patterns
)
_WHY = "(the parameter is deprecated for models released after Claude Opus 4.6; leave it out)"

#: What the core refuses before anything is written: sampling values the newest models reject.
MODEL_RULES: tuple[ModelRule, ...] = (
    ModelRule(
        models=_DEPRECATED_MODELS,
        param="temperature",
        minimum=1,
        maximum=1,
        reason=f"takes temperature only at 1.0 {_WHY}",
    ),
    ModelRule(
        models=_DEPRECATED_MODELS,
        param="top_p",
        minimum=0.99,
        maximum=1,
        reason=f"takes top_p only from 0.99 to 1 {_WHY}",
    ),
)


@lru_cache(maxsize=256)
def model_facts(model: str) -> ModelFacts | None:
    """The facts of *model* (an id or a dated snapshot of one), or None for a model the table
    does not name."""
    return next((facts for facts in MODELS if facts.matches(model)), None)

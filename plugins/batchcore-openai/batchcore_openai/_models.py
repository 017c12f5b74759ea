"""OpenAI's reasoning models and the request parameters they refuse, in one table.

:data:`FAMILIES` is the data; :data:`MODEL_RULES` (what the core checks before anything is
written) and the README's table are read from it. Facts, with where they come from (the
numbers are :attr:`Family.sources`):

1. OpenAI's OpenAPI spec (``openai/openai-openapi``, ``openapi.yaml`` at ``f85dbe2``):
   ``max_tokens`` "is now deprecated in favor of ``max_completion_tokens``, and is not
   compatible with o-series models"; ``stop``: "Not supported with latest reasoning models
   ``o3`` and ``o4-mini``".
2. The Azure OpenAI reasoning models guide (``MicrosoftDocs/azure-ai-docs``,
   ``articles/foundry/openai/how-to/reasoning.md``), for the o-series and the GPT-5 family:
   "Reasoning models will only work with the ``max_completion_tokens`` parameter", and "The
   following are currently unsupported with reasoning models: ``temperature``, ``top_p``,
   ``presence_penalty``, ``frequency_penalty``, ``logprobs``, ``top_logprobs``,
   ``logit_bias``, ``max_tokens``".
3. The beta limitations of ``o1-preview`` and ``o1-mini`` in OpenAI's reasoning guide, which
   the API also answers with: "temperature, top_p and n are fixed at 1, while
   presence_penalty and frequency_penalty are fixed at 0".
4. The API's answers, as reported against the official SDKs (openai-python #2072) and in
   many client projects: "Unsupported parameter: 'max_tokens' is not supported with this
   model. Use 'max_completion_tokens' instead." (o1, o3-mini, gpt-5, gpt-5.1, gpt-5.4), and
   "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default
   (1) value is supported." (o3): the default value itself is accepted.
5. GPT-5.1 and later models take ``temperature``, ``top_p`` and ``logprobs`` when their
   reasoning effort is ``none`` (their default), per OpenAI's GPT-5 guide (see vercel/ai
   #10932): a rule on the model name alone would refuse requests the API accepts, so for them
   only ``max_tokens`` is checked here and the API decides the rest.

Where a source says a parameter is unsupported but the API takes its default value (``1`` for
``temperature`` and ``top_p``, ``0`` for the penalties), the default stays allowed: an offline
check must never refuse what the API would run. Models the table does not name get no check.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from batchcore.plugin import ModelRule

__all__ = ["FAMILIES", "MODEL_RULES", "Family"]


@attrs.frozen(kw_only=True)
class Family:
    """Models that refuse the same parameters: their names as users write them (glob
    patterns, dated snapshots included), the parameters refused whatever their value, and
    those taken only at their default value."""

    name: str
    patterns: tuple[str, ...]
    refused: tuple[str, ...]
    defaults_only: Mapping[str, float] = attrs.field(factory=dict)
    sources: tuple[int, ...]


_SAMPLING_DEFAULTS: Mapping[str, float] = {
    "temperature": 1,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}
_REFUSED = ("max_tokens", "logprobs", "top_logprobs", "logit_bias")

FAMILIES: tuple[Family, ...] = (
    Family(
        name="o1-preview, o1-mini",
        patterns=("o1-preview", "o1-preview-*", "o1-mini", "o1-mini-*"),
        refused=_REFUSED,
        defaults_only={**_SAMPLING_DEFAULTS, "n": 1},
        sources=(1, 2, 3),
    ),
    Family(
        name="o1, o1-pro, o3-mini",
        patterns=("o1", "o1-2*", "o1-pro", "o1-pro-*", "o3-mini", "o3-mini-*"),
        refused=_REFUSED,
        defaults_only=_SAMPLING_DEFAULTS,
        sources=(1, 2, 4),
    ),
    Family(
        name="o3, o4-mini",
        patterns=("o3", "o3-2*", "o4-mini", "o4-mini-2*"),
        refused=(*_REFUSED, "stop"),
        defaults_only=_SAMPLING_DEFAULTS,
        sources=(1, 2, 4),
    ),
    Family(
        name="o3-pro, o3-deep-research, o4-mini-deep-research",
        patterns=("o3-pro", "o3-pro-*", "o3-deep-research*", "o4-mini-deep-research*"),
        refused=_REFUSED,
        defaults_only=_SAMPLING_DEFAULTS,
        sources=(1, 2),
    ),
    Family(
        name="gpt-5, gpt-5-mini, gpt-5-nano, gpt-5-pro, gpt-5-codex",
        patterns=(
            "gpt-5",
            "gpt-5-2*",
            "gpt-5-mini",
            "gpt-5-mini-*",
            "gpt-5-nano",
            "gpt-5-nano-*",
            "gpt-5-pro",
            "gpt-5-pro-*",
            "gpt-5-codex",
            "gpt-5-codex-*",
        ),
        refused=_REFUSED,
        defaults_only=_SAMPLING_DEFAULTS,
        sources=(2, 4),
    ),
    Family(
        name="gpt-5.1 and later (gpt-5.x)",
        patterns=("gpt-5.*",),
        refused=("max_tokens",),
        sources=(4, 5),
    ),
)


def _reason(param: str, default: float | None) -> str:
    if param == "max_tokens":
        return "does not take max_tokens (a reasoning model); use max_completion_tokens"
    if default is None:
        return f"does not take {param} (a reasoning model); leave it out"
    return f"takes {param} only at its default, {default:g} (a reasoning model); leave it out"


def _rules() -> tuple[ModelRule, ...]:
    # One rule per (parameter, allowed value): the patterns of every family it applies to.
    grouped: dict[tuple[str, float | None], list[str]] = {}
    for family in FAMILIES:
        for param in family.refused:
            grouped.setdefault((param, None), []).extend(family.patterns)
        for param, default in family.defaults_only.items():
            grouped.setdefault((param, default), []).extend(family.patterns)
    return tuple(
        ModelRule(
            models=tuple(patterns),
            param=param,
            minimum=default,
            maximum=default,
            reason=_reason(param, default),
        )
        for (param, default), patterns in grouped.items()
    )


#: What the core refuses before anything is written: the parameters :data:`FAMILIES` refuse.
MODEL_RULES: tuple[ModelRule, ...] = _rules()

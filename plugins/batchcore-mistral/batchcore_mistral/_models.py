"""The models Mistral serves, as users write them, and what the API refuses for all of them.

Data only: the provider declares these (``SUPPORTED_MODELS``, ``MODEL_RULES``); config
``models`` adds more names or patterns.
"""

from __future__ import annotations

from batchcore.plugin import ModelRule

__all__ = ["MISTRAL_MODEL_PATTERNS", "MODEL_RULES"]

#: Model names as glob patterns: the ``-latest`` aliases, dated versions (``-2508``, ``-2512``)
#: and versioned names (``mistral-medium-3.5``) of every family the batch API serves ("batch
#: API is available for all models"), the open-weight ``open-*`` names, Labs models, and
#: fine-tunes (``ft:open-mistral-7b:...``).
MISTRAL_MODEL_PATTERNS: tuple[str, ...] = (
    "mistral-large*",
    "mistral-medium*",
    "mistral-small*",
    "mistral-tiny*",
    "mistral-saba*",
    "mistral-embed*",
    "ministral-*",
    "magistral-*",
    "codestral-*",
    "devstral-*",
    "pixtral-*",
    "voxtral-*",
    "open-mistral-*",
    "open-mixtral-*",
    "open-codestral-*",
    "labs-*",
    "ft:*",
)

#: Ranges the API enforces whatever the model (``ChatCompletionRequest`` in Mistral's spec),
#: where OpenAI's format allows more.
MODEL_RULES: tuple[ModelRule, ...] = (
    ModelRule(
        models=("*",),
        param="temperature",
        minimum=0.0,
        maximum=1.5,
        reason="takes temperature from 0 to 1.5 (Mistral's range; OpenAI's goes to 2)",
    ),
)

"""What Groq's Batch API does differently from OpenAI's, as data and pure functions.

Groq speaks OpenAI's wire format (requests, Batch objects and result lines are read and written
by batchcore-openai); this module holds only what differs: where the API lives, the models and
the one endpoint it batches, the completion windows it accepts, its limits, and what of
OpenAI's request format it refuses (parameters, message keys, structured output per model).
Where Groq's sources disagree, the value here is the reading that cannot go wrong, and
configuration can override it (see the README).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from batchcore.plugin import CHAT_COMPLETIONS, BatchLimits, ModelRule

__all__ = [
    "API_PATH",
    "BATCH_ENDPOINTS",
    "COMPLETION_WINDOWS",
    "COMPLETION_WINDOWS_DESCRIPTION",
    "DEFAULT_BASE_URL",
    "DEFAULT_COMPLETION_WINDOW",
    "GROQ_LIMITS",
    "GROQ_MODEL_PATTERNS",
    "MODEL_RULES",
    "REFUSED_MESSAGE_KEYS",
    "STRICT_STRUCTURED_OUTPUT_MODELS",
    "STRUCTURED_OUTPUT_MODELS",
    "api_root",
]

#: Where Groq serves its OpenAI-compatible API, under the host.
API_PATH = "/openai/v1"
DEFAULT_BASE_URL = "https://api.groq.com" + API_PATH

#: The models Groq batches, as users write them (glob patterns); config ``models`` adds more.
GROQ_MODEL_PATTERNS: tuple[str, ...] = (
    "llama-3.1-*",  # llama-3.1-8b-instant
    "llama-3.3-*",  # llama-3.3-70b-versatile
    "meta-llama/llama-4-*",  # Llama 4 Scout and Maverick
    "meta-llama/llama-guard-*",
    "meta-llama/llama-prompt-guard-*",
    "openai/gpt-oss-*",  # gpt-oss-20b, gpt-oss-120b, gpt-oss-safeguard-20b
    "qwen/*",
    "moonshotai/*",  # Kimi K2
)

#: Groq batches chat completions only (its SDK's ``endpoint`` enum has nothing else).
BATCH_ENDPOINTS = frozenset({CHAT_COMPLETIONS})

#: Groq's SDK says an input file holds "up to 100 MB"; later notes say 50,000 lines and 200 MB.
#: Both bounds are kept, each at its smaller reading (decimal megabytes).
GROQ_LIMITS = BatchLimits(max_requests=50_000, max_bytes=100_000_000)

#: "Durations from 24h to 7d are supported" (Groq's SDK): every window Groq takes, written in
#: hours or days, with its length in seconds. The default is OpenAI's only window.
COMPLETION_WINDOWS: Mapping[str, int] = MappingProxyType(
    {f"{hours}h": hours * 3600 for hours in range(24, 7 * 24 + 1)}
    | {f"{days}d": days * 24 * 3600 for days in range(1, 7 + 1)}
)
DEFAULT_COMPLETION_WINDOW = "24h"
COMPLETION_WINDOWS_DESCRIPTION = (
    "a duration from '24h' to '7d' written in hours or days (for example '24h', '48h', '3d', '7d')"
)

#: Groq's OpenAI-compatibility page (console.groq.com/docs/openai, "Currently Unsupported
#: OpenAI Features"): "The following fields are currently not supported and will result in a
#: 400 error if they are supplied: logprobs, logit_bias, top_logprobs, messages[].name. If N is
#: supplied, it must be equal to 1."
_UNSUPPORTED = "Groq answers it with HTTP 400 (its OpenAI-compatibility page)"

#: Parameters Groq refuses, for every model: the core refuses them before anything is written.
MODEL_RULES: tuple[ModelRule, ...] = (
    ModelRule(
        models=("*",),
        param="n",
        minimum=1,
        maximum=1,
        reason="takes only n=1 on Groq (its API answers other values with HTTP 400)",
    ),
    *(
        ModelRule(
            models=("*",), param=param, reason=f"does not take {param} on Groq: {_UNSUPPORTED}"
        )
        for param in ("logprobs", "top_logprobs", "logit_bias")
    ),
)

#: Message keys of OpenAI's format that Groq refuses.
REFUSED_MESSAGE_KEYS: Mapping[str, str] = MappingProxyType(
    {"name": f"Groq does not take a message name: {_UNSUPPORTED}"}
)

#: Groq's structured outputs page (console.groq.com/docs/structured-outputs, "Supported
#: models"): ``response_format`` ``json_schema`` with ``strict: true`` (constrained decoding)
#: only on GPT-OSS 20B and 120B; with ``strict: false`` or no ``strict`` (best effort) also on
#: these; "for all other models, you can use JSON Object Mode". Kimi K2 Instruct is named in
#: its 0905 version, to which ``moonshotai/kimi-k2-instruct`` redirects.
STRICT_STRUCTURED_OUTPUT_MODELS: tuple[str, ...] = ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
STRUCTURED_OUTPUT_MODELS: tuple[str, ...] = (
    *STRICT_STRUCTURED_OUTPUT_MODELS,
    "openai/gpt-oss-safeguard-20b",
    "moonshotai/kimi-k2-instruct",
    "moonshotai/kimi-k2-instruct-0905",
    "meta-llama/llama-4-scout-17b-16e-instruct",
)


def api_root(url: str | None) -> str | None:
    """The root of Groq's OpenAI-compatible API for a configured URL.

    A bare host (``https://api.groq.com``, which is what the official ``groq`` SDK means by
    ``GROQ_BASE_URL``) gets Groq's ``/openai/v1``; a URL with a path (the OpenAI-compatible
    spelling ``https://api.groq.com/openai/v1``, a proxy) is used as given.
    """
    if not url:
        return url
    if urlsplit(url).path.strip("/"):
        return url
    return url.rstrip("/") + API_PATH

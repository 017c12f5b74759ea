"""The Groq batch provider: OpenAI's provider, pointed at Groq and told what Groq does differently.

Groq's Batch API is OpenAI's (files, batches, JSONL in and out) at
``https://api.groq.com/openai/v1``, so every vendor call, the wire format, error translation and
the search for a batch whose create answer was lost come from
:class:`batchcore_openai.OpenAIBatchProvider`. What is Groq's own is declared here, through that
provider's class attributes, as data (:mod:`batchcore_groq._mapping`): the key and URL
variables, models, the one endpoint, limits, the completion windows (24 hours to 7 days), no
OpenAI account headers, and what of OpenAI's request format Groq refuses (``logprobs``,
``top_logprobs``, ``logit_bias``, ``n`` other than 1, a message ``name``, structured output on
the models without it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from batchcore.plugin import BatchLimits, ModelRule, QueueLimit
from batchcore_groq import _mapping as groq
from batchcore_openai import OpenAIBatchProvider

__all__ = ["GroqBatchProvider"]


class GroqBatchProvider(OpenAIBatchProvider):
    """Batches on Groq's Batch API.

    Config: ``api_key`` (or ``GROQ_API_KEY``), ``base_url`` (or ``GROQ_BASE_URL``; a bare host
    gets ``/openai/v1``), ``completion_window`` (``"24h"`` to ``"7d"``, default ``"24h"``),
    ``timeout``, ``max_retries``, ``models`` (extra model names or patterns),
    ``max_requests_per_batch`` (50,000), ``max_bytes_per_batch`` (100,000,000), ``workdir``.
    """

    PROVIDER_NAME = "groq"
    DEFAULT_LIMITS: ClassVar[BatchLimits] = groq.GROQ_LIMITS
    SUPPORTED_MODELS: ClassVar[tuple[str, ...]] = groq.GROQ_MODEL_PATTERNS
    # OpenAI's organization and project name an OpenAI account: refused here, and never sent.
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"completion_window"})
    OPENAI_ACCOUNT_HEADERS: ClassVar[bool] = False
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("GROQ_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("GROQ_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = groq.DEFAULT_BASE_URL
    SANDBOX: ClassVar[str | None] = "batchcore_groq.testing:sandbox"
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = groq.MODEL_RULES
    REFUSED_MESSAGE_KEYS: ClassVar[Mapping[str, str]] = groq.REFUSED_MESSAGE_KEYS
    STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = groq.STRUCTURED_OUTPUT_MODELS
    STRICT_STRUCTURED_OUTPUT_MODELS: ClassVar[tuple[str, ...] | None] = (
        groq.STRICT_STRUCTURED_OUTPUT_MODELS
    )
    # No Groq config changes an answer: the completion window only says how long Groq may
    # take (the base URL in force is fingerprinted by the core).
    ANSWER_CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset()
    # Groq's Batch objects carry the create's metadata (in retrieve and list alike), so a lost
    # create is found by its key; the search also matches the uploaded file, which is unique to
    # one payload, should the metadata ever be missing.
    IDEMPOTENT_SUBMIT = True
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = groq.BATCH_ENDPOINTS
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("groq",)
    COMPLETION_WINDOWS: ClassVar[frozenset[str]] = frozenset(groq.COMPLETION_WINDOWS)
    DEFAULT_COMPLETION_WINDOW: ClassVar[str] = groq.DEFAULT_COMPLETION_WINDOW
    COMPLETION_WINDOWS_DESCRIPTION: ClassVar[str | None] = groq.COMPLETION_WINDOWS_DESCRIPTION
    # Groq documents no batch queue limit ("no impact to your standard rate limits", "multiple
    # batch jobs can be submitted at once"), so none is declared and batches are never held
    # back. Should Groq ever fail a batch for capacity with OpenAI's token_limit_exceeded, the
    # inherited CAPACITY_ERROR_CODES has its requests wait for room without losing an attempt.
    QUEUE_LIMIT: ClassVar[QueueLimit | None] = None

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.base_url = groq.api_root(self.base_url)

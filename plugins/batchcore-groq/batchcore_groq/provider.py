"""The Groq batch provider: OpenAI's provider, pointed at Groq and told what Groq does differently.

Groq's Batch API is OpenAI's (files, batches, JSONL in and out) at
``https://api.groq.com/openai/v1``, so every vendor call, the wire format, error translation and
the search for a batch whose create answer was lost come from
:class:`batchcore_openai.OpenAIBatchProvider`. What is Groq's own is declared here as data
(:mod:`batchcore_groq._mapping`): the key and URL variables, models, the one endpoint, limits,
and the completion window, which Groq lets a batch choose from 24 hours to 7 days.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import openai

from batchcore.plugin import BatchHandle, BatchLimits, BatchPayload, ModelRule
from batchcore_groq import _mapping as groq
from batchcore_openai._mapping import IDEMPOTENCY_METADATA_KEY
from batchcore_openai.provider import OpenAIBatchProvider

__all__ = ["GroqBatchProvider"]

log = logging.getLogger("batchcore_groq")

#: The openai SDK fills these from OPENAI_ORG_ID / OPENAI_PROJECT_ID: they name an OpenAI
#: account and must not reach another vendor.
_NO_OPENAI_ACCOUNT = cast(
    Mapping[str, str], {"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()}
)


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
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset({"completion_window"})
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("GROQ_API_KEY",)
    BASE_URL_ENV: ClassVar[tuple[str, ...]] = ("GROQ_BASE_URL",)
    DEFAULT_BASE_URL: ClassVar[str | None] = groq.DEFAULT_BASE_URL
    SANDBOX: ClassVar[str | None] = "batchcore_groq.testing:sandbox"
    MODEL_RULES: ClassVar[tuple[ModelRule, ...]] = groq.MODEL_RULES
    # Groq's Batch objects carry the create's metadata (in retrieve and list alike), so a lost
    # create is found by its key; the search also matches the uploaded file, which is unique to
    # one payload, should the metadata ever be missing.
    IDEMPOTENT_SUBMIT = True
    SUPPORTED_ENDPOINTS: ClassVar[frozenset[str]] = groq.BATCH_ENDPOINTS
    PROVIDER_PARAMS_KEYS: ClassVar[tuple[str, ...]] = ("groq",)
    #: The completion window when config names none.
    DEFAULT_COMPLETION_WINDOW: ClassVar[str] = groq.DEFAULT_COMPLETION_WINDOW

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.base_url = groq.api_root(self.base_url)
        self.completion_window = groq.read_completion_window(
            self.config, self.DEFAULT_COMPLETION_WINDOW
        )

    def create_batch(
        self, payload: BatchPayload, *, staged: Mapping[str, Any], idempotency_key: str
    ) -> BatchHandle:
        """Create the batch with the configured completion window, its metadata carrying
        *idempotency_key*. Never repeated here when the answer is lost: the core finds the
        batch by its key instead."""
        batch = self._call(
            "create batch",
            lambda sdk: sdk.batches.with_raw_response.create(
                input_file_id=str(staged.get("input_file_id")),
                endpoint=cast(Any, payload.endpoint),
                completion_window=cast(Any, self.completion_window),
                metadata={IDEMPOTENCY_METADATA_KEY: idempotency_key},
            ),
            idempotent=False,
        )
        return self._handle(batch)

    def _build_client(self) -> openai.OpenAI:
        if os.environ.get("OPENAI_CUSTOM_HEADERS"):
            log.warning(
                "OPENAI_CUSTOM_HEADERS is set: the openai SDK adds those headers to every call, "
                "including this provider's calls to Groq"
            )
        return openai.OpenAI(
            api_key=self.require_api_key(),
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # retries are the core's, the same for every provider
            default_headers=_NO_OPENAI_ACCOUNT,
        )

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "unset"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, "
            f"completion_window={self.completion_window!r}, api_key={key})"
        )

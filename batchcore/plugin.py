"""Everything a provider author may use, in one import.

A provider (first- or third-party) imports from here and nowhere else in batchcore, so the rest
of the core can change without breaking plugins::

    from batchcore.plugin import BaseBatchProvider, BatchLimits, HttpTransport, hookimpl

What is here, by use:

* the contract: :class:`BaseBatchProvider`, :class:`SubmitJournal`, :class:`ProviderSpec`,
  :data:`hookimpl`;
* the data: requests, payloads, handles, statuses, results, errors of a request, usage, limits,
  endpoint names (:data:`CHAT_COMPLETIONS`, ...), :data:`SAFE_CUSTOM_ID`, :func:`parse_timestamp`;
  payload framings (:data:`JSONL`, :func:`JSON_ARRAY_FIELD`);
* talking to the vendor: :class:`HttpTransport` (raw HTTP with the core's retries and
  classification; ``BaseBatchProvider.transport()`` builds the provider's),
  :func:`retry_call` / :func:`retry_iter` and :class:`RetryPolicy` (for SDK calls),
  :func:`error_from_response` and :func:`transport_failure` (an SDK's exception to the core's),
  :func:`result_error` (a per-request failure), :func:`iter_lines` and
  :func:`iter_line_batches` (streamed JSONL),
  :class:`MultipartUpload` (a form streamed from disk; :meth:`HttpTransport.upload`);
* reading results: :func:`read_result_lines` and :func:`decode_result_line` (the one rule for
  a results line that cannot be read), :func:`input_custom_id`, :func:`result_from_openai_line` with
  :class:`OpenAILineDialect` (OpenAI's output and error lines, which OpenAI-compatible vendors
  write too), :func:`openai_answer_parts`, :func:`openai_usage`, :func:`openai_error_fields`,
  :class:`ResultErrorBuilder`;
* configuration: :class:`Secret`, ``read_*`` helpers, :func:`env_first`;
* every exception class.

Names load on first use (as in the top-level package), so a plugin's entry-point module that
imports ``hookimpl`` and ``ProviderSpec`` from here stays as cheap to discover as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchcore.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    BatchcoreError,
    ConfigurationError,
    DuplicateProviderError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    OverloadedError,
    PermissionDeniedError,
    PluginLoadError,
    PluginLoadWarning,
    ProviderConnectionError,
    ProviderError,
    ProviderNotFoundError,
    ProviderPermanentError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderTransientError,
    QueueFullError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ResponseLostError,
    ResponseTimeoutError,
    ResultsNotReadyError,
    StoreError,
    UnsupportedModelError,
    UnsupportedOperationError,
    redact,
)
from batchcore.hookspecs import hookimpl
from batchcore.provider_spec import ProviderSpec

if TYPE_CHECKING:
    from batchcore.classify import (
        RETRYABLE_RESULT_CODES,
        error_from_response,
        parse_retry_after,
        result_error,
        transport_failure,
    )
    from batchcore.config import (
        Secret,
        env_first,
        read_bool,
        read_float,
        read_int,
        read_str,
        read_str_list,
    )
    from batchcore.frozen import FrozenDict, thaw
    from batchcore.http import HttpTransport, MultipartUpload
    from batchcore.jsonl import iter_line_batches, iter_lines
    from batchcore.models import (
        CHAT_COMPLETIONS,
        COMPLETIONS,
        EMBEDDINGS,
        MODERATIONS,
        RESPONSES,
        SAFE_CUSTOM_ID,
        BatchError,
        BatchHandle,
        BatchLimits,
        BatchPayload,
        BatchRequest,
        BatchResult,
        BatchState,
        BatchStatus,
        QueueLimit,
        ResultError,
        ResultStatus,
        Usage,
        parse_timestamp,
    )
    from batchcore.payloads import JSON_ARRAY_FIELD, JSONL, PayloadFraming
    from batchcore.provider import COMMON_CONFIG_KEYS, BaseBatchProvider, SubmitJournal
    from batchcore.request_rules import ModelRule, RequestExtensions
    from batchcore.results import (
        OPENAI_CANCELLED_CODES,
        OPENAI_LINES,
        OpenAILineDialect,
        ResultErrorBuilder,
        decode_result_line,
        input_custom_id,
        openai_answer_parts,
        openai_error_fields,
        openai_incomplete,
        openai_usage,
        read_result_lines,
        result_from_openai_line,
    )
    from batchcore.retry import RetryPolicy, retry_call, retry_iter

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "RETRYABLE_RESULT_CODES",
            "error_from_response",
            "parse_retry_after",
            "result_error",
            "transport_failure",
        ),
        "batchcore.classify",
    ),
    **dict.fromkeys(
        (
            "Secret",
            "env_first",
            "read_bool",
            "read_float",
            "read_int",
            "read_str",
            "read_str_list",
        ),
        "batchcore.config",
    ),
    "FrozenDict": "batchcore.frozen",
    "thaw": "batchcore.frozen",
    "HttpTransport": "batchcore.http",
    "MultipartUpload": "batchcore.http",
    "iter_line_batches": "batchcore.jsonl",
    "iter_lines": "batchcore.jsonl",
    **dict.fromkeys(
        (
            "CHAT_COMPLETIONS",
            "COMPLETIONS",
            "EMBEDDINGS",
            "MODERATIONS",
            "ModelRule",
            "RESPONSES",
            "SAFE_CUSTOM_ID",
            "BatchError",
            "BatchHandle",
            "BatchLimits",
            "BatchPayload",
            "BatchRequest",
            "BatchResult",
            "BatchState",
            "BatchStatus",
            "QueueLimit",
            "ResultError",
            "ResultStatus",
            "Usage",
            "parse_timestamp",
        ),
        "batchcore.models",
    ),
    **dict.fromkeys(("JSON_ARRAY_FIELD", "JSONL", "PayloadFraming"), "batchcore.payloads"),
    **dict.fromkeys(
        ("COMMON_CONFIG_KEYS", "BaseBatchProvider", "SubmitJournal"), "batchcore.provider"
    ),
    **dict.fromkeys(("ModelRule", "RequestExtensions"), "batchcore.request_rules"),
    **dict.fromkeys(
        (
            "OPENAI_CANCELLED_CODES",
            "OPENAI_LINES",
            "OpenAILineDialect",
            "ResultErrorBuilder",
            "decode_result_line",
            "input_custom_id",
            "openai_answer_parts",
            "openai_error_fields",
            "openai_incomplete",
            "openai_usage",
            "read_result_lines",
            "result_from_openai_line",
        ),
        "batchcore.results",
    ),
    **dict.fromkeys(("RetryPolicy", "retry_call", "retry_iter"), "batchcore.retry"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchcore.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CHAT_COMPLETIONS",
    "COMMON_CONFIG_KEYS",
    "COMPLETIONS",
    "EMBEDDINGS",
    "JSONL",
    "JSON_ARRAY_FIELD",
    "MODERATIONS",
    "OPENAI_CANCELLED_CODES",
    "OPENAI_LINES",
    "RESPONSES",
    "RETRYABLE_RESULT_CODES",
    "SAFE_CUSTOM_ID",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BaseBatchProvider",
    "BatchError",
    "BatchHandle",
    "BatchLimits",
    "BatchPayload",
    "BatchRequest",
    "BatchResult",
    "BatchState",
    "BatchStatus",
    "BatchcoreError",
    "ConfigurationError",
    "DuplicateProviderError",
    "FrozenDict",
    "HttpTransport",
    "InvalidRequestError",
    "ModelRule",
    "MultipartUpload",
    "NotFoundError",
    "OpenAILineDialect",
    "OutcomeUnknownError",
    "OverloadedError",
    "PayloadFraming",
    "PermissionDeniedError",
    "PluginLoadError",
    "PluginLoadWarning",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderPermanentError",
    "ProviderServerError",
    "ProviderSpec",
    "ProviderTimeoutError",
    "ProviderTransientError",
    "QueueFullError",
    "QueueLimit",
    "QuotaExceededError",
    "RateLimitError",
    "RequestExtensions",
    "RequestTooLargeError",
    "ResponseLostError",
    "ResponseTimeoutError",
    "ResultError",
    "ResultErrorBuilder",
    "ResultStatus",
    "ResultsNotReadyError",
    "RetryPolicy",
    "Secret",
    "StoreError",
    "SubmitJournal",
    "UnsupportedModelError",
    "UnsupportedOperationError",
    "Usage",
    "decode_result_line",
    "env_first",
    "error_from_response",
    "hookimpl",
    "input_custom_id",
    "iter_line_batches",
    "iter_lines",
    "openai_answer_parts",
    "openai_error_fields",
    "openai_incomplete",
    "openai_usage",
    "parse_retry_after",
    "parse_timestamp",
    "read_bool",
    "read_float",
    "read_int",
    "read_result_lines",
    "read_str",
    "read_str_list",
    "redact",
    "result_error",
    "result_from_openai_line",
    "retry_call",
    "retry_iter",
    "thaw",
    "transport_failure",
]

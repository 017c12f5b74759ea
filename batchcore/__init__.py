"""batchcore: one contract, one request format and one job runner over every LLM batch API.

Importing this package imports no vendor SDK and does no discovery; the registry discovers
installed providers on its first ``list()`` or ``get()``.
"""

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
)
from batchcore.hookspecs import hookimpl
from batchcore.provider_spec import ProviderSpec
from batchcore.registry import BatchProviderRegistry, batch_provider_registry

if TYPE_CHECKING:
    from batchcore.config import Secret
    from batchcore.models import (
        BatchError,
        BatchHandle,
        BatchLimits,
        BatchPayload,
        BatchRequest,
        BatchResult,
        BatchState,
        BatchStatus,
        JobEvent,
        JobEventKind,
        QueueLimit,
        ResultError,
        ResultStatus,
        Usage,
    )
    from batchcore.provider import BaseBatchProvider
    from batchcore.structured import StructuredOutputError

# Names whose modules load on first use (PEP 562). Discovering and listing providers needs none
# of them, and the attrs classes among them are most of the core's import time.
_LAZY = {
    "Secret": "batchcore.config",
    "StructuredOutputError": "batchcore.structured",
    "BaseBatchProvider": "batchcore.provider",
    **dict.fromkeys(
        (
            "BatchError",
            "BatchHandle",
            "BatchLimits",
            "BatchPayload",
            "BatchRequest",
            "BatchResult",
            "BatchState",
            "BatchStatus",
            "JobEvent",
            "JobEventKind",
            "QueueLimit",
            "ResultError",
            "ResultStatus",
            "Usage",
        ),
        "batchcore.models",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BaseBatchProvider",
    "BatchError",
    "BatchHandle",
    "BatchLimits",
    "BatchPayload",
    "BatchProviderRegistry",
    "BatchRequest",
    "BatchResult",
    "BatchState",
    "BatchStatus",
    "BatchcoreError",
    "ConfigurationError",
    "DuplicateProviderError",
    "InvalidRequestError",
    "JobEvent",
    "JobEventKind",
    "NotFoundError",
    "OutcomeUnknownError",
    "OverloadedError",
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
    "RequestTooLargeError",
    "ResponseLostError",
    "ResponseTimeoutError",
    "ResultError",
    "ResultStatus",
    "ResultsNotReadyError",
    "Secret",
    "StoreError",
    "StructuredOutputError",
    "UnsupportedModelError",
    "UnsupportedOperationError",
    "Usage",
    "__version__",
    "batch_provider_registry",
    "hookimpl",
]

"""batchcore: one contract, one request format and one job runner over every LLM batch API.

Importing this package imports no vendor SDK and does no discovery; the registry discovers
installed providers on its first ``list()`` or ``get()``.
"""

from batchcore.config import Secret
from batchcore.errors import (
    AuthenticationError,
    BatchcoreError,
    ConfigurationError,
    DuplicateProviderError,
    InvalidRequestError,
    NotFoundError,
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
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    UnsupportedModelError,
    UnsupportedOperationError,
)
from batchcore.hookspecs import hookimpl
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
    ResultError,
    ResultStatus,
    Usage,
)
from batchcore.provider import BaseBatchProvider
from batchcore.provider_spec import ProviderSpec
from batchcore.registry import BatchProviderRegistry, batch_provider_registry

__version__ = "0.1.0"

__all__ = [
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
    "QuotaExceededError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResultError",
    "ResultStatus",
    "Secret",
    "UnsupportedModelError",
    "UnsupportedOperationError",
    "Usage",
    "__version__",
    "batch_provider_registry",
    "hookimpl",
]

"""Exceptions of the Anthropic provider.

:class:`ResultsNotReadyError` is the core's (``fetch_results`` before the batch ended), named
here too so code written against earlier versions keeps importing it from this package.
"""

from __future__ import annotations

from batchcore.plugin import ProviderTransientError, ResultsNotReadyError

__all__ = ["BatchNotVisibleYetError", "ResultsNotReadyError"]


class BatchNotVisibleYetError(ProviderTransientError):
    """HTTP 404 for a batch created moments ago.

    Anthropic's API can answer 404 for a few seconds after a batch is created, until the new
    batch has propagated. Within the provider's ``not_found_grace_seconds`` of submitting, a 404
    is this (transient: retry later); after it, a 404 stays a permanent
    :class:`~batchcore.NotFoundError`.
    """

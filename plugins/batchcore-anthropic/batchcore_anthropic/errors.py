"""Exceptions specific to the Anthropic provider."""

from __future__ import annotations

from batchcore.errors import ProviderPermanentError, ProviderTransientError

__all__ = ["BatchNotVisibleYetError", "ResultsNotReadyError"]


class BatchNotVisibleYetError(ProviderTransientError):
    """HTTP 404 for a batch created moments ago.

    Anthropic's API can answer 404 for a few seconds after a batch is created, until the new
    batch has propagated. Within the provider's ``not_found_grace_seconds`` of submitting, a 404
    is this (transient: retry later); after it, a 404 stays a permanent
    :class:`~batchcore.NotFoundError`.
    """


class ResultsNotReadyError(ProviderPermanentError):
    """``fetch_results`` was called before the batch ended: Anthropic publishes results only
    once processing has ended (completed, expired or cancelled). Poll until the status is
    terminal, then fetch."""

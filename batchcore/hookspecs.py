"""Hook specifications: the only functions a plugin module implements.

A plugin module (the target of a ``batch_providers`` entry point) implements hooks with
:data:`hookimpl`. Hooks only *register* things; behaviour lives on provider classes. New
arguments may be added to these specs over time; pluggy lets old implementations ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Union

import pluggy

if TYPE_CHECKING:
    from batchcore.models import JobEvent
    from batchcore.provider import BaseBatchProvider
    from batchcore.provider_spec import ProviderSpec

    ProviderOffer = Union[type[BaseBatchProvider], ProviderSpec]  # noqa: UP007 - runs on 3.10

__all__ = ["PROJECT_NAME", "batchcore_job_event", "batchcore_providers", "hookimpl", "hookspec"]

PROJECT_NAME = "batchcore"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def batchcore_providers() -> Iterable[ProviderOffer]:
    """Offer batch providers.

    Called once per plugin when the registry first loads (on the first ``list()`` or ``get()``).
    Return an iterable whose items are either :class:`~batchcore.BaseBatchProvider` subclasses or
    :class:`~batchcore.ProviderSpec` objects naming a class by import path. Prefer specs: they
    keep the plugin module free of vendor SDK imports, so listing providers imports nothing
    heavy; the class is imported on the first ``get()`` of its name.

    Every implementation is called; results are collected per plugin, so one plugin returning
    garbage is recorded as a load failure without affecting the others.
    """
    raise NotImplementedError


@hookspec
def batchcore_job_event(event: JobEvent) -> None:
    """Observe a job: called by the runner for every :class:`~batchcore.JobEvent` (a batch was
    submitted, changed status, had results fetched, requests were retried, the job finished).

    Called synchronously in the runner's thread, for every registered implementation; return
    values are ignored. Keep it quick. An exception raised here is logged and swallowed: an
    observer can never break a job.
    """

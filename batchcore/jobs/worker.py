"""``batchcore worker``: a stateless process that drives every job of a shared store.

Workers share nothing but the store. Each claims one step at a time (submit, poll, fetch or
cancel one batch, or plan/finish one job) under a lease its heartbeat renews, does it through
the runner's own state machine, and releases it. A worker killed at any instant loses nothing:
its claims expire and another worker takes the steps over; a submit it left half done is
reconciled by the provider (never a second batch), a fetch is read again (never a second
result). API keys come from each worker's environment, never from the store. See
``docs/scaling.md`` for the design and the failures it covers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from batchcore.errors import BatchcoreError
from batchcore.jobs.lease import LeaseKeeper
from batchcore.jobs.runner import BatchRunner, Observer
from batchcore.jobs.store import JobStore, owner_token
from batchcore.provider import BaseBatchProvider
from batchcore.registry import BatchProviderRegistry, batch_provider_registry

__all__ = ["Worker"]

log = logging.getLogger("batchcore.worker")


class Worker:
    """Drives the jobs of the store at *location* (a path or a PostgreSQL URL).

    *concurrency* threads each claim and do steps. With *burst*, :meth:`run` returns once no
    job in the store has anything left for a worker to do (every job finished, stopped, or held
    by its own driver), as RQ's burst mode does; otherwise it runs until :meth:`stop` (or
    SIGTERM in the command). *claim_seconds* is how long a claim outlives a silent worker.
    *submit_concurrency*: at most this many of its threads upload and create batches at once
    (the others may poll and fetch meanwhile).
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        registry: BatchProviderRegistry | None = None,
        concurrency: int = 1,
        submit_concurrency: int = 4,
        burst: bool = False,
        claim_seconds: float = 60.0,
        idle_sleep: float = 1.0,
        config: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        observers: Sequence[Observer] = (),
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if submit_concurrency < 1:
            raise ValueError("submit_concurrency must be at least 1")
        self.location = location
        self.registry = registry or batch_provider_registry
        self.concurrency = concurrency
        self.submit_concurrency = submit_concurrency
        self._submit_gate = threading.BoundedSemaphore(submit_concurrency)
        self.burst = burst
        self.claim_seconds = claim_seconds
        self.idle_sleep = idle_sleep
        self.config = dict(config or {})
        self.clock = clock
        self.observers = list(observers)
        self.name = name or owner_token()
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self.steps = 0
        self._count_lock = threading.Lock()
        self.errors: list[BaseException] = []

    def _pause(self, seconds: float) -> None:
        self._sleep(seconds)

    def stop(self) -> None:
        """Finish the steps under way, then return from :meth:`run`."""
        self._stopping.set()

    def run(self) -> int:
        """Claim and do steps until stopped (or, in burst mode, until nothing is left).
        Returns how many steps were done."""
        threads = [
            threading.Thread(target=self._serve, args=(index,), name=f"batchcore-worker-{index}")
            for index in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except BaseException:
            self.stop()
            for thread in threads:
                thread.join()
            raise
        if self.errors:
            raise self.errors[0]
        return self.steps

    def _serve(self, index: int) -> None:
        me = f"{self.name}/{index}" if self.concurrency > 1 else self.name
        try:
            with JobStore(self.location, clock=self.clock) as store:
                self._serve_with(store, me)
        except BaseException as error:  # surfaced by run()
            self.errors.append(error)
            self.stop()

    def _serve_with(self, store: JobStore, me: str) -> None:
        runner = BatchRunner(
            store,
            registry=self.registry,
            clock=self.clock,
            sleep=self._pause,
            observers=self.observers,
            lease_seconds=self.claim_seconds,
            heartbeat=False,
            me=me,
        )
        runner.submit_gate = self._submit_gate  # shared by this worker's threads
        renewer = store.reopen()
        keeper = LeaseKeeper(
            lambda: renewer.renew_claims(me, seconds=self.claim_seconds) >= 0,
            interval=self.claim_seconds / 4,
        ).start()
        providers: dict[bytes, BaseBatchProvider] = {}
        served = self.served_providers()
        try:
            while not self._stopping.is_set():
                claim = store.claim_next(
                    me, seconds=self.claim_seconds, now=self.clock(), providers=served
                )
                if claim is None:
                    if store.release_dead_claims():
                        continue  # a killed process's steps are free now
                    if self.burst and not store.has_worker_jobs(served):
                        return
                    due = store.next_due(now=self.clock())
                    wait = self.idle_sleep if due is None else max(due - self.clock(), 0.0)
                    self._sleep(min(wait, self.idle_sleep))
                    continue
                job = store.job(claim.job_id)
                provider = self._provider(providers, runner, job.provider, job.config)
                runner.work(claim, provider)
                with self._count_lock:
                    self.steps += 1
        finally:
            keeper.stop()
            renewer.close()
            for provider in providers.values():
                provider.close()

    def served_providers(self) -> list[str]:
        """The installed providers this worker can drive: those whose API key its environment
        (or *config*) holds, and those that need none. Jobs of other providers are left to
        workers that have their keys."""
        served = []
        for name in self.registry.list():
            try:
                cls = self.registry.get(name)
                instance = cls(config=dict(self.config))
            except Exception as error:  # a broken plugin is skipped here, not fatal
                log.warning(
                    "worker %s: provider %r cannot be built here (%s)", self.name, name, error
                )
                continue
            try:
                if instance.api_key is not None or not cls.API_KEY_ENV:
                    served.append(name)
            finally:
                instance.close()
        if not served:
            log.warning("worker %s: no provider has an API key here; nothing to do", self.name)
        return served

    def _provider(
        self,
        cache: dict[bytes, BaseBatchProvider],
        runner: BatchRunner,
        name: str,
        config: Mapping[str, Any],
    ) -> BaseBatchProvider:
        """One provider per (provider, recorded config), reused across steps (its HTTP
        connections stay open); keys come from this worker's environment and *config*."""
        key = orjson.dumps([name, config], option=orjson.OPT_SORT_KEYS)
        provider = cache.get(key)
        if provider is None:
            try:
                provider = runner.build_provider(name, {**config, **self.config})
            except BatchcoreError:
                raise
            cache[key] = provider
        return provider

"""The job runner for asyncio code: FastAPI handlers, notebooks, anything with a running loop.

::

    from batchcore.aio import AsyncBatchRunner

    async with AsyncBatchRunner() as runner:             # the same store as BatchRunner
        job = await runner.run("openai", requests, on_progress=print)
        async for result in runner.results(job.id):
            print(result.custom_id, result.text)

In a notebook (the loop is already running), ``await runner.run(...)`` in a cell works as it
is. In a FastAPI app, submit in a handler and read the results in another::

    runner = AsyncBatchRunner()

    @app.post("/jobs")
    async def create(body: list[dict]) -> dict:
        job_id = await runner.submit("anthropic", map(BatchRequest.from_json, body))
        return {"id": job_id}

    @app.get("/jobs/{job_id}")
    async def status(job_id: str) -> dict:
        return (await runner.info(job_id)).to_dict()

:class:`AsyncBatchRunner` has the semantics of :class:`~batchcore.jobs.BatchRunner` (it is one
runner's state machine, driven from threads): ``create``, ``submit``, ``run``, ``drive``,
``resume``, ``cancel``, ``resolve``, ``info``, ``jobs``, ``estimate``, ``cost`` and
``settings`` are coroutines, ``results`` and ``parsed_results`` async iterators that stream
from the store in chunks. Store and provider calls run in worker threads; the loop is never
blocked. A job is driven in a thread of its own (so many waiting jobs never starve the loop's
executor), one drive per job at a time: a second ``drive``/``resume`` of a job this runner is
already driving awaits the same drive.

Cancelling the task that awaits ``run``, ``drive`` or ``resume`` is Ctrl-C: the job is kept in
the store as it is, its driving thread stops at its next step (a sleep between polls ends at
once) and gives the job up; ``resume`` continues it, here or in any other process. (A
``create`` in progress is not interrupted: it finishes in its thread; pass ``job_id`` to know
the job.) ``on_progress`` callbacks (plain functions or coroutine functions) get a
:class:`~batchcore.jobs.Progress` on the loop of the task that asked for them, never in a
worker thread. ``await runner.aclose()`` (or ``async with``) stops this runner's drives the
same way, waits for their threads and closes the store it opened.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import itertools
import logging
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from batchcore.estimate import JobCost, JobEstimate
from batchcore.jobs.errors import JobStoppedError
from batchcore.jobs.info import JobInfo, Progress
from batchcore.jobs.runner import BatchRunner
from batchcore.jobs.settings import JobSettings
from batchcore.jobs.store import JobStore
from batchcore.models import BatchRequest, BatchResult, JobEvent
from batchcore.provider import BaseBatchProvider
from batchcore.structured import StructuredOutputError

__all__ = ["AsyncBatchRunner", "ProgressCallback"]

log = logging.getLogger("batchcore.jobs")
T = TypeVar("T")

#: What ``on_progress`` takes: a function or a coroutine function of a Progress.
ProgressCallback = Callable[[Progress], "Awaitable[object] | object"]
Requests = Iterable[BatchRequest] | AsyncIterable[BatchRequest]

#: How many results (or requests) cross from a worker thread to the loop at a time.
_CHUNK = 1000
#: How long interpreter exit waits for drives to give their jobs up.
_EXIT_GRACE_SECONDS = 10.0


class _Stopped(BaseException):
    """Raised in a driving thread whose awaiting tasks were all cancelled. A BaseException,
    like KeyboardInterrupt: the runner keeps the job as it is, and records no error."""


class _Listener:
    def __init__(self, loop: asyncio.AbstractEventLoop, callback: ProgressCallback) -> None:
        self.loop = loop
        self.callback = callback


class _Drive:
    """One job being driven in a thread, and the tasks awaiting it."""

    def __init__(self, job_id: str, wait: bool) -> None:
        self.job_id = job_id
        self.wait = wait
        self.future: concurrent.futures.Future[JobInfo] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()  # awaiters' cancels never cancel it
        self.stop = threading.Event()
        self.waiters = 0
        self.listeners: list[_Listener] = []
        self.thread: threading.Thread | None = None

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped

    def publish(self, progress: Progress) -> None:
        # The runner's on_progress sees every job it drives at the moment: keep this one's.
        if progress.job_id != self.job_id:
            return
        for listener in list(self.listeners):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody listens
                listener.loop.call_soon_threadsafe(_deliver, listener.callback, progress)


_local = threading.local()
_live: weakref.WeakSet[_Drive] = weakref.WeakSet()
_background: set[asyncio.Task[Any]] = set()


def _current() -> _Drive | None:
    drive: _Drive | None = getattr(_local, "drive", None)
    return drive


def _deliver(callback: ProgressCallback, progress: Progress) -> None:
    try:
        outcome = callback(progress)
    except Exception:
        log.exception("on_progress callback %r failed", callback)
        return
    if inspect.isawaitable(outcome):
        task = asyncio.ensure_future(outcome)
        _background.add(task)
        task.add_done_callback(_finished_callback)


def _finished_callback(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("on_progress callback failed", exc_info=task.exception())


@atexit.register
def _stop_drives_at_exit() -> None:
    """Give every driven job up cleanly when the interpreter exits (its threads are daemons)."""
    drives = list(_live)
    for drive in drives:
        drive.stop.set()
    deadline = time.monotonic() + _EXIT_GRACE_SECONDS
    for drive in drives:
        if drive.thread is not None:
            drive.thread.join(max(deadline - time.monotonic(), 0.0))


class AsyncBatchRunner:
    """:class:`~batchcore.jobs.BatchRunner` for asyncio (see the module docstring).

    Takes the store and every keyword argument of ``BatchRunner`` (``registry``, ``poll``,
    ``clock``, ``sleep``, ``observers``, ...), or an existing *runner* to drive (its ``sleep``
    is wrapped, and an observer added, so a cancelled drive stops at its next step).
    """

    def __init__(
        self,
        store: JobStore | str | Path | None = None,
        *,
        runner: BatchRunner | None = None,
        **options: Any,
    ) -> None:
        if runner is not None and (store is not None or options):
            raise TypeError("give either runner= or the store and options to build one")
        self._owns_store = runner is None and not isinstance(store, JobStore)
        if runner is None:
            runner = BatchRunner(store, **options)
        self.runner = runner
        self._sleep_between_steps = runner.sleep
        runner.sleep = self._sleep
        runner.observers.insert(0, self._stop_if_asked)
        self._drives: dict[str, _Drive] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def store(self) -> JobStore:
        return self.runner.store

    # -- jobs ------------------------------------------------------------------------------

    async def create(
        self,
        provider: str | BaseBatchProvider,
        requests: Requests,
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
    ) -> str:
        """:meth:`BatchRunner.create <batchcore.jobs.BatchRunner.create>`; *requests* may also
        be an async iterable (read in chunks, from the loop, while the job is recorded)."""
        source = _blocking(requests, asyncio.get_running_loop())
        return await asyncio.to_thread(
            self.runner.create,
            provider,
            source,
            config=config,
            job_id=job_id,
            options=options,
            deadline=deadline,
            reuse_results=reuse_results,
            budget_usd=budget_usd,
        )

    async def submit(
        self,
        provider: str | BaseBatchProvider,
        requests: Requests,
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
    ) -> str:
        """Create a job and submit all its batches without waiting for them; the id."""
        job_id = await self.create(
            provider,
            requests,
            config=config,
            job_id=job_id,
            deadline=deadline,
            reuse_results=reuse_results,
            budget_usd=budget_usd,
        )
        await self.drive(job_id, provider=_instance(provider), config=config, wait=False)
        return job_id

    async def run(
        self,
        provider: str | BaseBatchProvider,
        requests: Requests,
        *,
        config: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        deadline: float | datetime | timedelta | None = None,
        reuse_results: bool = False,
        budget_usd: float | str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> JobInfo:
        """Create a job and drive it to the end; then read :meth:`results`."""
        job_id = await self.create(
            provider,
            requests,
            config=config,
            job_id=job_id,
            deadline=deadline,
            reuse_results=reuse_results,
            budget_usd=budget_usd,
        )
        return await self.drive(
            job_id, provider=_instance(provider), config=config, on_progress=on_progress
        )

    async def resume(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> JobInfo:
        """Continue a job from the store until it is finished."""
        return await self.drive(job_id, provider=provider, config=config, on_progress=on_progress)

    async def drive(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
        wait: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> JobInfo:
        """Move the job forward until it is finished (or, with ``wait=False``, until every
        batch is submitted), in a thread of its own. Joins this runner's drive of the job if
        one is under way. Cancelling the awaiting task stops driving and keeps the job."""
        if self._closed:
            raise RuntimeError("this AsyncBatchRunner is closed")
        while True:
            with self._lock:
                current = self._drives.get(job_id)
                if current is None:
                    current = self._start(job_id, wait, provider, config)
                if not current.stop.is_set() and (current.wait or not wait):
                    break
            # A drive that is giving the job up, or one that stops before this caller would:
            # let it end, then drive anew.
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(current.future)
        return await self._await(current, on_progress)

    async def cancel(
        self,
        job_id: str,
        *,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Cancel a job (see :meth:`BatchRunner.cancel <batchcore.jobs.BatchRunner.cancel>`):
        a drive under way collects the finished results and ends."""
        return await asyncio.to_thread(self.runner.cancel, job_id, provider=provider, config=config)

    async def resolve(
        self,
        job_id: str,
        *,
        adopt: str | None = None,
        resubmit: bool = False,
        provider: BaseBatchProvider | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> JobInfo:
        """Decide for a job that needs attention (see ``BatchRunner.resolve``)."""
        return await asyncio.to_thread(
            self.runner.resolve,
            job_id,
            adopt=adopt,
            resubmit=resubmit,
            provider=provider,
            config=config,
        )

    # -- reading -----------------------------------------------------------------------------

    async def info(self, job_id: str) -> JobInfo:
        return await asyncio.to_thread(self.runner.info, job_id)

    async def jobs(self) -> list[JobInfo]:
        return await asyncio.to_thread(self.runner.jobs)

    async def settings(self, job_id: str) -> JobSettings:
        return await asyncio.to_thread(self.runner.settings, job_id)

    async def cost(self, job_id: str) -> JobCost:
        """What the job's fetched results cost (see ``BatchRunner.cost``)."""
        return await asyncio.to_thread(self.runner.cost, job_id)

    async def estimate(
        self,
        provider: str | BaseBatchProvider,
        requests: Requests,
        *,
        config: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> JobEstimate:
        """What *requests* would cost, offline (see ``BatchRunner.estimate``)."""
        source = _blocking(requests, asyncio.get_running_loop())
        return await asyncio.to_thread(
            self.runner.estimate, provider, source, config=config, model=model
        )

    def results(self, job_id: str, *, chunk: int = _CHUNK) -> AsyncGenerator[BatchResult, None]:
        """The stored result of every request, in input order, read from the store *chunk*
        at a time in a worker thread (memory stays flat)::

            async for result in runner.results(job_id): ...
        """
        return _stream(lambda: self.runner.results(job_id), chunk)

    def parsed_results(
        self, job_id: str, model: type[T], *, chunk: int = _CHUNK
    ) -> AsyncGenerator[tuple[BatchResult, T | StructuredOutputError], None]:
        """``(result, model instance or StructuredOutputError)`` for every result of the job
        (see :func:`batchcore.structured.parse_results`), parsed in the worker thread."""
        from batchcore.structured import parse_results

        return _stream(lambda: parse_results(self.runner, job_id, model), chunk)

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this runner's drives (their jobs are kept), wait for their threads, and close
        the store if this runner opened it."""
        self._closed = True
        with self._lock:
            drives = list(self._drives.values())
        for drive in drives:
            drive.stop.set()
        for drive in drives:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(drive.future)
        if self._owns_store:
            await asyncio.to_thread(self.runner.store.close)

    async def __aenter__(self) -> AsyncBatchRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- driving threads ---------------------------------------------------------------------

    def _start(
        self,
        job_id: str,
        wait: bool,
        provider: BaseBatchProvider | None,
        config: Mapping[str, Any] | None,
    ) -> _Drive:
        drive = _Drive(job_id, wait)
        drive.thread = threading.Thread(
            target=self._drive_in_thread,
            args=(drive, provider, config),
            name=f"batchcore-drive-{job_id}",
            daemon=True,  # interpreter exit gives the job up (see _stop_drives_at_exit)
        )
        self._drives[job_id] = drive
        _live.add(drive)
        drive.thread.start()
        return drive

    def _drive_in_thread(
        self,
        drive: _Drive,
        provider: BaseBatchProvider | None,
        config: Mapping[str, Any] | None,
    ) -> None:
        _local.drive = drive
        outcome: JobInfo | BaseException
        try:
            outcome = self.runner.drive(
                drive.job_id,
                provider=provider,
                config=config,
                wait=drive.wait,
                on_progress=drive.publish,
            )
        except _Stopped:
            outcome = JobStoppedError(
                f"job {drive.job_id}: driving stopped because every task awaiting it was "
                f"cancelled; the job is kept: resume it with `batchcore resume {drive.job_id}`"
            )
        except BaseException as error:  # handed to the awaiting tasks
            outcome = error
        finally:
            _local.drive = None
            with self._lock:
                if self._drives.get(drive.job_id) is drive:
                    del self._drives[drive.job_id]
        if isinstance(outcome, BaseException):
            drive.future.set_exception(outcome)
        else:
            drive.future.set_result(outcome)

    async def _await(self, drive: _Drive, on_progress: ProgressCallback | None) -> JobInfo:
        listener = None
        if on_progress is not None:
            listener = _Listener(asyncio.get_running_loop(), on_progress)
        with self._lock:
            drive.waiters += 1
            if listener is not None:
                drive.listeners.append(listener)
        cancelled = False
        try:
            return await asyncio.wrap_future(drive.future)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            with self._lock:
                drive.waiters -= 1
                if listener is not None:
                    drive.listeners.remove(listener)
                if cancelled and not drive.waiters and not drive.future.done():
                    drive.stop.set()  # like Ctrl-C: stop at the next step, keep the job

    def _sleep(self, seconds: float) -> None:
        """The runner's sleep between steps: for a drive that was asked to stop, it raises
        before and after, and a real sleep ends as soon as the stop is asked."""
        drive = _current()
        if drive is None:
            self._sleep_between_steps(seconds)
            return
        drive.check()
        if self._sleep_between_steps is time.sleep:
            drive.stop.wait(seconds)
        else:
            self._sleep_between_steps(seconds)
        drive.check()

    def _stop_if_asked(self, event: JobEvent) -> None:
        """An observer: after each recorded step, a drive asked to stop stops."""
        drive = _current()
        if drive is not None:
            drive.check()


def _instance(provider: str | BaseBatchProvider) -> BaseBatchProvider | None:
    return provider if isinstance(provider, BaseBatchProvider) else None


def _blocking(requests: Requests, loop: asyncio.AbstractEventLoop) -> Iterable[BatchRequest]:
    """*requests* for a worker thread: an async iterable is read on *loop*, chunk by chunk."""
    if not isinstance(requests, AsyncIterable):
        return requests
    return _from_async(requests.__aiter__(), loop)


def _from_async(
    source: AsyncIterator[BatchRequest], loop: asyncio.AbstractEventLoop
) -> Iterator[BatchRequest]:
    async def take() -> tuple[list[BatchRequest], bool]:
        chunk: list[BatchRequest] = []
        try:
            while len(chunk) < _CHUNK:
                chunk.append(await source.__anext__())
        except StopAsyncIteration:
            return chunk, True
        return chunk, False

    while True:
        chunk, done = asyncio.run_coroutine_threadsafe(take(), loop).result()
        yield from chunk
        if done:
            return


async def _stream(open_source: Callable[[], Iterator[T]], chunk: int) -> AsyncGenerator[T, None]:
    """Items of a blocking iterator, fetched *chunk* at a time in a worker thread. One lock
    keeps the iterator in one thread at a time (a cancelled fetch may still be running when
    the stream is closed)."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    lock = threading.Lock()
    source = await asyncio.to_thread(open_source)

    def take() -> list[T]:
        with lock:
            return list(itertools.islice(source, chunk))

    def close() -> None:
        with lock:
            closing = getattr(source, "close", None)
            if closing is not None:
                closing()

    try:
        while True:
            items = await asyncio.to_thread(take)
            for item in items:
                yield item
            if len(items) < chunk:
                return
    finally:
        await asyncio.to_thread(close)

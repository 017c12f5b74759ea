"""AsyncBatchRunner: the runner's state machine driven from threads, for code with a running
loop. Every test runs inside ``asyncio.run`` (a loop that is already running when the job
starts, as in a notebook or a web handler); time is a ManualClock unless a test says why."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from batchcore import (
    AuthenticationError,
    BatchProviderRegistry,
    BatchRequest,
    JobEvent,
    JobEventKind,
)
from batchcore.aio import AsyncBatchRunner
from batchcore.jobs import BatchRunner, PollSchedule, Progress
from batchcore.structured import StructuredOutputError
from batchcore.testing import FakeBackend, FakeBatchProvider, ManualClock, Outcome

T = TypeVar("T")
#: Longest a test waits for another thread before failing (never reached when it passes).
PATIENCE = 20.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, PATIENCE))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def backend(clock: ManualClock) -> FakeBackend:
    return FakeBackend(
        clock=clock, validating_seconds=10, in_progress_seconds=100, finalizing_seconds=10
    )


@pytest.fixture
def registry() -> BatchProviderRegistry:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(FakeBatchProvider)
    return registry


@pytest.fixture
def make_runner(
    tmp_path: Path, clock: ManualClock, registry: BatchProviderRegistry
) -> Callable[..., AsyncBatchRunner]:
    def make(**options: Any) -> AsyncBatchRunner:
        options.setdefault("sleep", clock.sleep)
        return AsyncBatchRunner(
            tmp_path / "jobs.sqlite3",
            registry=registry,
            clock=clock.now,
            poll=PollSchedule(min_interval=5, max_interval=600, jitter=0),
            **options,
        )

    return make


def requests(n: int, prefix: str = "q") -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id=f"{prefix}{i}",
            model="fake-model",
            messages=[{"role": "user", "content": f"question {i}"}],
            params={"max_tokens": 8},
        )
        for i in range(n)
    ]


def cfg(backend: FakeBackend, **extra: Any) -> dict[str, Any]:
    return {"backend": backend, **extra}


async def collect(stream: AsyncIterator[T]) -> list[T]:
    return [item async for item in stream]


# -- the runner's semantics, awaited ----------------------------------------------------------


def test_a_job_runs_to_the_end_inside_a_running_loop(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    async def main() -> None:
        async with make_runner() as runner:
            estimate = await runner.estimate("fake", requests(5), config=cfg(backend))
            assert estimate.requests == 5
            info = await runner.run(
                "fake", requests(5), config=cfg(backend, max_requests_per_batch=2)
            )
            assert info.state == "finished" and info.all_succeeded and len(info.batches) == 3
            results = await collect(runner.results(info.id, chunk=2))
            assert [r.custom_id for r in results] == [f"q{i}" for i in range(5)]
            assert all(r.ok and r.text for r in results)
            assert (await runner.info(info.id)).counts == {"succeeded": 5, "pending": 0}
            assert [job.id for job in await runner.jobs()] == [info.id]
            assert (await runner.settings(info.id)).poll.min_interval == 5
            assert (await runner.cost(info.id)).provider == "fake"

    run(main())


def test_the_loop_keeps_running_while_a_job_is_driven(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    # The driving thread waits at its first submit until the loop has ticked five times: if
    # driving blocked the loop, the loop could never tick and the wait would time out.
    ticked = threading.Event()
    waits: list[tuple[bool, bool]] = []

    def hold_until_the_loop_ticks(event: JobEvent) -> None:
        if event.kind is JobEventKind.SUBMITTED and not waits:
            waits.append((ticked.wait(PATIENCE), threading.current_thread() is loop_thread))

    async def heartbeat(ticks: list[int]) -> None:
        while True:
            ticks.append(len(ticks))
            if len(ticks) >= 5:
                ticked.set()
            await asyncio.sleep(0)

    async def main() -> None:
        ticks: list[int] = []
        runner = make_runner(observers=[hold_until_the_loop_ticks])
        beating = asyncio.create_task(heartbeat(ticks))
        info = await runner.run("fake", requests(3), config=cfg(backend))
        beating.cancel()
        assert info.all_succeeded and len(ticks) >= 5
        await runner.aclose()

    loop_thread = threading.current_thread()
    run(main())
    assert waits == [(True, False)]  # the loop ticked; the step ran in another thread


def test_progress_is_delivered_on_the_loop(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    seen: list[Progress] = []
    threads: set[threading.Thread] = set()
    awaited: list[str] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress)
        threads.add(threading.current_thread())

    async def on_progress_async(progress: Progress) -> None:
        await asyncio.sleep(0)
        awaited.append(progress.event.kind.value)

    async def main() -> None:
        async with make_runner() as runner:
            info = await runner.run(
                "fake",
                requests(4),
                config=cfg(backend, max_requests_per_batch=2),
                on_progress=on_progress,
            )
            other = await runner.run(
                "fake", requests(1, "o"), config=cfg(backend), on_progress=on_progress_async
            )
            await asyncio.sleep(0)  # the last delivery is a callback scheduled on the loop
            await asyncio.sleep(0)
            assert seen[-1].job_id == info.id and other.finished

    run(main())
    assert threads == {threading.main_thread()}
    assert seen[-1].event.kind is JobEventKind.FINISHED
    assert (seen[-1].succeeded, seen[-1].failed, seen[-1].pending) == (4, 0, 0)
    assert seen[-1].batches == {"completed": 2}
    assert {p.job_id for p in seen} == {seen[0].job_id}  # only the job it was given for
    assert awaited[-1] == "finished"


def test_results_and_parsed_results_stream_in_chunks(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    class Answer(BaseModel):
        value: int

    backend.script(["q0", "q1", "q2"], Outcome.succeed(json.dumps({"value": 7})))

    async def main() -> None:
        async with make_runner() as runner:
            info = await runner.run("fake", requests(5), config=cfg(backend))
            stream = runner.results(info.id, chunk=2)
            first = await stream.__anext__()
            assert first.custom_id == "q0"
            await stream.aclose()  # stopping early closes the store's cursor
            pairs = await collect(runner.parsed_results(info.id, Answer, chunk=3))
            assert [r.custom_id for r, _ in pairs] == [f"q{i}" for i in range(5)]
            assert [p for _, p in pairs[:3]] == [Answer(value=7)] * 3
            assert all(isinstance(p, StructuredOutputError) for _, p in pairs[3:])
            with pytest.raises(Exception, match="no job"):
                await collect(runner.results("job-nope"))

    run(main())


def test_requests_can_come_from_an_async_iterable(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    async def produce() -> AsyncIterator[BatchRequest]:
        for request in requests(2500):
            if request.custom_id.endswith("00"):
                await asyncio.sleep(0)
            yield request

    async def main() -> None:
        async with make_runner() as runner:
            job_id = await runner.submit("fake", produce(), config=cfg(backend))
            info = await runner.info(job_id)
            assert info.request_count == 2500
            assert all(b.state == "submitted" for b in info.batches)
            info = await runner.resume(job_id, config=cfg(backend))
            assert info.all_succeeded

    run(main())


def test_a_drive_error_reaches_the_awaiting_task_and_the_job_says_why(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    async def main() -> None:
        async with make_runner() as runner:
            job_id = await runner.create("fake", requests(2), config=cfg(backend))
            backend.fail_next("poll_status", "unauthorized")
            with pytest.raises(AuthenticationError):
                await runner.drive(job_id, config=cfg(backend))
            assert (await runner.info(job_id)).state == "error"
            assert (await runner.resume(job_id, config=cfg(backend))).all_succeeded

    run(main())


def test_cancel_while_driving_collects_what_finished(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    backend.script("q1", Outcome.never())

    async def main() -> None:
        async with make_runner() as runner:
            job_id = await runner.submit("fake", requests(2), config=cfg(backend))
            cancelled = await runner.cancel(job_id, config=cfg(backend))
            assert cancelled.cancel_requested
            info = await runner.resume(job_id, config=cfg(backend))
            assert info.state == "cancelled"

    run(main())


# -- one drive per job; cancelling the awaiting task is Ctrl-C -----------------------------------


def test_two_tasks_awaiting_one_job_share_one_drive(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    async def main() -> None:
        async with make_runner() as runner:
            job_id = await runner.create("fake", requests(3), config=cfg(backend))
            first, second = await asyncio.gather(
                runner.resume(job_id, config=cfg(backend)), runner.drive(job_id)
            )
            assert first is second and first.all_succeeded

    run(main())
    assert backend.submitted_count == 1


def gate(kind: JobEventKind) -> tuple[Callable[[JobEvent], None], threading.Event, threading.Event]:
    """An observer that stops the driving thread at the first *kind* event until released."""
    reached, release = threading.Event(), threading.Event()

    def observer(event: JobEvent) -> None:
        if event.kind is kind and not reached.is_set():
            reached.set()
            release.wait(PATIENCE)

    return observer, reached, release


def test_cancelling_the_awaiting_task_keeps_the_job_for_resume(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend, tmp_path: Path
) -> None:
    observer, submitted, release = gate(JobEventKind.SUBMITTED)

    async def main() -> str:
        runner = make_runner(observers=[observer])
        task = asyncio.create_task(
            runner.run("fake", requests(3), config=cfg(backend), job_id="job-cancelled")
        )
        assert await asyncio.to_thread(submitted.wait, PATIENCE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await runner.aclose()  # waits for the driving thread to give the job up
        return "job-cancelled"

    job_id = run(main())
    plain = BatchRunner(tmp_path / "jobs.sqlite3")
    job = plain.store.job(job_id)
    assert job.state.value == "active" and job.owner is None  # kept, and given up
    assert plain.info(job_id).counts == {"pending": 3}
    assert not job.cancel_requested and job.error is None

    async def resume() -> None:
        async with make_runner() as runner:
            info = await runner.resume(job_id, config=cfg(backend))
            assert info.all_succeeded

    run(resume())
    assert backend.submitted_count == 1  # the batch submitted before the cancel was reused


def test_a_drive_sleeping_between_polls_stops_at_once_when_cancelled(
    tmp_path: Path, registry: BatchProviderRegistry, backend: FakeBackend
) -> None:
    # The runner sleeps for real here (no injected sleep), with a poll interval of minutes:
    # the test finishes at once only if the cancel ends the sleep.
    observer, submitted, release = gate(JobEventKind.SUBMITTED)
    release.set()

    async def main() -> None:
        runner = AsyncBatchRunner(
            tmp_path / "jobs.sqlite3",
            registry=registry,
            poll=PollSchedule(min_interval=300, max_interval=600, jitter=0),
            observers=[observer],
        )
        task = asyncio.create_task(runner.run("fake", requests(1), config=cfg(backend)))
        assert await asyncio.to_thread(submitted.wait, PATIENCE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runner.aclose()

    run(main())


def test_one_of_two_awaiting_tasks_cancelled_leaves_the_drive_running(
    make_runner: Callable[..., AsyncBatchRunner], backend: FakeBackend
) -> None:
    observer, submitted, release = gate(JobEventKind.SUBMITTED)

    async def main() -> None:
        async with make_runner(observers=[observer]) as runner:
            job_id = await runner.create("fake", requests(2), config=cfg(backend))
            leaving = asyncio.create_task(runner.resume(job_id, config=cfg(backend)))
            staying = asyncio.create_task(runner.resume(job_id, config=cfg(backend)))
            assert await asyncio.to_thread(submitted.wait, PATIENCE)
            leaving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leaving
            release.set()
            assert (await staying).all_succeeded

    run(main())


def test_an_existing_runner_can_be_driven_and_a_closed_one_refuses(
    tmp_path: Path, clock: ManualClock, registry: BatchProviderRegistry, backend: FakeBackend
) -> None:
    plain = BatchRunner(
        tmp_path / "jobs.sqlite3", registry=registry, clock=clock.now, sleep=clock.sleep
    )

    async def main() -> None:
        runner = AsyncBatchRunner(runner=plain)
        assert runner.runner is plain and runner.store is plain.store
        info = await runner.run("fake", requests(2), config=cfg(backend))
        assert info.all_succeeded
        await runner.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await runner.resume(info.id)

    run(main())
    with pytest.raises(TypeError, match="either runner"):
        AsyncBatchRunner(tmp_path / "x.sqlite3", runner=plain)

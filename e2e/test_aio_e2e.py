"""The asyncio API against a real emulator, under a running loop: the OpenAI SDK on loopback
HTTP, the runner's one state machine driven from threads, and a loop that keeps running while
the job is driven (a task on the loop must tick while the driving thread waits for it)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from conftest import OPENAI_KEY

from batchcore import BatchRequest, JobEvent, JobEventKind
from batchcore.aio import AsyncBatchRunner
from batchcore.jobs import PollSchedule, Progress
from batchcore.testing import ManualClock
from batchcore_openai.provider import OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator

#: Longest the test waits for the other side (never reached when it passes).
PATIENCE = 30.0


def test_the_async_runner_drives_a_job_on_the_emulator_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    manual = ManualClock(start=1_767_225_600.0)
    ticks: list[int] = []
    loop_ticked = threading.Event()
    checks: list[tuple[bool, bool]] = []  # (the loop ticked meanwhile, in a worker thread)
    progress_threads: set[threading.Thread] = set()
    seen: list[Progress] = []
    target: list[int] = []  # the tick count the driving thread waits for

    def wait_for_the_loop(event: JobEvent) -> None:
        # In the driving thread, at the first status: hold the step until the loop has ticked
        # five more times. A blocked loop never ticks, and the wait would time out.
        if event.kind is JobEventKind.STATUS_CHANGED and not checks:
            target.append(len(ticks) + 5)
            checks.append(
                (loop_ticked.wait(PATIENCE), threading.current_thread() is not loop_thread)
            )

    async def heartbeat() -> None:
        while True:
            ticks.append(len(ticks))
            if target and len(ticks) >= target[-1]:
                loop_ticked.set()
            await asyncio.sleep(0)

    def on_progress(progress: Progress) -> None:
        seen.append(progress)
        progress_threads.add(threading.current_thread())

    requests = [
        BatchRequest(
            custom_id=f"a{i}",
            model="gpt-4o-mini",
            params={"max_tokens": 16},
            messages=[{"role": "user", "content": f"question {i}"}],
        )
        for i in range(7)
    ]

    async def main() -> None:
        with OpenAIEmulator(clock=manual, api_key=OPENAI_KEY) as emulator:
            provider = OpenAIBatchProvider(
                config={
                    "base_url": emulator.url + "/v1",
                    "api_key": OPENAI_KEY,
                    "max_requests_per_batch": 3,
                }
            )
            provider.sleep = manual.sleep
            async with AsyncBatchRunner(
                tmp_path / "jobs.sqlite3",
                clock=manual.now,
                sleep=manual.sleep,
                poll=PollSchedule(min_interval=30, max_interval=600, jitter=0),
                observers=[wait_for_the_loop],
            ) as runner:
                beating = asyncio.create_task(heartbeat())
                info = await runner.run(provider, requests, on_progress=on_progress)
                beating.cancel()
                assert info.state == "finished" and info.all_succeeded
                assert len(info.batches) == 3 == len(emulator.batches())
                results = [r async for r in runner.results(info.id)]
                assert [r.custom_id for r in results] == [f"a{i}" for i in range(7)]
                assert all(r.ok and r.text for r in results)
                assert (await runner.info(info.id)).counts == {"succeeded": 7, "pending": 0}
            provider.close()

    loop_thread = threading.current_thread()
    asyncio.run(asyncio.wait_for(main(), PATIENCE * 2))
    assert checks == [(True, True)]  # the loop ran while a worker thread drove the job
    assert progress_threads == {loop_thread}  # callbacks arrive on the loop
    assert seen and seen[-1].event.kind is JobEventKind.FINISHED
    assert (seen[-1].succeeded, seen[-1].pending) == (7, 0)

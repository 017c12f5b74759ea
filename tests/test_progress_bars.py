"""Progress bars fed by on_progress, drawn by tqdm (and rich) into a StringIO, through the real
runner on the fake provider."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from batchcore import BatchProviderRegistry, BatchRequest, JobEvent, JobEventKind
from batchcore.aio import AsyncBatchRunner
from batchcore.jobs import BatchRunner, PollSchedule, Progress
from batchcore.progress_bars import describe, rich_progress, tqdm_progress
from batchcore.testing import FakeBackend, FakeBatchProvider, ManualClock, Outcome


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def backend(clock: ManualClock) -> FakeBackend:
    return FakeBackend(clock=clock, validating_seconds=5, in_progress_seconds=60)


@pytest.fixture
def options(tmp_path: Path, clock: ManualClock) -> dict[str, Any]:
    registry = BatchProviderRegistry(entry_points=[])
    registry.register(FakeBatchProvider)
    return {
        "registry": registry,
        "clock": clock.now,
        "sleep": clock.sleep,
        "poll": PollSchedule(min_interval=5, max_interval=60, jitter=0),
        "max_attempts": 2,
    }


@pytest.fixture
def make_runner(tmp_path: Path, options: dict[str, Any]) -> Callable[[], BatchRunner]:
    return lambda: BatchRunner(tmp_path / "jobs.sqlite3", **options)


def requests(n: int) -> list[BatchRequest]:
    return [
        BatchRequest(
            custom_id=f"q{i}",
            model="fake-model",
            messages=[{"role": "user", "content": f"question {i}"}],
            params={"max_tokens": 8},
        )
        for i in range(n)
    ]


def screen(output: str) -> list[str]:
    """What a terminal would show last on each line (tqdm redraws with carriage returns)."""
    return [line.split("\r")[-1].strip() for line in output.split("\n") if line.strip("\r ")]


def test_a_tqdm_bar_shows_the_numbers_of_the_status_line(
    make_runner: Callable[[], BatchRunner], backend: FakeBackend
) -> None:
    backend.script("q2", Outcome.error("server_error", retryable=True))
    out = io.StringIO()
    bar = tqdm_progress(file=out, mininterval=0, ncols=200)
    info = make_runner().run("fake", requests(3), config={"backend": backend}, on_progress=bar)
    lines = screen(out.getvalue())
    # The retry is printed above the bar, as the command prints it.
    assert f"{info.id} retried: round 2: 1 requests resubmitted" in lines
    final = lines[-1]
    assert final.startswith(f"{info.id}: 100%") and "3/3" in final
    assert final.endswith("3/3 [00:00, succeeded 2, failed 1 | batches: completed 2]")
    # Along the way it counted what was done, out of every request.
    counts = [m.group(1) for m in re.finditer(r"\| (\d)/3 \[", out.getvalue())]
    assert counts[0] == "0" and counts[-1] == "3" and counts == sorted(counts)
    assert "in_progress 1" in out.getvalue()


def test_each_job_gets_its_own_bar_closed_at_its_end(
    make_runner: Callable[[], BatchRunner], backend: FakeBackend
) -> None:
    out = io.StringIO()
    bar = tqdm_progress(file=out, mininterval=0, ncols=200)
    runner = make_runner()
    first = runner.run("fake", requests(2), config={"backend": backend}, on_progress=bar)
    second = runner.run("fake", requests(1), config={"backend": backend}, on_progress=bar)
    lines = screen(out.getvalue())
    assert [line.split(":")[0] for line in lines] == [first.id, second.id]
    assert "2/2" in lines[0] and "1/1" in lines[1]
    bar.close()  # nothing left to close: harmless


def test_the_bar_works_for_the_async_runner(
    tmp_path: Path, options: dict[str, Any], backend: FakeBackend
) -> None:
    out = io.StringIO()

    async def main() -> str:
        async with AsyncBatchRunner(tmp_path / "jobs.sqlite3", **options) as runner:
            bar = tqdm_progress(file=out, mininterval=0, ncols=200)
            info = await runner.run(
                "fake", requests(2), config={"backend": backend}, on_progress=bar
            )
            await asyncio.sleep(0)  # the last update is delivered on the loop
            return info.id

    job_id = asyncio.run(main())
    assert screen(out.getvalue())[-1].startswith(f"{job_id}: 100%")


def progress(cost: float | None, **batches: int) -> Progress:
    event = JobEvent(
        kind=JobEventKind.WAITING,
        job_id="job-1",
        provider="fake",
        at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        detail="queue full",
    )
    return Progress(
        job_id="job-1",
        state="active",
        requests=10,
        succeeded=4,
        failed=1,
        pending=5,
        batches=batches,
        event=event,
        cost_usd=cost,
    )


def test_the_cost_is_shown_when_known() -> None:
    assert describe(progress(None)) == "succeeded 4, failed 1 | batches: -"
    assert (
        describe(progress(0.01234, submitted=1, completed=2))
        == "succeeded 4, failed 1 | batches: completed 2, submitted 1 | $0.0123"
    )


def test_a_rich_bar_shows_the_same_numbers(
    make_runner: Callable[[], BatchRunner], backend: FakeBackend
) -> None:
    console_module = pytest.importorskip("rich.console")
    out = io.StringIO()
    console = console_module.Console(file=out, width=200, force_terminal=False)
    backend.script("q1", Outcome.error("invalid_request", "no"))
    info = make_runner().run(
        "fake", requests(2), config={"backend": backend}, on_progress=rich_progress(console=console)
    )
    text = out.getvalue()
    assert info.id in text and "2/2" in text
    assert "succeeded 1, failed 1 | batches: completed 1" in text


def test_no_drawing_library_is_imported_until_a_bar_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = (
        "import sys, batchcore.progress_bars; print('tqdm' in sys.modules, 'rich' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    with pytest.raises(ImportError, match=r"pip install 'batchcore\[progress\]'"):
        tqdm_progress()

"""The batchcore command, in-process, on a fake provider whose batches finish at once.

End-to-end runs against the vendor emulators (and kill -9 of a real subprocess) live in
``e2e/``, which installs the plugins.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from batchcore import batch_provider_registry
from batchcore.cli import main
from batchcore.jobs import JobStore
from batchcore.progress import ProgressDisplay
from batchcore.testing import FakeBackend, FakeBatchProvider, Outcome

KEY = "sk-instant-cli-0123456789"
BACKEND = FakeBackend(validating_seconds=0, in_progress_seconds=0, finalizing_seconds=0)


class InstantFake(FakeBatchProvider):
    """The fake, sharing one backend whose batches complete the moment they are created."""

    PROVIDER_NAME: ClassVar[str] = "instant"
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("INSTANT_API_KEY",)

    def __init__(self, config: Any = None) -> None:
        super().__init__(config={**(config or {}), "backend": BACKEND})


@pytest.fixture(autouse=True)
def _registered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("BATCHCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INSTANT_API_KEY", KEY)
    monkeypatch.delenv("BATCHCORE_SANDBOX", raising=False)
    batch_provider_registry.register(InstantFake)
    yield
    batch_provider_registry.unregister("instant")


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def write_input(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


def unified(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "custom_id": cid,
        "model": "fake-model",
        "messages": [{"role": "user", "content": f"hello {cid}"}],
        "max_tokens": 8,
        **extra,
    }


def test_run_prints_the_job_id_first_and_writes_one_result_per_request(tmp_path: Path) -> None:
    source = write_input(
        tmp_path / "in.jsonl",
        [
            unified("a"),
            {
                "custom_id": "b",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
            },
        ],
    )
    out_file = tmp_path / "out.jsonl"
    code, out, err = cli(
        "run",
        str(source),
        "--provider",
        "instant",
        "-o",
        str(out_file),
        "--poll-interval",
        "0.01:0.02",
    )
    assert code == 0, err
    job_id = out.splitlines()[0]
    assert job_id.startswith("job-")
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "b"]
    assert all(line["status"] == "succeeded" and line["text"] for line in lines)
    assert set(lines[0]) >= {"custom_id", "status", "text", "usage", "error", "response"}
    assert "2 results written" in err
    code, out, _ = cli("jobs", "--json")
    assert code == 0
    (job,) = json.loads(out)
    assert (job["id"], job["state"]) == (job_id, "finished")


def test_some_failed_requests_exit_1(tmp_path: Path) -> None:
    BACKEND.script("bad", Outcome.error("invalid_request", retryable=False))
    source = write_input(tmp_path / "in.jsonl", [unified("ok"), unified("bad")])
    code, _, err = cli(
        "run",
        str(source),
        "--provider",
        "instant",
        "-o",
        str(tmp_path / "o.jsonl"),
        "--poll-interval",
        "0.01:0.02",
    )
    assert code == 1, err
    assert "errored 1" in err


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([unified("a"), "{broken"], "line 2: not valid JSON"),
        ([unified("a"), unified("b", model="other-model")], "line 2: request 'b'"),
        (
            [unified("a"), {"custom_id": "x", "model": "fake-model", "messages": []}],
            "line 2: request 'x': messages must not be empty",
        ),
        ([unified("a"), unified("b"), unified("a")], "'a' appears on lines 1, 3"),
        (["[1, 2]"], "line 1: a request line must be a JSON object"),
    ],
)
def test_bad_input_is_rejected_with_line_numbers_before_anything_is_sent(
    tmp_path: Path, lines: list[Any], fragment: str
) -> None:
    calls = BACKEND.call_count()
    source = write_input(tmp_path / "in.jsonl", lines)
    code, out, err = cli("run", str(source), "--provider", "instant")
    assert code == 2
    assert fragment in err
    assert out == ""
    assert BACKEND.call_count() == calls
    assert cli("jobs", "--json")[1].strip() == "[]"


def test_model_override(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a", model="gpt-4o")])
    code, _, err = cli(
        "run",
        str(source),
        "--provider",
        "instant",
        "--model",
        "fake-model",
        "-o",
        str(tmp_path / "o.jsonl"),
        "--poll-interval",
        "0.01",
    )
    assert code == 0, err


def test_unknown_provider_and_job_exit_4(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, _, err = cli("run", str(source), "--provider", "nope")
    assert code == 4 and "no batch provider named 'nope'" in err and "instant" in err
    for command in ("status", "results", "wait", "cancel"):
        code, _, err = cli(command, "job-missing")
        assert code == 4, command
        assert "no job 'job-missing'" in err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = cli("run", str(tmp_path / "missing.jsonl"), "--provider", "instant")
    assert code == 2 and "does not exist" in err
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, _, err = cli("run", str(source), "--provider", "instant", "--config", "novalue")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = cli("run", str(source), "--provider", "instant", "--config", "colour=red")
    assert code == 2 and "unknown config key(s)" in err
    with pytest.raises(SystemExit) as info:
        cli("frobnicate")
    assert info.value.code == 2


def test_submit_then_status_wait_and_results(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
    code, out, err = cli(
        "submit",
        str(source),
        "--provider",
        "instant",
        "--config",
        "api_key=sk-instant-secret-123456",
    )
    assert code == 0, err
    job_id = out.splitlines()[0]
    code, out, _ = cli("status", job_id, "--json")
    status = json.loads(out)
    assert status["state"] == "active" and len(status["batches"]) == 1
    code, out, _ = cli("status", job_id)
    assert job_id in out and "round 1" in out
    code, _, err = cli(
        "wait", job_id, "--poll-interval", "0.01", "--config", "api_key=sk-instant-secret-123456"
    )
    assert code == 0, err
    code, out, _ = cli("results", job_id)
    assert [json.loads(line)["custom_id"] for line in out.splitlines()] == ["a", "b"]
    for file in (tmp_path / "home").glob("jobs.sqlite3*"):
        assert b"sk-instant-secret" not in file.read_bytes()


def test_cancel_a_submitted_job(tmp_path: Path) -> None:
    slow = FakeBackend(validating_seconds=3600)

    class SlowFake(InstantFake):
        PROVIDER_NAME: ClassVar[str] = "slow"

        def __init__(self, config: Any = None) -> None:
            FakeBatchProvider.__init__(self, config={**(config or {}), "backend": slow})

    batch_provider_registry.register(SlowFake)
    try:
        source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
        job_id = cli("submit", str(source), "--provider", "slow")[1].splitlines()[0]
        code, _, err = cli("cancel", job_id)
        assert code == 0, err
        slow.advance(1)
        code, _, err = cli("wait", job_id, "--poll-interval", "0.01")
        assert code == 1
        assert "cancelled" in err
        results = [json.loads(line) for line in cli("results", job_id)[1].splitlines()]
        assert {r["status"] for r in results} == {"cancelled"}
    finally:
        batch_provider_registry.unregister("slow")


def test_providers_lists_installed_and_failed(tmp_path: Path) -> None:
    code, out, _ = cli("providers")
    assert code == 0 and "instant" in out
    code, out, _ = cli("providers", "--json")
    names = [p["name"] for p in json.loads(out)["providers"]]
    assert "instant" in names


def test_sandbox_needs_a_provider_with_one(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, _, err = cli("run", str(source), "--provider", "instant", "--sandbox")
    assert code == 2 and "no bundled sandbox" in err


def test_store_option_places_the_store(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    store = tmp_path / "elsewhere" / "jobs.db"
    code, _, err = cli(
        "--store",
        str(store),
        "run",
        str(source),
        "--provider",
        "instant",
        "-o",
        str(tmp_path / "o.jsonl"),
        "--poll-interval",
        "0.01",
    )
    assert code == 0, err
    assert len(JobStore(store).jobs()) == 1


def test_progress_display_plain_lines_are_throttled() -> None:
    from batchcore import JobEvent

    stream = io.StringIO()
    now = [0.0]
    display = ProgressDisplay(stream, tty=False, interval=5, clock=lambda: now[0])

    def event(kind: str, **extra: Any) -> JobEvent:
        return JobEvent(
            kind=kind,
            job_id="job-1",
            provider="p",
            at=0,
            counts={"succeeded": 1, "pending": 2},
            **extra,
        )

    display(event("submitted", batch_id="b1", detail="3 requests"))
    display(event("status_changed", batch_id="b1"))  # within 5 s: skipped
    now[0] = 6
    display(event("results_fetched", batch_id="b1"))
    display(event("finished"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[00:00] job-1 submitted (3 requests)")
    assert "succeeded 1, pending 2" in lines[0]
    assert lines[-1].startswith("[00:06] job-1 finished")


def test_progress_display_redraws_one_line_on_a_terminal() -> None:
    from batchcore import JobEvent

    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True, clock=lambda: 0.0)
    display(JobEvent(kind="submitted", job_id="j", provider="p", at=0, batch_id="b"))
    display(JobEvent(kind="finished", job_id="j", provider="p", at=0))
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2 and text.endswith("\n") and text.count("\n") == 1

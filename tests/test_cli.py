"""The batchcore command, in-process, on a fake provider whose batches finish at once.

End-to-end runs against the vendor emulators (and kill -9 of a real subprocess) live in
``e2e/``, which installs the plugins.
"""

from __future__ import annotations

import contextlib
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


# -- trust: no silent sandbox, store errors, no tracebacks, signals, stored options -------------


@contextlib.contextmanager
def fake_sandbox() -> Iterator[dict[str, str]]:
    """The sandbox of SandboxedFake: what a plugin's emulator factory yields."""
    yield {"api_key": "sandbox-key-0123456789"}


class SandboxedFake(InstantFake):
    PROVIDER_NAME: ClassVar[str] = "boxed"
    API_KEY_ENV: ClassVar[tuple[str, ...]] = ("BOXED_API_KEY",)
    SANDBOX: ClassVar[str | None] = "test_cli:fake_sandbox"


@pytest.fixture
def boxed(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("BOXED_API_KEY", raising=False)
    batch_provider_registry.register(SandboxedFake)
    yield "boxed"
    batch_provider_registry.unregister("boxed")


def test_no_key_and_no_sandbox_records_and_sends_nothing(tmp_path: Path, boxed: str) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    calls = BACKEND.call_count()
    for command in ("run", "submit"):
        code, out, err = cli(command, str(source), "--provider", boxed)
        assert code == 2 and out == ""
        assert "no API key for 'boxed'" in err and "BOXED_API_KEY" in err and "--sandbox" in err
    assert BACKEND.call_count() == calls
    assert cli("jobs", "--json")[1].strip() == "[]"


def test_a_sandbox_job_says_so_everywhere_and_is_never_continued(
    tmp_path: Path, boxed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
    monkeypatch.setenv("BATCHCORE_SANDBOX", "1")
    out_file = tmp_path / "out.jsonl"
    code, out, err = cli("run", str(source), "--provider", boxed, "-o", str(out_file))
    assert code == 0, err
    assert "SANDBOX" in err and "invented" in err
    job_id = out.splitlines()[0]
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [line["sandbox"] for line in lines] == [True, True]
    assert all(json.loads(x)["sandbox"] for x in cli("results", job_id)[1].splitlines())
    assert json.loads(cli("status", job_id, "--json")[1])["sandbox"] is True
    assert "sandbox" in cli("status", job_id)[1] and "sandbox" in cli("jobs")[1]
    assert cli("resume", job_id)[0] == 0  # finished: reported from the store, nothing sent
    with JobStore(tmp_path / "home" / "jobs.sqlite3") as store:
        store.set_job_state(job_id, "error")  # as if the run had been interrupted
    code, _, err = cli("resume", job_id)
    assert code == 2 and "sandbox job is never continued" in err
    code, _, err = cli("submit", str(source), "--provider", boxed)
    assert code == 2 and "use `batchcore run --sandbox`" in err


def test_a_real_job_is_never_continued_on_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    job_id = cli("submit", str(source), "--provider", "instant")[1].splitlines()[0]
    monkeypatch.setenv("BATCHCORE_SANDBOX", "1")
    code, _, err = cli("resume", job_id)
    assert code == 2 and "cannot be continued on the sandbox" in err


def test_a_damaged_store_exits_6_without_a_traceback(tmp_path: Path) -> None:
    store = tmp_path / "home" / "jobs.sqlite3"
    store.parent.mkdir()
    store.write_bytes(b"garbage " * 512)
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    for argv in (("jobs",), ("status", "job-x"), ("run", str(source), "--provider", "instant")):
        code, _, err = cli(*argv)
        assert code == 6, argv
        assert str(store) in err and "damaged" in err and "Traceback" not in err
    code, _, err = cli("--debug", "jobs")
    assert code == 6 and "Traceback" in err


def test_batchcore_home_that_is_a_file_exits_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a directory")
    monkeypatch.setenv("BATCHCORE_HOME", str(home))
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, _, err = cli("run", str(source), "--provider", "instant")
    assert code == 6 and "not a directory" in err and "Traceback" not in err


def test_a_bug_exits_70_with_a_word_and_no_traceback(tmp_path: Path) -> None:
    class Buggy(InstantFake):
        PROVIDER_NAME: ClassVar[str] = "buggy"

        def get_status(self, handle: Any) -> Any:
            raise ZeroDivisionError("a bug in a provider")

    batch_provider_registry.register(Buggy)
    try:
        source = write_input(tmp_path / "in.jsonl", [unified("a")])
        code, out, err = cli("run", str(source), "--provider", "buggy", "--poll-interval", "0.01")
        assert code == 70 and "internal error" in err and "Traceback" not in err
        assert "ZeroDivisionError" in err
        job_id = out.splitlines()[0]
        code, _, err = cli("--debug", "resume", job_id, "--poll-interval", "0.01")
        assert code == 70 and "Traceback" in err
    finally:
        batch_provider_registry.unregister("buggy")


def test_ctrl_c_before_the_job_exists_says_nothing_was_kept(tmp_path: Path) -> None:
    class Interrupted(InstantFake):
        PROVIDER_NAME: ClassVar[str] = "interrupted"

        def check_request(self, request: Any) -> None:
            raise KeyboardInterrupt

    batch_provider_registry.register(Interrupted)
    try:
        source = write_input(tmp_path / "in.jsonl", [unified("a")])
        code, out, err = cli("run", str(source), "--provider", "interrupted")
        assert code == 130 and out == "" and "nothing was kept" in err
        assert cli("jobs", "--json")[1].strip() == "[]"
    finally:
        batch_provider_registry.unregister("interrupted")


def test_options_are_recorded_and_given_again_override_and_say_so(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, out, _ = cli("submit", str(source), "--provider", "instant", "--max-attempts", "5")
    job_id = out.splitlines()[0]
    options = json.loads(cli("status", job_id, "--json")[1])["options"]
    assert options["max_attempts"] == 5 and options["sandbox"] is False
    code, _, err = cli("wait", job_id, "--max-attempts", "7", "--poll-interval", "0.01")
    assert code == 0, err
    assert "given again: max attempts 5 -> 7" in err
    options = json.loads(cli("status", job_id, "--json")[1])["options"]
    assert options["max_attempts"] == 7 and options["poll"]["min_interval"] == 0.01


def test_deadline_and_reuse_flags(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
    code, out, err = cli("run", str(source), "--provider", "instant", "--poll-interval", "0.01")
    assert code == 0, err
    code, out, err = cli(
        "run",
        str(source),
        "--provider",
        "instant",
        "--poll-interval",
        "0.01",
        "--reuse-results",
        "--deadline",
        "6h",
        "-o",
        str(tmp_path / "o.jsonl"),
    )
    assert code == 0, err
    assert "2 of 2 requests answered by earlier jobs' results" in err
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert all(line["reused_from"]["custom_id"] == line["custom_id"] for line in lines)
    options = json.loads(cli("status", out.splitlines()[0], "--json")[1])["options"]
    assert options["reuse_results"] is True and options["deadline"] > 0
    code, _, err = cli("run", str(source), "--provider", "instant", "--deadline", "soon")
    assert code == 2 and "--deadline takes a duration" in err


def test_estimate_is_offline_and_a_budget_that_cannot_be_checked_refuses(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b", max_tokens=100)])
    calls = BACKEND.call_count()
    code, out, err = cli("estimate", str(source), "--provider", "instant", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["requests"] == 2 and report["batches"] == 1
    assert report["input_tokens"]["expected"] > 0 and report["max_output_tokens"] == 108
    assert report["cost_usd_max"] is None  # the fake model has no price: said, not invented
    code, out, err = cli("estimate", str(source), "--provider", "instant")
    assert code == 0 and "cost: unknown" in out
    code, out, err = cli("run", str(source), "--provider", "instant", "--budget", "5")
    assert code == 2 and "budget" in err and out == ""
    assert cli("jobs", "--json")[1].strip() == "[]"
    assert BACKEND.call_count() == calls  # nothing was sent
    code, _, err = cli("run", str(source), "--provider", "instant", "--budget", "-1")
    assert code == 2 and "--budget takes a positive amount" in err

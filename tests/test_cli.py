"""The batchcore command, in-process, on a fake provider whose batches finish at once.

End-to-end runs against the vendor emulators (and kill -9 of a real subprocess) live in
``e2e/``, which installs the plugins.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from batchcore import batch_provider_registry
from batchcore.cli import main
from batchcore.jobs import JobState, JobStore
from batchcore.jobs.database import SQLITE_TYPES
from batchcore.jobs.schema import MIGRATIONS, SCHEMA_VERSION
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
    # `run` writes JOB.results.jsonl into the working directory when no -o is given.
    monkeypatch.chdir(tmp_path)
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


def test_output_dash_writes_the_results_to_stdout_after_the_job_id(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
    code, out, err = cli(
        "run", str(source), "--provider", "instant", "-o", "-", "--poll-interval", "0.01:0.02"
    )
    assert code == 0, err
    job_id, *lines = out.splitlines()
    assert job_id.startswith("job-")
    assert [json.loads(line)["custom_id"] for line in lines] == ["a", "b"]
    assert "2 results written to stdout" in err
    assert not (tmp_path / "-").exists()
    code, out, err = cli("results", job_id, "-o", "-")
    assert code == 0 and [json.loads(line)["custom_id"] for line in out.splitlines()] == ["a", "b"]
    assert not (tmp_path / "-").exists()


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
        store.set_job_state(job_id, JobState.ERROR)  # as if the run had been interrupted
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
    for argv in (
        ("run", str(source), "--provider", "instant"),
        ("jobs",),
        ("jobs", "--json"),
        ("status", "job-x"),
        ("results", "job-x"),
    ):
        code, out, err = cli(*argv)
        assert code == 6, (argv, out, err)
        assert f"{home} is not a directory" in err and "Traceback" not in err
        assert out == ""  # never "No jobs yet."
    # Deeper: a file further up the path is named, not the store's own directory.
    monkeypatch.setenv("BATCHCORE_HOME", str(home / "nested" / "deeper"))
    code, _, err = cli("jobs")
    assert code == 6 and f"{home} is not a directory" in err
    # A home that does not exist yet is simply a store with no jobs yet.
    monkeypatch.setenv("BATCHCORE_HOME", str(tmp_path / "not-yet" / "made"))
    assert cli("jobs") == (0, "No jobs yet.\n", "")
    assert cli("status", "job-x")[0] == 4
    assert not (tmp_path / "not-yet").exists()  # reading created nothing


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


# -- payload files: beside the store, and a clear word when they cannot be written -------------


def test_payload_files_go_beside_the_store_not_to_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    source = write_input(tmp_path / "in.jsonl", [unified("a"), unified("b")])
    code, out, err = cli("submit", str(source), "--provider", "instant")
    assert code == 0, err
    job_id = out.splitlines()[0]
    assert (tmp_path / "home" / "payloads").is_dir()  # written there (and removed once sent)
    assert list(scratch.iterdir()) == []
    assert "workdir" not in store_config(job_id)  # local to this machine: never recorded


def store_config(job_id: str) -> dict[str, Any]:
    with JobStore(readonly=True) as store:
        return dict(store.job(job_id).config)


def test_payload_files_that_cannot_be_written_exit_6_and_the_job_resumes(tmp_path: Path) -> None:
    """A later round's payload cannot be written (its directory is blocked by a file): exit 6,
    the cause and place named, no traceback, the job kept; fixed, `resume` finishes it."""
    BACKEND.script("blocked-b", Outcome.error("server_error", retryable=True))
    source = write_input(tmp_path / "in.jsonl", [unified("blocked-a"), unified("blocked-b")])
    code, out, err = cli("submit", str(source), "--provider", "instant", "--poll-interval", "0.01")
    assert code == 0, err
    job_id = out.splitlines()[0]
    payloads = tmp_path / "home" / "payloads"
    shutil.rmtree(payloads)
    payloads.write_text("in the way")
    code, out, err = cli("wait", job_id, "--poll-interval", "0.01")
    assert code == 6, err
    assert f"cannot use the batch payload files at {payloads}" in err
    assert f"`batchcore resume {job_id}`" in err and "Traceback" not in err
    payloads.unlink()
    BACKEND.script("blocked-b", Outcome.succeed())
    out_file = tmp_path / "out.jsonl"
    code, _, err = cli("resume", job_id, "--poll-interval", "0.01", "-o", str(out_file))
    assert code == 0, err
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [(r["custom_id"], r["status"]) for r in lines] == [
        ("blocked-a", "succeeded"),
        ("blocked-b", "succeeded"),
    ]


# -- a store from an older batchcore ------------------------------------------------------------


def copy_in_first_layout(current: Path, old: Path) -> None:
    """A store in the first release's layout (schema 1) holding the jobs of *current*."""
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for step in MIGRATIONS[0].steps:
        assert isinstance(step, str)
        db.execute(step.format_map(SQLITE_TYPES))
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("ATTACH ? AS cur", (str(current),))
    for table in ("jobs", "batches", "results"):
        columns = ", ".join(f'"{r[1]}"' for r in db.execute(f"PRAGMA main.table_info({table})"))
        db.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM cur.{table}")
    # Requests as the first release kept them: each one's unified JSON, under its job's id.
    rows = db.execute(
        "SELECT j.id, r.custom_id, r.state, r.outcome, r.attempts, r.batch_row"
        " FROM cur.requests r JOIN cur.jobs j ON j.key = r.job ORDER BY r.seq"
    ).fetchall()
    db.commit()
    db.execute("DETACH cur")
    with JobStore(current) as store:
        requests = {
            (job_id, request.custom_id): request
            for job_id in {row[0] for row in rows}
            for request in store.iter_requests(job_id)
        }
    db.executemany(
        "INSERT INTO requests (job_id, custom_id, seq, data, state, outcome, attempts, batch_row)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (job, cid, seq, json.dumps(requests[job, cid].to_dict()), *rest)
            for seq, (job, cid, *rest) in enumerate(rows)
        ],
    )
    db.commit()
    db.close()


def test_read_commands_upgrade_an_older_store_in_place(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("old-a"), unified("old-b")])
    code, out, err = cli("run", str(source), "--provider", "instant", "--poll-interval", "0.01")
    assert code == 0, err
    job_id = out.splitlines()[0]
    old = tmp_path / "old" / "jobs.sqlite3"
    old.parent.mkdir()
    copy_in_first_layout(tmp_path / "home" / "jobs.sqlite3", old)
    code, out, err = cli("--store", str(old), "jobs")
    assert code == 0, err
    assert job_id in out and "finished" in out
    code, out, err = cli("--store", str(old), "status", job_id, "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "finished"
    code, out, err = cli("--store", str(old), "results", job_id)
    assert code == 0, err
    assert [json.loads(line)["custom_id"] for line in out.splitlines()] == ["old-a", "old-b"]
    with sqlite3.connect(old) as db:
        (version,) = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    assert int(version) == SCHEMA_VERSION


# -- configuration: what is stored, and what is said when it is given again ---------------------


def store_bytes(tmp_path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in (tmp_path / "home").glob("jobs.sqlite3*"))


def test_credentials_in_a_url_are_never_stored(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    url = (
        "http://alice:hunter2-pw@127.0.0.1:9/v1?api-version=2024-10-21&key=qkey-123"
        "&sig=sig-456&X-Amz-Signature=amz-789&access_token=tok-000"
    )
    code, out, err = cli(
        "submit", str(source), "--provider", "instant", "--config", f"base_url={url}"
    )
    assert code == 0, err
    job_id = out.splitlines()[0]
    assert store_config(job_id)["base_url"] == "http://127.0.0.1:9/v1?api-version=2024-10-21"
    data = store_bytes(tmp_path)
    for secret in (b"alice", b"hunter2-pw", b"qkey-123", b"sig-456", b"amz-789", b"tok-000"):
        assert secret not in data, secret


@pytest.mark.parametrize(
    ("url", "public", "for_messages"),
    [
        ("https://h/v1", "https://h/v1", "https://h/v1"),
        ("https://u:p@h:8443/v1?api-version=1", "https://h:8443/v1?api-version=1", None),
        ("https://KEY@h/v1", "https://h/v1", None),
        ("https://h/v1?key=K&alt=sse", "https://h/v1?alt=sse", None),
        ("https://h/x?sv=1&sig=S&se=2", "https://h/x?sv=1&se=2", None),
        ("https://h/x?X-Amz-Credential=C&X-Amz-Signature=S&a=1", "https://h/x?a=1", None),
        ("postgresql://u:pw@db/x", "postgresql://db/x", "postgresql://u@db/x"),
        (
            "postgresql://u@db/x?password=pw&sslmode=require",
            None,
            "postgresql://u@db/x?sslmode=require",
        ),
        ("not a url", "not a url", "not a url"),
    ],
)
def test_public_url_keeps_no_credential(
    url: str, public: str | None, for_messages: str | None
) -> None:
    from batchcore.jobs.postgres import public_url as for_store_messages
    from batchcore.jobs.store import public_url

    if public is not None:
        assert public_url(url) == public
    if for_messages is not None:
        assert for_store_messages(url) == for_messages


def test_config_given_again_says_what_changed_without_secrets(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("a")])
    code, out, err = cli(
        "submit",
        str(source),
        "--provider",
        "instant",
        "--config",
        "timeout=30",
        "--config",
        "base_url=http://127.0.0.1:9/v1",
        "--poll-interval",
        "0.01",
    )
    assert code == 0, err
    job_id = out.splitlines()[0]
    code, _, err = cli(
        "wait",
        job_id,
        "--poll-interval",
        "0.01",
        "--config",
        "timeout=60",
        "--config",
        "api_key=sk-instant-given-again-987654",
        "--config",
        "base_url=http://bob:pw-2468@127.0.0.1:9/v2",
        "--config",
        "max_retries=2",
    )
    assert code == 0, err
    said = (
        f"job {job_id}: given again for this command: timeout 30 -> 60; api_key given; "
        "base_url http://127.0.0.1:9/v1 -> http://127.0.0.1:9/v2; max_retries set to 2"
    )
    assert said in err
    assert "987654" not in err and "pw-2468" not in err and "bob" not in err
    with JobStore(readonly=True) as store:
        details = [e.detail for e in store.events(job_id) if "this command" in (e.detail or "")]
    assert details == [said.split(": ", 1)[1]]
    assert b"987654" not in store_bytes(tmp_path) and b"pw-2468" not in store_bytes(tmp_path)
    code, _, err = cli("cancel", job_id, "--config", "timeout=30")  # as recorded: nothing said
    assert code == 0 and "given again" not in err


def test_jobs_shows_who_holds_each_job_and_since_when(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [unified("held-a")])
    job_id = cli("submit", str(source), "--provider", "instant")[1].splitlines()[0]
    with JobStore() as store:
        store.acquire(job_id, me="elsewhere:4242", lease_seconds=600)
        (batch,) = store.batches(job_id)
        assert store.claim_batch(batch.row, "worker-7", seconds=600)
        store.acquire(job_id, me="elsewhere:4242", lease_seconds=600)  # renewing keeps "since"
        job = store.job(job_id)
    assert job.owner_since is not None
    since = datetime.fromtimestamp(job.owner_since, tz=timezone.utc)
    code, out, _ = cli("jobs")
    assert code == 0
    assert f"driven by elsewhere:4242 since {since:%Y-%m-%d %H:%M:%S} UTC" in out
    assert "batches held by worker-7 since " in out
    (listed,) = json.loads(cli("jobs", "--json")[1])
    assert listed["owner"] == "elsewhere:4242"
    assert datetime.fromisoformat(listed["owner_since"]) == since
    assert listed["batches"][0]["claimed_by"] == "worker-7"
    assert listed["batches"][0]["claimed_since"] is not None
    assert (
        f"driven by elsewhere:4242 since {since:%Y-%m-%d %H:%M:%S} UTC" in cli("status", job_id)[1]
    )


# -- custom_ids and keys that try to slip through -----------------------------------------------


@pytest.mark.parametrize(
    ("custom_id", "code_point"),
    [("a\nb", "U+000A"), ("abc\r", "U+000D"), ("x\u2028y", "U+2028"), ("\u0085next", "U+0085")],
)
def test_a_control_character_in_a_custom_id_is_refused_naming_file_line_and_id(
    tmp_path: Path, custom_id: str, code_point: str
) -> None:
    calls = BACKEND.call_count()
    source = write_input(tmp_path / "in.jsonl", [unified("fine"), unified(custom_id)])
    for command in ("run", "submit"):
        code, out, err = cli(command, str(source), "--provider", "instant")
        assert (code, out) == (2, ""), err
        assert f"{source}, line 2:" in err
        assert repr(custom_id) in err and code_point in err
        assert "Traceback" not in err
    assert BACKEND.call_count() == calls
    assert cli("jobs", "--json")[1].strip() == "[]"


def test_a_list_typed_api_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    from batchcore.errors import ConfigurationError
    from batchcore.jobs import BatchRunner

    secret = "sk-listed-secret-13579"
    with pytest.raises(ConfigurationError) as caught:
        InstantFake(config={"api_key": [secret]})
    error: BaseException | None = caught.value
    assert "api_key' must be a non-empty string, got a list" in str(caught.value)
    while error is not None:  # nowhere in the chain either
        assert secret not in str(error) and secret not in repr(error)
        assert all(secret not in note for note in getattr(error, "__notes__", ()))
        error = error.__cause__ or error.__context__
    runner = BatchRunner(tmp_path / "store.sqlite3")
    with pytest.raises(ConfigurationError) as caught:
        runner.create("instant", [], config={"api_key": [secret]})
    assert secret not in str(caught.value)
    assert secret.encode() not in (tmp_path / "store.sqlite3").read_bytes()


def test_wait_on_a_shared_store_reports_a_stopped_job_instead_of_waiting_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: Any
) -> None:
    url = postgres_server.new_url()
    source = write_input(tmp_path / "in.jsonl", [unified("shared-a")])
    code, out, err = cli("--store", url, "submit", str(source), "--provider", "instant")
    assert code == 0, err
    job_id = out.splitlines()[0]
    monkeypatch.delenv("INSTANT_API_KEY")  # watching needs no key
    code, _, err = cli("--store", url, "wait", job_id, "--max-attempts", "4")
    assert code == 2 and f"`batchcore resume {job_id}`" in err
    with JobStore(url) as store:
        store.set_job_state(job_id, JobState.ERROR, error="the vendor said no")
    code, _, err = cli("--store", url, "wait", job_id, "--poll-interval", "0.01")
    assert code == 3, err
    assert f"job {job_id} stopped: the vendor said no" in err
    assert f"continue it with `batchcore resume {job_id}`" in err
    with JobStore(url) as store:
        store.set_job_state(job_id, JobState.ATTENTION, error="decide: `batchcore resolve`")
        assert store.job(job_id).owner is None  # nothing was held while watching
    code, _, err = cli("--store", url, "wait", job_id, "--poll-interval", "0.01")
    assert code == 3 and "decide: `batchcore resolve`" in err

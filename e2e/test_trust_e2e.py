"""The money rules through the real command, as a user meets them and as an attacker tries them:
a lost create answer never makes a second batch (every first-party provider), an echoed key
never shows, SIGTERM keeps the job, a read-only store still answers, a full disk says so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    OPENAI_KEY,
    SteppingClock,
    batchcore,
    read_results,
    run_cli,
    start_cli,
    wait_for,
    write_requests,
)

from batchcore.jobs.database import SQLITE_TYPES
from batchcore.jobs.schema import MIGRATIONS
from batchcore.testing import Fault
from batchcore_anthropic.testing import DEFAULT_API_KEY, AnthropicEmulator
from batchcore_openai.testing import OpenAIEmulator

POLL = ("--poll-interval", "0.02:0.05")
# A read timeout short enough that a lost answer is noticed at once.
FAST = ("--config", "timeout=1")


@pytest.fixture
def azure_emulator(clock: SteppingClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(clock=clock, api_key=OPENAI_KEY, azure=True) as emulator:
        yield emulator


def _env_for(
    provider: str,
    cli_env: dict[str, str],
    openai_emulator: OpenAIEmulator,
    azure_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
) -> tuple[dict[str, str], object, str, tuple[str, ...]]:
    if provider == "openai":
        return cli_env, openai_emulator, "gpt-4o-mini", ()
    if provider == "azure-openai":
        env = {**cli_env, "AZURE_OPENAI_API_KEY": OPENAI_KEY}
        extra = ("--config", f"base_url={azure_emulator.url}/openai/v1/")
        return env, azure_emulator, "gpt-4o-mini", (*extra, "--config", "deployments=gpt-4o-mini")
    env = {
        **cli_env,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": anthropic_emulator.url,
    }
    return env, anthropic_emulator, "claude-sonnet-4-5", ()


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic"])
def test_a_lost_create_answer_makes_exactly_one_batch(
    provider: str,
    tmp_path: Path,
    cli_env: dict[str, str],
    openai_emulator: OpenAIEmulator,
    azure_emulator: OpenAIEmulator,
    anthropic_emulator: AnthropicEmulator,
) -> None:
    env, emulator, model, extra = _env_for(
        provider, cli_env, openai_emulator, azure_emulator, anthropic_emulator
    )
    emulator.inject_fault("lost_create")  # type: ignore[attr-defined]
    source = write_requests(tmp_path / "in.jsonl", 6, model=model)
    out = tmp_path / "out.jsonl"
    done = run_cli(
        env, "run", str(source), "--provider", provider, "-o", str(out), *POLL, *FAST, *extra
    )
    assert done.returncode == 0, done.stderr
    assert [r["custom_id"] for r in read_results(out)] == [f"req-{i}" for i in range(6)]
    assert emulator.batch_count() == 1  # type: ignore[attr-defined]


def test_a_crash_mid_create_on_anthropic_is_found_again_on_resume(
    tmp_path: Path,
    home: Path,
    cli_env: dict[str, str],
    anthropic_emulator: AnthropicEmulator,
) -> None:
    env = {
        **cli_env,
        "ANTHROPIC_API_KEY": DEFAULT_API_KEY,
        "ANTHROPIC_BASE_URL": anthropic_emulator.url,
    }
    anthropic_emulator.inject("POST", "/v1/messages/batches", Fault.lose_response())
    source = write_requests(tmp_path / "in.jsonl", 8, model="claude-sonnet-4-5")
    out = tmp_path / "out.jsonl"
    proc = start_cli(env, "run", str(source), "--provider", "anthropic", "-o", str(out), *POLL)
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().strip()
        wait_for(lambda: anthropic_emulator.batch_count() == 1, what="the batch to exist")
    finally:
        proc.kill()  # dies before the create's answer: only the journal knows
        proc.wait(timeout=30)
    resumed = run_cli(env, "resume", job_id, "-o", str(out), *POLL)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_results(out)) == 8 and anthropic_emulator.batch_count() == 1


@pytest.mark.parametrize("status", [401, 400])
def test_a_key_echoed_by_the_vendor_never_shows(
    status: int,
    tmp_path: Path,
    cli_env: dict[str, str],
    openai_emulator: OpenAIEmulator,
) -> None:
    """A vendor that echoes the key in its error bodies, with tracebacks and every library's
    DEBUG log on: the key shows nowhere, not in output, logs, the store or result files."""
    body = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "code": "x"}}
    openai_emulator.inject("*", "*", Fault.status(status, body=body), times=1000)
    source = write_requests(tmp_path / "in.jsonl", 2)
    shown: list[str] = []
    for debug, env in (
        ((), cli_env),
        (("--debug",), cli_env),
        ((), {**cli_env, "BATCHCORE_DEBUG": "1"}),
    ):
        out = tmp_path / f"out-{len(shown)}.jsonl"
        done = run_cli(
            env, *debug, "run", str(source), "--provider", "openai", "-o", str(out), *POLL
        )
        assert done.returncode in (2, 3), done.stderr
        shown.append(done.stdout + done.stderr)
    assert "Traceback" in shown[1] and " DEBUG " in shown[1]  # the debug output is really on
    assert "Traceback" in shown[2] and " DEBUG " in shown[2]
    job_id = shown[-1].splitlines()[0]
    openai_emulator.server.clear_faults()
    out = tmp_path / "out.jsonl"
    done = run_cli(cli_env, "--debug", "resume", job_id, "-o", str(out), *POLL)
    assert done.returncode == 0, done.stderr
    assert len(read_results(out)) == 2
    shown.append(done.stdout + done.stderr)
    for argv in (("status", job_id), ("status", job_id, "--json"), ("jobs", "--json")):
        shown.append(run_cli(cli_env, "--debug", *argv).stdout)
    for text in shown:
        assert OPENAI_KEY not in text
    home = Path(cli_env["BATCHCORE_HOME"])
    files = [f for f in (*home.rglob("*"), *tmp_path.rglob("*")) if f.is_file()]
    assert out in files
    for file in files:
        assert OPENAI_KEY.encode() not in file.read_bytes(), file


def test_sigterm_keeps_the_job_and_resume_finishes_it(
    tmp_path: Path, clock: SteppingClock, cli_env: dict[str, str], openai_emulator: OpenAIEmulator
) -> None:
    clock.frozen = True
    source = write_requests(tmp_path / "in.jsonl", 5)
    proc = start_cli(cli_env, "run", str(source), "--provider", "openai", *POLL)
    assert proc.stdout is not None
    job_id = proc.stdout.readline().strip()
    wait_for(lambda: len(openai_emulator.batches()) == 1, what="the batch")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert f"terminated; the job is kept: `batchcore resume {job_id}`" in err
    assert "Traceback" not in err
    clock.frozen = False
    out = tmp_path / "out.jsonl"
    resumed = run_cli(cli_env, "resume", job_id, "-o", str(out), *POLL)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_results(out)) == 5 and len(openai_emulator.batches()) == 1


def _isolated(script: str) -> list[str] | None:
    """A shell running *script* in its own user and mount namespace (root inside), where it
    may mount what it likes without touching the machine; None where that is not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    probe = subprocess.run(
        [
            unshare,
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
            'mount -t tmpfs -o size=64k tmpfs "$(mktemp -d)"',
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return None
    return [unshare, "-rm", "sh", "-c", script]


def _cli_line(*args: str) -> str:
    return " ".join(f"'{part}'" for part in batchcore(*args))


def test_read_commands_work_on_a_read_only_store(
    tmp_path: Path,
    home: Path,
    clock: SteppingClock,
    cli_env: dict[str, str],
    openai_emulator: OpenAIEmulator,
) -> None:
    clock.frozen = True  # the job stays in progress: resuming it would have to write
    source = write_requests(tmp_path / "in.jsonl", 3)
    done = run_cli(cli_env, "submit", str(source), "--provider", "openai")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    reads = " && ".join(
        _cli_line(*argv) + f" > {tmp_path}/{name}.out"
        for name, argv in (
            ("status", ("status", job_id, "--json")),
            ("jobs", ("jobs",)),
            ("results", ("results", job_id)),
        )
    )
    script = (
        f"mount --bind '{home}' '{home}' && mount -o remount,bind,ro '{home}' && "
        f"{reads}; {_cli_line('resume', job_id)} 2> {tmp_path}/resume.err; "
        f"echo $? > {tmp_path}/resume.code"
    )
    command = _isolated(script)
    if command is None:
        pytest.skip("this machine does not allow mount namespaces (unshare -rm)")
    run = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "status.out").read_text())["state"] == "active"
    assert job_id in (tmp_path / "jobs.out").read_text()
    assert (tmp_path / "results.out").read_text() == ""  # nothing has arrived yet
    # A command that must write says why it cannot, with the documented code.
    assert (tmp_path / "resume.code").read_text().strip() == "6"
    err = (tmp_path / "resume.err").read_text()
    assert "read-only" in err and "Traceback" not in err


def test_an_older_store_on_read_only_media_is_refused_with_the_reason(
    tmp_path: Path, home: Path, cli_env: dict[str, str]
) -> None:
    """Read commands upgrade an older store in place; where it cannot be written they say so
    (exit 6), and the store is left as it was."""
    home.mkdir()
    store = home / "jobs.sqlite3"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for step in MIGRATIONS[0].steps:
            db.execute(str(step).format_map(SQLITE_TYPES))
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
    script = (
        f"mount --bind '{home}' '{home}' && mount -o remount,bind,ro '{home}' && "
        f"{_cli_line('jobs')} > {tmp_path}/jobs.out 2> {tmp_path}/jobs.err; "
        f"echo $? > {tmp_path}/jobs.code"
    )
    command = _isolated(script)
    if command is None:
        pytest.skip("this machine does not allow mount namespaces (unshare -rm)")
    run = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    err = (tmp_path / "jobs.err").read_text()
    assert (tmp_path / "jobs.code").read_text().strip() == "6", err
    assert f"job store {store} is at schema 1, older than this batchcore's" in err
    assert "read-only" in err and "Traceback" not in err
    assert (tmp_path / "jobs.out").read_text() == ""
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT value FROM meta").fetchone() == ("1",)
    done = run_cli(cli_env, "jobs")  # writable again: upgraded in place, and it just works
    assert (done.returncode, done.stdout) == (0, "No jobs yet.\n"), done.stderr


@pytest.mark.parametrize("full", ["store", "payloads"])
def test_a_full_disk_says_disk_full_with_exit_6(
    full: str, tmp_path: Path, cli_env: dict[str, str], openai_emulator: OpenAIEmulator
) -> None:
    """A job too big for a 600 KB disk: whether the store's commit or the payload files beside
    it meet the full disk first, the command says "disk full" with exit 6 and records nothing."""
    source = write_requests(tmp_path / "in.jsonl", 4000)
    disk = tmp_path / "disk"
    disk.mkdir()
    elsewhere = tmp_path / "payloads"  # payload files off the full disk: the store fills first
    workdir = ("--config", f"workdir={elsewhere}") if full == "store" else ()
    run = _cli_line("run", str(source), "--provider", "openai", *POLL, *workdir)
    script = (
        f"mount -t tmpfs -o size=600k tmpfs '{disk}' && export BATCHCORE_HOME='{disk}' && "
        f"{run} > {tmp_path}/out 2> {tmp_path}/err; echo $? > {tmp_path}/code; "
        f"{_cli_line('jobs', '--json')} > {tmp_path}/jobs; "
        f"ls -A '{disk}/payloads' '{elsewhere}' > {tmp_path}/left 2>/dev/null"
    )
    command = _isolated(script)
    if command is None:
        pytest.skip("this machine does not allow mount namespaces (unshare -rm)")
    env = {**cli_env}
    env.pop("BATCHCORE_HOME")
    subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "code").read_text().strip() == "6", err
    assert "Traceback" not in err and "rollback" not in err
    if full == "store":
        assert f"job store {disk}/jobs.sqlite3: the disk is full" in err
    else:
        assert f"disk full at {disk}/payloads: no room for the batch payload files" in err
    assert "no job was recorded and nothing was sent" in err
    assert json.loads((tmp_path / "jobs").read_text()) == []
    # Neither a failed write nor a failed commit leaves a payload file behind.
    left = [line for line in (tmp_path / "left").read_text().splitlines() if line.strip()]
    assert all(line.endswith(":") for line in left), left
    assert len(openai_emulator.batches()) == 0


def test_no_key_and_no_sandbox_exits_2_before_anything(
    tmp_path: Path, cli_env: dict[str, str], openai_emulator: OpenAIEmulator
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("OPENAI_API_KEY")}
    source = write_requests(tmp_path / "in.jsonl", 2)
    done = run_cli(env, "run", str(source), "--provider", "openai")
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr and "--sandbox" in done.stderr
    assert openai_emulator.call_count() == 0
    assert run_cli(env, "jobs", "--json").stdout.strip() == "[]"
    assert os.environ.get("BATCHCORE_SANDBOX") is None

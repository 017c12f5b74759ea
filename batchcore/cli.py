"""The ``batchcore`` command.

Exit codes (scripts may rely on them):

====  ===================================================================================
0     done: the job finished and every request succeeded (or the command succeeded)
1     the job finished, but some requests did not succeed (see the results file)
2     bad usage or bad input (nothing was submitted)
3     a provider or network error stopped the job; it is kept: ``batchcore resume JOB``
4     no such job or provider
5     another process is running this job
130   interrupted; the job is kept: ``batchcore resume JOB``
====  ===================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from batchcore import __version__
from batchcore.errors import (
    BatchcoreError,
    ConfigurationError,
    InvalidRequestError,
    PluginLoadError,
    ProviderError,
    ProviderNotFoundError,
)
from batchcore.jobs import BatchRunner, JobBusyError, JobInfo, JobNotFoundError, PollSchedule
from batchcore.jsonl import iter_file_objects
from batchcore.models import BatchRequest, BatchResult
from batchcore.progress import ProgressDisplay, format_counts
from batchcore.provider import BaseBatchProvider
from batchcore.registry import batch_provider_registry

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED_REQUESTS = 1
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_NOT_FOUND = 4
EXIT_BUSY = 5
EXIT_INTERRUPTED = 130

SANDBOX_POLL = PollSchedule(min_interval=0.25, max_interval=1.0, factor=1.3)


class UsageError(Exception):
    """Bad arguments or input; reported with exit code 2."""


# -- input ------------------------------------------------------------------------------------


def read_requests(
    path: Path, provider: BaseBatchProvider, *, model: str | None = None
) -> Iterator[BatchRequest]:
    """The requests of an input file, each checked against *provider*; errors name the line."""
    for number, obj in iter_file_objects(path):
        try:
            request = BatchRequest.from_json(obj) if isinstance(obj, dict) else None
            if request is None:
                raise InvalidRequestError(
                    f"a request line must be a JSON object, got {type(obj).__name__}"
                )
            if model is not None:
                request = attrs.evolve(request, model=model)
            provider.check_request(request)
        except InvalidRequestError as error:
            raise InvalidRequestError(
                f"{path}, line {number}: {error.message}",
                custom_id=error.custom_id,
                field=error.field,
                provider=error.provider,
            ) from None
        yield request


def _duplicate_lines(path: Path, custom_id: str) -> list[int]:
    return [
        number
        for number, obj in iter_file_objects(path)
        if isinstance(obj, dict) and obj.get("custom_id") == custom_id
    ]


def parse_config(pairs: Sequence[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--config takes KEY=VALUE, got {pair!r}")
        config[key.strip()] = value
    return config


def parse_poll(text: str | None) -> PollSchedule | None:
    if text is None:
        return None
    low, _, high = text.partition(":")
    try:
        minimum = float(low)
        maximum = float(high) if high else max(minimum, 60.0)
        return PollSchedule(min_interval=minimum, max_interval=maximum)
    except ValueError as error:
        raise UsageError(
            f"--poll-interval takes MIN or MIN:MAX seconds, got {text!r} ({error})"
        ) from None


# -- output -----------------------------------------------------------------------------------


def write_results(results: Iterator[BatchResult], out: Path | None, stdout: IO[str]) -> int:
    """One JSON line per result; a file is written whole or not at all."""
    count = 0
    if out is None:
        for result in results:
            stdout.write(orjson.dumps(result.to_dict()).decode() + "\n")
            count += 1
        return count
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as handle:
        for result in results:
            handle.write(orjson.dumps(result.to_dict()) + b"\n")
            count += 1
    os.replace(partial, out)
    return count


def summary_line(info: JobInfo) -> str:
    return (
        f"job {info.id}: {info.state}, {info.request_count} requests "
        f"({format_counts(dict(info.counts))})"
    )


def job_exit_code(info: JobInfo) -> int:
    if not info.finished:
        return EXIT_OK
    return EXIT_OK if info.all_succeeded else EXIT_FAILED_REQUESTS


# -- providers and the sandbox ----------------------------------------------------------------


class Session(contextlib.ExitStack):
    """What a command needs: the runner, output streams, and a provider (possibly running on
    its bundled sandbox for the life of the command)."""

    def __init__(self, args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> None:
        super().__init__()
        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.sandboxed = False
        self.job_id: str | None = getattr(args, "job", None)

    def say(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def provider(
        self, name: str, config: Mapping[str, Any], *, allow_sandbox: bool
    ) -> BaseBatchProvider:
        cls = batch_provider_registry.get(name)
        instance = cls(config=config)
        wants = getattr(self.args, "sandbox", None)
        if wants is False or cls.SANDBOX is None or (instance.api_key is not None and not wants):
            if wants and cls.SANDBOX is None:
                raise UsageError(f"provider {name!r} has no bundled sandbox")
            return instance
        if not allow_sandbox:
            raise UsageError(
                f"no API key for {name!r}: set {' or '.join(cls.API_KEY_ENV) or 'its key'}; "
                "the offline sandbox lives only as long as one command, so use `batchcore run`"
            )
        module_name, _, attr = cls.SANDBOX.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        overrides = self.enter_context(factory())
        self.sandboxed = True
        keys = " or ".join(cls.API_KEY_ENV) or "an API key"
        self.say(
            f"No API key for {name!r} (set {keys} to use the real API): running against the "
            f"bundled offline {name} emulator at {overrides.get('base_url')}. Nothing leaves "
            "this machine and nothing is billed."
        )
        return cls(config={**config, **overrides})

    def runner(self, *, poll: PollSchedule | None = None, observe: bool = False) -> BatchRunner:
        observers = []
        if observe:
            display = ProgressDisplay(self.stderr)
            self.callback(display.close)
            observers.append(display)
        poll = poll or parse_poll(getattr(self.args, "poll_interval", None))
        if poll is None and self.sandboxed:
            poll = SANDBOX_POLL
        max_attempts = getattr(self.args, "max_attempts", None) or 3
        return BatchRunner(
            self.args.store, poll=poll, observers=observers, max_attempts=max_attempts
        )


# -- commands ---------------------------------------------------------------------------------


def cmd_providers(session: Session) -> int:
    infos = batch_provider_registry.providers()
    failures = batch_provider_registry.failures
    if session.args.json:
        session.stdout.write(
            orjson.dumps(
                {
                    "providers": [attrs.asdict(i) for i in infos],
                    "failures": [attrs.asdict(f) for f in failures],
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
            + "\n"
        )
        return EXIT_OK
    if not infos:
        session.stdout.write("No batch providers installed. Try: pip install batchcore-openai\n")
    for info in infos:
        origin = f"{info.distribution} {info.version}" if info.distribution else info.source
        session.stdout.write(f"{info.name:<16} {origin:<28} {info.description}\n")
    for failure in failures:
        session.stdout.write(f"FAILED  {failure}\n")
    return EXIT_OK


def _create_job(
    session: Session, *, allow_sandbox: bool
) -> tuple[BatchRunner, str, BaseBatchProvider]:
    args = session.args
    path = Path(args.input)
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist")
    config = parse_config(args.config)
    provider = session.provider(args.provider, config, allow_sandbox=allow_sandbox)
    runner = session.runner(observe=True)
    try:
        job_id = runner.create(
            provider,
            read_requests(path, provider, model=args.model),
            options={"sandbox": session.sandboxed, "input": str(path)},
        )
    except InvalidRequestError as error:
        if error.field == "custom_id" and error.custom_id and "more than once" in error.message:
            lines = _duplicate_lines(path, error.custom_id)
            raise InvalidRequestError(
                f"{path}: custom_id {error.custom_id!r} appears on lines "
                f"{', '.join(map(str, lines))}; custom_ids must be unique"
            ) from None
        raise
    session.job_id = job_id
    session.stdout.write(job_id + "\n")
    session.stdout.flush()
    return runner, job_id, provider


def cmd_run(session: Session) -> int:
    runner, job_id, provider = _create_job(session, allow_sandbox=True)
    info = runner.drive(job_id, provider=provider)
    return _finish(session, runner, info)


def cmd_submit(session: Session) -> int:
    runner, job_id, provider = _create_job(session, allow_sandbox=False)
    info = runner.drive(job_id, provider=provider, wait=False)
    session.say(f"{summary_line(info)}; follow it with `batchcore wait {job_id}`")
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return EXIT_OK


def _job_provider(session: Session, runner: BatchRunner, job_id: str) -> BaseBatchProvider:
    job = runner.store.job(job_id)
    if job.options.get("sandbox"):
        raise UsageError(
            f"job {job_id} ran on a sandbox emulator that ended with the command that started "
            "it; run it again with `batchcore run`"
        )
    config = {**job.config, **parse_config(session.args.config)}
    return session.provider(job.provider, config, allow_sandbox=False)


def cmd_wait(session: Session) -> int:
    runner = session.runner(observe=True)
    job_id = session.args.job
    info = runner.info(job_id)
    if not info.finished:
        info = runner.drive(job_id, provider=_job_provider(session, runner, job_id))
    return _finish(session, runner, info)


def _finish(session: Session, runner: BatchRunner, info: JobInfo) -> int:
    out = getattr(session.args, "output", None)
    if out is not None or session.args.command == "run":
        target = Path(out) if out else Path(f"{info.id}.results.jsonl")
        count = write_results(runner.results(info.id), target, session.stdout)
        session.say(f"{summary_line(info)}; {count} results written to {target}")
    else:
        session.say(summary_line(info))
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return job_exit_code(info)


def cmd_status(session: Session) -> int:
    runner = session.runner()
    info = runner.info(session.args.job)
    if session.args.json:
        session.stdout.write(
            orjson.dumps(info.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return EXIT_OK
    out = session.stdout
    out.write(summary_line(info) + "\n")
    out.write(f"  provider {info.provider}, created {info.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
    if info.error:
        out.write(f"  last error: {info.error}\n")
    for batch in info.batches:
        status = batch.status
        counts = (
            ""
            if status is None
            else (
                f" completed {status.completed}/{status.total}" if status.total is not None else ""
            )
        )
        out.write(
            f"  round {batch.round}: {batch.batch_id or '(not submitted)'} {batch.state}, "
            f"{batch.request_count} requests{counts}\n"
        )
    return EXIT_OK


def cmd_results(session: Session) -> int:
    runner = session.runner()
    info = runner.info(session.args.job)
    out = Path(session.args.output) if session.args.output else None
    count = write_results(runner.results(info.id), out, session.stdout)
    if not info.finished:
        session.say(f"job {info.id} is not finished: {count} results so far")
    elif out is not None:
        session.say(f"{count} results written to {out}")
    return EXIT_OK


def cmd_cancel(session: Session) -> int:
    runner = session.runner()
    job_id = session.args.job
    info = runner.info(job_id)
    if info.finished:
        session.say(f"job {job_id} is already {info.state}")
        return EXIT_OK
    info = runner.cancel(job_id, provider=_job_provider(session, runner, job_id))
    session.say(
        f"cancel requested for job {job_id}; finished results are kept. Collect them "
        f"with `batchcore wait {job_id}`"
    )
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return EXIT_OK


def cmd_jobs(session: Session) -> int:
    runner = session.runner()
    infos = runner.jobs()
    if session.args.json:
        session.stdout.write(
            orjson.dumps([i.to_dict() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return EXIT_OK
    for info in infos:
        session.stdout.write(
            f"{info.id}  {info.state:<9} {info.provider:<12} {info.request_count:>8} requests  "
            f"{info.created_at:%Y-%m-%d %H:%M}  {format_counts(dict(info.counts))}\n"
        )
    if not infos:
        session.stdout.write("No jobs yet.\n")
    return EXIT_OK


# -- argument parsing -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchcore",
        description="Run LLM batch jobs on any provider, durably.",
        epilog="Exit codes: 0 done, 1 some requests failed, 2 bad usage or input, 3 provider "
        "error (job kept, resume it), 4 unknown job or provider, 5 job busy, "
        "130 interrupted (job kept).",
    )
    parser.add_argument("--version", action="version", version=f"batchcore {__version__}")
    parser.add_argument("--store", help="job store file (default: $BATCHCORE_HOME/jobs.sqlite3)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text)

    def job_options(sub: argparse.ArgumentParser, *, config: bool = False) -> None:
        sub.add_argument("job", help="job id (see `batchcore jobs`)")
        if config:
            sub.add_argument(
                "--config",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="provider config for this run (e.g. api_key=...)",
            )

    sub = add("providers", "List installed providers and plugins that failed to load.")
    sub.add_argument("--json", action="store_true")

    for name, help_text in (
        ("run", "Submit INPUT, wait with progress, and write one result per request."),
        ("submit", "Submit INPUT and return at once; follow with `batchcore wait JOB`."),
    ):
        sub = add(name, help_text)
        sub.add_argument("input", help="JSONL: unified requests or OpenAI batch lines")
        sub.add_argument("--provider", required=True, help="provider name (`batchcore providers`)")
        sub.add_argument("--model", help="use this model for every request")
        sub.add_argument(
            "--config",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="provider config, repeatable (timeout=30, base_url=...)",
        )
        sub.add_argument(
            "--max-attempts",
            type=int,
            default=3,
            help="tries per request for expired/retryable failures (default 3)",
        )
        sub.add_argument(
            "--poll-interval",
            metavar="MIN[:MAX]",
            help="seconds between status polls (default 5:60, growing)",
        )
        sub.add_argument("--json", action="store_true", help="print the job as JSON at the end")
        if name == "run":
            sub.add_argument(
                "-o",
                "--output",
                metavar="OUT.jsonl",
                help="results file (default: JOB.results.jsonl)",
            )
            box = sub.add_mutually_exclusive_group()
            box.add_argument(
                "--sandbox",
                dest="sandbox",
                action="store_true",
                default=None,
                help="use the provider's offline emulator even with an API key",
            )
            box.add_argument(
                "--no-sandbox",
                dest="sandbox",
                action="store_false",
                help="never fall back to the offline emulator",
            )

    sub = add("status", "Show a job's state and batches.")
    job_options(sub)
    sub.add_argument("--json", action="store_true")

    for name, help_text in (
        ("wait", "Drive a job until it finishes, then report (and write results with -o)."),
        ("resume", "Continue a job from the store until it is finished (after a crash)."),
    ):
        sub = add(name, help_text)
        job_options(sub, config=True)
        sub.add_argument("-o", "--output", metavar="OUT.jsonl", help="write results here")
        sub.add_argument("--poll-interval", metavar="MIN[:MAX]")
        sub.add_argument("--json", action="store_true")

    sub = add("results", "Write a job's results as JSONL (to stdout, or -o FILE).")
    job_options(sub)
    sub.add_argument("-o", "--output", metavar="OUT.jsonl")

    sub = add("cancel", "Cancel a job's open batches; finished results are kept.")
    job_options(sub, config=True)
    sub.add_argument("--json", action="store_true")

    sub = add("jobs", "List the jobs in the store.")
    sub.add_argument("--json", action="store_true")
    return parser


COMMANDS = {
    "providers": cmd_providers,
    "run": cmd_run,
    "submit": cmd_submit,
    "status": cmd_status,
    "wait": cmd_wait,
    "resume": cmd_wait,
    "results": cmd_results,
    "cancel": cmd_cancel,
    "jobs": cmd_jobs,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    session = Session(args, stdout, stderr)
    try:
        with session:
            return COMMANDS[args.command](session)
    except KeyboardInterrupt:
        kept = f": `batchcore resume {session.job_id}`" if session.job_id else ""
        stderr.write(f"\nbatchcore: interrupted; the job is kept{kept}\n")
        return EXIT_INTERRUPTED
    except Exception as error:
        code = exit_code_for(error)
        if code is None:
            raise
        stderr.write(f"batchcore: error: {error}\n")
        if code == EXIT_PROVIDER and session.job_id:
            stderr.write(
                f"batchcore: the job is kept; continue it with "
                f"`batchcore resume {session.job_id}`\n"
            )
        return code


def exit_code_for(error: Exception) -> int | None:
    """The exit code of an error, or None for a bug (which then shows its traceback)."""
    if isinstance(error, UsageError | ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, InvalidRequestError) and error.status_code is None:
        return EXIT_USAGE  # found locally, before anything was submitted
    if isinstance(error, JobNotFoundError | ProviderNotFoundError | PluginLoadError):
        return EXIT_NOT_FOUND
    if isinstance(error, JobBusyError):
        return EXIT_BUSY
    if isinstance(error, ProviderError | BatchcoreError):
        return EXIT_PROVIDER
    return None


if __name__ == "__main__":
    raise SystemExit(main())

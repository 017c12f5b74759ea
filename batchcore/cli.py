"""The ``batchcore`` command.

Exit codes (scripts may rely on them):

====  ===================================================================================
0     done: the job finished and every request succeeded (or the command succeeded)
1     the job finished, but some requests did not succeed (see the results file)
2     bad usage or bad input, or no API key (nothing was recorded or submitted)
3     a provider or network error stopped the job, or it needs a decision; it is kept:
      the message says what to run (``batchcore resume JOB``, ``batchcore resolve JOB``)
4     no such job or provider
5     another process is running this job
6     the job store is unavailable or damaged (unreadable, read-only, disk full, payload
      files that cannot be written beside it, an older store on read-only media that cannot
      be upgraded in place); nothing recorded is lost: ``batchcore resume JOB`` continues
      once the cause is fixed
70    an internal error (a bug): please report it; ``--debug`` shows the traceback
130   interrupted (Ctrl-C); the job is kept: ``batchcore resume JOB``
143   terminated (SIGTERM); the job is kept: ``batchcore resume JOB``
====  ===================================================================================

No command prints a traceback unless asked (``--debug`` or ``BATCHCORE_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import attrs
import orjson

from batchcore import __version__
from batchcore.config import is_secret_key
from batchcore.errors import (
    BatchcoreError,
    ConfigurationError,
    InvalidRequestError,
    PluginLoadError,
    ProviderError,
    ProviderNotFoundError,
    StoreError,
)
from batchcore.jobs import (
    BatchRunner,
    BudgetError,
    JobAttentionError,
    JobBusyError,
    JobInfo,
    JobNotFoundError,
    JobState,
    JobStoppedError,
    JobStore,
    PollSchedule,
)
from batchcore.jobs.store import owner_token, payload_dir_for, public_url, store_location
from batchcore.jsonl import iter_file_objects
from batchcore.models import BatchRequest, BatchResult, BatchStatus, JobEvent, JobEventKind
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
EXIT_STORE = 6
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

SANDBOX_ENV = "BATCHCORE_SANDBOX"
DEBUG_ENV = "BATCHCORE_DEBUG"

SANDBOX_POLL = PollSchedule(min_interval=0.25, max_interval=1.0, factor=1.3)


class UsageError(Exception):
    """Bad arguments or input; reported with exit code 2."""


class Terminated(BaseException):
    """SIGTERM arrived; handled like Ctrl-C (the job is kept), with exit code 143."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def usd(value: Any) -> str:
    """Dollars readable at any size: cents for a real bill, six decimals for a test batch."""
    amount = float(value)
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.6f}"


def parse_budget(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip().lstrip("$")
    try:
        if float(value) <= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"--budget takes a positive amount of US dollars, got {text!r}") from None
    return value


def parse_duration(text: str | None, option: str) -> timedelta | None:
    """``90s``, ``30m``, ``6h``, ``2d`` (or a plain number of seconds)."""
    if text is None:
        return None
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise UsageError(
            f"{option} takes a duration like 90s, 30m, 6h or 2d, got {text!r}"
        ) from None
    if seconds <= 0:
        raise UsageError(f"{option} must be positive, got {text!r}")
    return timedelta(seconds=seconds)


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


def result_line(result: BatchResult, *, sandbox: bool) -> bytes:
    data = result.to_dict()
    if sandbox:
        data["sandbox"] = True  # an emulator's answer, never a model's
    return orjson.dumps(data) + b"\n"


def write_results(
    results: Iterator[BatchResult], out: Path | None, stdout: IO[str], *, sandbox: bool = False
) -> int:
    """One JSON line per result, to *out* or (None or ``-``) to stdout; a file is written
    whole or not at all."""
    count = 0
    if out is None or str(out) == "-":
        for result in results:
            stdout.write(result_line(result, sandbox=sandbox).decode())
            count += 1
        return count
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with open(partial, "wb") as handle:
            for result in results:
                handle.write(result_line(result, sandbox=sandbox))
                count += 1
        os.replace(partial, out)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror or error}") from None
    return count


def summary_line(info: JobInfo) -> str:
    sandbox = " [sandbox: emulated answers]" if info.sandbox else ""
    return (
        f"job {info.id}: {info.state}{sandbox}, {info.request_count} requests "
        f"({format_counts(dict(info.counts))})"
    )


def job_exit_code(info: JobInfo) -> int:
    if not info.finished:
        return EXIT_OK
    return EXIT_OK if info.all_succeeded else EXIT_FAILED_REQUESTS


#: How long a driver's hold on its job outlives it when it stops answering (``--lease``).
DEFAULT_LEASE = 120.0


def _lease(args: argparse.Namespace) -> float:
    lease = getattr(args, "lease", None)
    if lease is None:
        return DEFAULT_LEASE
    if lease <= 0:
        raise UsageError("--lease takes a positive number of seconds")
    return float(lease)


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

    def wants_sandbox(self) -> bool:
        flag = getattr(self.args, "sandbox", None)
        return _flag(SANDBOX_ENV) if flag is None else bool(flag)

    def provider(self, name: str, config: Mapping[str, Any], *, sandbox: bool) -> BaseBatchProvider:
        """The provider for a command: on the real API (an API key is required), or on its
        bundled offline emulator when *sandbox* (only when asked: ``--sandbox`` or
        ``BATCHCORE_SANDBOX=1``; never as a fallback). Its payload files go where the store
        keeps them (beside a SQLite store), never to the system temp directory."""
        cls = batch_provider_registry.get(name)
        config = {"workdir": str(payload_dir_for(self.args.store)), **config}
        instance = cls(config=config)
        if not sandbox:
            if instance.api_key is None:
                keys = " or ".join(cls.API_KEY_ENV) or "the provider's key"
                offline = (
                    "; or pass --sandbox to run offline on the bundled emulator (invented "
                    "answers, nothing billed)"
                    if cls.SANDBOX
                    else ""
                )
                raise UsageError(
                    f"no API key for {name!r}: set {keys} or pass --config api_key=...{offline}"
                )
            return instance
        if cls.SANDBOX is None:
            raise UsageError(f"provider {name!r} has no bundled sandbox")
        module_name, _, attr = cls.SANDBOX.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        overrides = self.enter_context(factory())
        self.sandboxed = True
        self.say(
            f"SANDBOX: running against the bundled offline {name} emulator at "
            f"{overrides.get('base_url')}. The answers are invented, nothing leaves this "
            'machine and nothing is billed; every result says "sandbox": true.'
        )
        return cls(config={**config, **overrides})

    def has_key(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether provider *name* finds an API key in *config* or this environment."""
        instance = batch_provider_registry.get(name)(config=config)
        try:
            return instance.api_key is not None
        finally:
            instance.close()

    def store(self, *, readonly: bool = False) -> JobStore:
        store = JobStore(self.args.store, readonly=readonly)
        self.callback(store.close)
        return store

    def runner(self, *, observe: bool = False, readonly: bool = False) -> BatchRunner:
        observers = []
        if observe:
            display = ProgressDisplay(self.stderr)
            self.callback(display.close)
            observers.append(display)
        poll = parse_poll(getattr(self.args, "poll_interval", None))
        if poll is None and self.sandboxed and self.args.command == "run":
            poll = SANDBOX_POLL
        return BatchRunner(
            self.store(readonly=readonly),
            poll=poll,
            observers=observers,
            max_attempts=getattr(self.args, "max_attempts", None),
            submit_concurrency=_submit_concurrency(self.args),
            lease_seconds=_lease(self.args),
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


def _create_job(session: Session, *, sandbox: bool) -> tuple[BatchRunner, str, BaseBatchProvider]:
    args = session.args
    path = Path(args.input)
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist")
    config = parse_config(args.config)
    provider = session.provider(args.provider, config, sandbox=sandbox)
    runner = session.runner(observe=True)
    options: dict[str, Any] = {"sandbox": sandbox, "input": str(path)}
    if args.model:
        options["model"] = args.model
    try:
        job_id = runner.create(
            provider,
            read_requests(path, provider, model=args.model),
            options=options,
            deadline=parse_duration(args.deadline, "--deadline"),
            reuse_results=args.reuse_results,
            budget_usd=parse_budget(args.budget),
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
    runner, job_id, provider = _create_job(session, sandbox=session.wants_sandbox())
    info = runner.drive(job_id, provider=provider)
    return _finish(session, runner, info)


def cmd_estimate(session: Session) -> int:
    args = session.args
    path = Path(args.input)
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist")
    cls = batch_provider_registry.get(args.provider)
    provider = cls(config=parse_config(args.config))
    session.callback(provider.close)
    runner = BatchRunner(session.store(readonly=True))
    estimate = runner.estimate(
        provider, read_requests(path, provider, model=args.model), model=args.model
    )
    if args.json:
        session.stdout.write(orjson.dumps(estimate.to_dict(), option=orjson.OPT_INDENT_2).decode())
        session.stdout.write("\n")
        return EXIT_OK
    out = session.stdout
    tokens = f"{estimate.input_tokens_expected:,} expected, at most {estimate.input_tokens_upper:,}"
    out.write(
        f"{estimate.requests:,} requests in {estimate.batches} batch(es) on {args.provider}\n"
    )
    out.write(f"  input tokens: {tokens}\n")
    bound = estimate.max_output_tokens
    out.write(
        f"  output tokens: at most {bound:,}\n"
        if bound is not None
        else "  output tokens: unbounded (set max_tokens)\n"
    )
    if estimate.cost_usd_expected is not None:
        out.write(
            f"  cost at batch prices: {usd(estimate.cost_usd_expected)} expected, at most "
            f"{usd(estimate.cost_usd_max)}\n"
            if estimate.cost_usd_max is not None
            else f"  cost at batch prices: {usd(estimate.cost_usd_expected)} expected\n"
        )
    else:
        why = estimate.pricing_error or ("no price known for " + ", ".join(estimate.unknown_prices))
        out.write(f"  cost: unknown ({why})\n")
    out.write(f"  how: {estimate.method}\n")
    for line in estimate.assumptions:
        out.write(f"  assumption: {line}\n")
    return EXIT_OK


def cmd_submit(session: Session) -> int:
    if session.wants_sandbox():
        raise UsageError(
            "the sandbox lives only as long as one command, so a submitted job could never "
            "be collected: use `batchcore run --sandbox`"
        )
    runner, job_id, provider = _create_job(session, sandbox=False)
    if runner.store.database.dialect == "sqlite":
        info = runner.drive(job_id, provider=provider, wait=False)
        session.say(f"{summary_line(info)}; follow it with `batchcore wait {job_id}`")
    else:
        # A shared store: the job is recorded and prepared; workers submit and drive it.
        info = runner.info(job_id)
        session.say(
            f"{summary_line(info)}; recorded in {runner.store.where} for `batchcore worker` "
            f"to drive; follow it with `batchcore status {job_id}` or `batchcore wait {job_id}`"
        )
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return EXIT_OK


def _never_continued(job_id: str) -> UsageError:
    return UsageError(
        f"job {job_id} ran on a sandbox emulator, which ended with the command that started "
        "it; a sandbox job is never continued, on the sandbox or on the real API: run the "
        "input again with `batchcore run --sandbox`"
    )


def _job_provider(session: Session, runner: BatchRunner, job_id: str) -> BaseBatchProvider:
    job = runner.store.job(job_id)
    if job.options.get("sandbox"):
        raise _never_continued(job_id)
    if session.wants_sandbox():
        raise UsageError(
            f"job {job_id} runs on the real {job.provider} API; it cannot be continued on the "
            "sandbox (drop --sandbox / BATCHCORE_SANDBOX)"
        )
    given = parse_config(session.args.config)
    session.job_id = job_id
    provider = session.provider(job.provider, {**job.config, **given}, sandbox=False)
    changes = config_changes(job.config, given)
    if changes:
        detail = "given again for this command: " + "; ".join(changes)
        runner.store.record_event(job_id, "options", detail, actor=owner_token())
        session.say(f"job {job_id}: {detail}")
    return provider


def config_changes(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """What ``--config`` given again changes against the job's recorded config, in words that
    never show a secret: a secret key is only said to be given, a URL loses its credentials."""
    changes = []
    for key, value in given.items():
        if is_secret_key(key):
            changes.append(f"{key} given")
            continue
        shown = public_url(value) if isinstance(value, str) else value
        if key not in recorded:
            changes.append(f"{key} set to {shown}")
        elif str(recorded[key]) != str(shown):
            changes.append(f"{key} {recorded[key]} -> {shown}")
    return changes


def cmd_wait(session: Session) -> int:
    job_id = session.args.job
    session.job_id = job_id
    if session.args.command == "wait" and isinstance(store_location(session.args.store), str):
        # A shared store: workers drive its jobs; waiting is only watching, from anywhere.
        runner = session.runner(readonly=True)
        return _finish(session, runner, _watch(session, runner, job_id))
    runner = session.runner(observe=True)
    info = runner.info(job_id)
    if not info.finished:
        info = runner.drive(job_id, provider=_job_provider(session, runner, job_id))
    return _finish(session, runner, info)


#: How often `wait` reads a shared store while workers drive the job (reads are cheap).
WATCH_POLL = PollSchedule(min_interval=1.0, max_interval=10.0)


def _watch(session: Session, runner: BatchRunner, job_id: str) -> JobInfo:
    """Follow a job of a shared store until it ends, from the store alone: no API key, no
    lease, nothing sent; the workers (or another process's ``resume``) drive it."""
    args = session.args
    if args.max_attempts is not None:
        raise UsageError(
            "--max-attempts changes how a job is driven, and on a shared store `wait` only "
            f"watches while the workers drive it: give it to `batchcore resume {job_id}`"
        )
    info = runner.info(job_id)
    if info.finished:
        return info
    if args.config:
        session.say("note: --config is not needed: `wait` only reads the store here")
    session.say(
        f"job {job_id}: watching it in {runner.store.where} while `batchcore worker` processes "
        "drive it (no API key needed, nothing sent from here; Ctrl-C stops only the watching). "
        f"`batchcore resume {job_id}` drives it from this machine instead."
    )
    display = ProgressDisplay(session.stderr)
    session.callback(display.close)
    follower = _StoreFollower(runner, job_id, display)
    poll = parse_poll(args.poll_interval) or WATCH_POLL
    quiet = 0
    while True:
        info, changed = follower.look()
        if info.finished:
            return info
        driven = info.lease_until is not None and info.lease_until.timestamp() > time.time()
        if info.state == JobState.ATTENTION.value:
            decide = f"`batchcore status {job_id}`, then `batchcore resolve {job_id}`"
            raise JobAttentionError(info.error or f"job {job_id} needs a decision: {decide}")
        if info.state == JobState.ERROR.value and not driven:
            raise JobStoppedError(f"job {job_id} stopped: {info.error or 'see batchcore status'}")
        if info.sandbox and not driven:
            raise _never_continued(job_id)  # its driver is gone; no worker can run it
        quiet = 0 if changed else quiet + 1  # look again soon while things happen
        time.sleep(poll.delay(quiet))


class _StoreFollower:
    """What a shared store says about a job, turned into progress events for a display: the
    batches' states, the counts, and the job's recorded events (which worker did what)."""

    def __init__(self, runner: BatchRunner, job_id: str, display: ProgressDisplay) -> None:
        self._runner = runner
        self._job_id = job_id
        self._display = display
        self._events = len(runner.store.events(job_id))  # only what happens from now on
        self._batches: dict[int, tuple[str | None, str]] = {}
        self._counts: dict[str, int] | None = None

    def look(self) -> tuple[JobInfo, bool]:
        """Show what changed since the last look: (the job now, whether anything changed)."""
        info = self._runner.info(self._job_id)
        changed = dict(info.counts) != self._counts
        self._counts = dict(info.counts)
        for row in self._runner.store.events(self._job_id)[self._events :]:
            self._events += 1
            changed = True
            by = f" by {row.actor}" if row.actor else ""
            detail = f"{row.kind}{by}: {row.detail}" if row.detail else row.kind + by
            self._display(self._event(info, JobEventKind.NOTICE, row.batch_id, detail=detail))
        kind = JobEventKind.STATUS_CHANGED
        for index, batch in enumerate(info.batches):
            if self._batches.get(index) == (batch.batch_id, batch.state):
                continue
            if batch.batch_id is not None and self._batches.get(index, (None, ""))[0] is None:
                kind = JobEventKind.SUBMITTED  # a batch reached the vendor since the last look
            self._batches[index] = (batch.batch_id, batch.state)
            changed = True
            if batch.batch_id is not None:
                seen = self._event(info, JobEventKind.SUBMITTED, batch.batch_id, batch.status)
                self._display.track(seen)
        if info.finished:
            self._display(self._event(info, JobEventKind.FINISHED))
        elif changed:  # one line for everything that changed, once the display knows it all
            self._display(self._event(info, kind))
        return info, changed

    @staticmethod
    def _event(
        info: JobInfo,
        kind: JobEventKind,
        batch_id: str | None = None,
        status: BatchStatus | None = None,
        detail: str | None = None,
    ) -> JobEvent:
        return info.event(kind, at=time.time(), batch_id=batch_id, status=status, detail=detail)


def _finish(session: Session, runner: BatchRunner, info: JobInfo) -> int:
    out = getattr(session.args, "output", None)
    if out is not None or session.args.command == "run":
        target = Path(out) if out else Path(f"{info.id}.results.jsonl")
        count = write_results(runner.results(info.id), target, session.stdout, sandbox=info.sandbox)
        where = "stdout" if str(target) == "-" else target
        session.say(f"{summary_line(info)}; {count} results written to {where}")
    else:
        session.say(summary_line(info))
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return job_exit_code(info)


def cmd_status(session: Session) -> int:
    runner = session.runner(readonly=True)
    info = runner.info(session.args.job)
    if session.args.json:
        data = info.to_dict()
        cost = runner.cost(info.id)
        real = not info.sandbox  # a sandbox's usage is emulated: it costs nothing
        data["cost_usd"] = float(cost.cost_usd) if real and cost.cost_usd is not None else None
        data["cost"] = cost.to_dict() if real else None
        saved = cost.saved_by_reuse_usd  # answers reused from earlier jobs: not paid again
        data["saved_by_reuse_usd"] = float(saved) if real and saved is not None else None
        session.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    out = session.stdout
    out.write(summary_line(info) + "\n")
    out.write(f"  provider {info.provider}, created {info.created_at:%Y-%m-%d %H:%M:%S} UTC\n")
    if info.sandbox:
        out.write("  sandbox: ran on the bundled offline emulator; its answers are invented\n")
    if info.owner and not info.finished:
        until = f" until {info.lease_until:%H:%M:%S} UTC" if info.lease_until else ""
        out.write(f"  driven by {info.owner}{_since(info.owner_since)} (lease{until})\n")
    if info.error:
        out.write(f"  last error: {info.error}\n")
    cost = runner.cost(info.id)
    if cost.models and not info.sandbox:  # a sandbox's usage is emulated: no cost to show
        if cost.cost_usd is not None:
            saving = (
                f", {usd(cost.saving_usd)} less than at standard prices" if cost.saving_usd else ""
            )
            out.write(f"  cost so far: {usd(cost.cost_usd)} at batch prices{saving}\n")
        else:
            why = cost.pricing_error or "no price known for " + ", ".join(cost.unknown_prices)
            out.write(f"  cost: unknown ({why})\n")
    if cost.reused_requests and not info.sandbox:
        kept = "unknown" if cost.saved_by_reuse_usd is None else usd(cost.saved_by_reuse_usd)
        out.write(
            f"  reused: {cost.reused_requests} answers of earlier jobs, {kept} not paid again\n"
        )
    for batch in info.batches:
        status = batch.status
        counts = (
            f" completed {status.completed}/{status.total}"
            if status is not None and status.total is not None
            else ""
        )
        spent = "" if batch.cost_usd is None else f", {usd(batch.cost_usd)}"
        out.write(
            f"  round {batch.round}: {batch.batch_id or '(not submitted)'} {batch.state}, "
            f"{batch.request_count} requests{counts}{spent}\n"
        )
        if batch.waiting_for is not None:  # room in the vendor's queue
            when = batch.next_step_at
            by = "" if when is None else f" (next try by {when:%H:%M:%S} UTC)"
            out.write(f"    waiting for {batch.waiting_for}{by}: {batch.error or 'its turn'}\n")
        elif batch.next_step_at is not None and batch.error:
            out.write(f"    waiting until {batch.next_step_at:%H:%M:%S} UTC: {batch.error}\n")
        if batch.candidates:
            out.write(f"    needs a decision; candidate batches: {', '.join(batch.candidates)}\n")
        if batch.claimed_by and batch.claimed_since is not None:
            out.write(f"    held by {batch.claimed_by} since {batch.claimed_since:%H:%M:%S} UTC\n")
    return EXIT_OK


def cmd_results(session: Session) -> int:
    runner = session.runner(readonly=True)
    info = runner.info(session.args.job)
    out = Path(session.args.output) if session.args.output else None
    count = write_results(runner.results(info.id), out, session.stdout, sandbox=info.sandbox)
    if not info.finished:
        session.say(f"job {info.id} is not finished: {count} results so far")
    elif out is not None and str(out) != "-":
        session.say(f"{count} results written to {out}")
    return EXIT_OK


def cmd_cancel(session: Session) -> int:
    runner = session.runner()
    job_id = session.args.job
    info = runner.info(job_id)
    if info.finished:
        session.say(f"job {job_id} is already {info.state}")
        return EXIT_OK
    job = runner.store.job(job_id)
    if isinstance(store_location(session.args.store), str) and not session.has_key(
        job.provider, {**job.config, **parse_config(session.args.config)}
    ):
        # A shared store and no key here: the workers driving the job send the cancels.
        runner.store.request_cancel(job_id)
        info = runner.info(job_id)
        session.say(
            f"cancel of job {job_id} recorded in {runner.store.where}; the workers driving it "
            "cancel its open batches at the vendor (no API key here to do it from this "
            f"machine). Finished results are kept. Collect them with `batchcore wait {job_id}`"
        )
    else:
        info = runner.cancel(job_id, provider=_job_provider(session, runner, job_id))
        session.say(
            f"cancel requested for job {job_id}; finished results are kept. Collect them "
            f"with `batchcore wait {job_id}`"
        )
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return EXIT_OK


def cmd_resolve(session: Session) -> int:
    runner = session.runner()
    job_id = session.args.job
    provider = _job_provider(session, runner, job_id)
    info = runner.resolve(
        job_id, adopt=session.args.adopt, resubmit=session.args.resubmit, provider=provider
    )
    what = (
        f"batch {session.args.adopt} adopted"
        if session.args.adopt
        else "the batch will be submitted again"
    )
    session.say(f"job {job_id}: {what}; continue with `batchcore resume {job_id}`")
    if session.args.json:
        session.stdout.write(orjson.dumps(info.to_dict()).decode() + "\n")
    return EXIT_OK


def _submit_concurrency(args: argparse.Namespace) -> int | None:
    value: int | None = getattr(args, "submit_concurrency", None)
    if value is not None and value < 1:
        raise UsageError("--submit-concurrency takes a positive number")
    return value


def cmd_worker(session: Session) -> int:
    from batchcore.jobs.worker import Worker

    args = session.args
    if args.concurrency < 1:
        raise UsageError("--concurrency takes a positive number")
    if args.lease <= 0:
        raise UsageError("--lease takes a positive number of seconds")
    worker = Worker(
        args.store,
        concurrency=args.concurrency,
        submit_concurrency=_submit_concurrency(args) or 4,
        burst=args.burst,
        claim_seconds=args.lease,
        config=parse_config(args.config),
        observers=[ProgressDisplay(session.stderr, tty=False)] if args.verbose else [],
    )
    served = worker.served_providers()
    where = JobStore(args.store, readonly=True)
    session.callback(where.close)
    session.say(
        f"worker {worker.name}: {args.concurrency} thread(s) on {where.where}, driving jobs of "
        f"{', '.join(served) or 'no provider (no API key in this environment)'}"
        + ("; exits when no job is left (--burst)" if args.burst else "; Ctrl-C to stop")
    )
    try:
        steps = worker.run()
    except (KeyboardInterrupt, Terminated):
        worker.stop()
        session.say(f"worker {worker.name}: stopping; its claims are released or expire")
        raise
    session.say(f"worker {worker.name}: done, {steps} steps")
    return EXIT_OK


def _since(when: datetime | None) -> str:
    return "" if when is None else f" since {when:%Y-%m-%d %H:%M:%S} UTC"


def cmd_jobs(session: Session) -> int:
    runner = session.runner(readonly=True)
    infos = runner.jobs()
    if session.args.json:
        session.stdout.write(
            orjson.dumps([i.to_dict() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return EXIT_OK
    for info in infos:
        notes = " sandbox" if info.sandbox else ""
        if info.owner and not info.finished:
            notes += f" driven by {info.owner}{_since(info.owner_since)}"
        holders: dict[str, datetime | None] = {}
        for batch in info.batches:
            if batch.claimed_by:  # each holder since its oldest claim
                known = [t for t in (holders.get(batch.claimed_by), batch.claimed_since) if t]
                holders[batch.claimed_by] = min(known, default=None)
        if holders:
            held = ", ".join(f"{who}{_since(when)}" for who, when in sorted(holders.items()))
            notes += f" batches held by {held}"
        session.stdout.write(
            f"{info.id}  {info.state:<9} {info.provider:<12} {info.request_count:>8} requests  "
            f"{info.created_at:%Y-%m-%d %H:%M}  {format_counts(dict(info.counts))}{notes}\n"
        )
    if not infos:
        session.stdout.write("No jobs yet.\n")
    return EXIT_OK


# -- argument parsing -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchcore",
        description="Run LLM batch jobs on any provider, durably.",
        epilog="Exit codes: 0 done, 1 some requests failed, 2 bad usage or input or no API key, "
        "3 provider error or a decision needed (job kept), 4 unknown job or provider, 5 job "
        "busy, 6 job store unavailable or damaged, 70 internal error, 130 interrupted, "
        "143 terminated (job kept).",
    )
    parser.add_argument("--version", action="version", version=f"batchcore {__version__}")
    parser.add_argument(
        "--store",
        metavar="PATH_OR_URL",
        help="job store: a SQLite file or a postgresql:// URL (default: $BATCHCORE_STORE, else "
        "$BATCHCORE_HOME/jobs.sqlite3)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print a traceback with errors, and every log record at DEBUG level (or "
        "BATCHCORE_DEBUG=1)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text)

    def config_option(sub: argparse.ArgumentParser, help_text: str) -> None:
        sub.add_argument(
            "--config", action="append", default=[], metavar="KEY=VALUE", help=help_text
        )

    def lease_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--lease",
            type=float,
            default=None,
            metavar="SECONDS",
            help="how long this process's hold on the job outlives it if it stops answering "
            "(default 120; renewed every quarter of it, also inside long steps): another "
            "process takes the job over only after that, or at once when this one is dead on "
            "the same machine",
        )

    def drive_options(sub: argparse.ArgumentParser, *, given_again: bool) -> None:
        again = "; given again, overrides what the job recorded" if given_again else ""
        sub.add_argument(
            "--max-attempts",
            type=int,
            default=None,
            help=f"tries per request for expired/retryable failures (default 3){again}",
        )
        sub.add_argument(
            "--poll-interval",
            metavar="MIN[:MAX]",
            help=f"seconds between status polls (default 5:60, growing){again}",
        )
        sub.add_argument(
            "--submit-concurrency",
            type=int,
            default=None,
            metavar="N",
            help=f"prepared batches uploaded and created at once (default 4){again}",
        )

    def job_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("job", help="job id (see `batchcore jobs`)")

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
        config_option(sub, "provider config, repeatable (timeout=30, base_url=...)")
        drive_options(sub, given_again=False)
        lease_option(sub)
        sub.add_argument("--json", action="store_true", help="print the job as JSON at the end")
        sub.add_argument(
            "--deadline",
            metavar="DURATION",
            help="stop the job after this long (30m, 6h, 2d): open batches are cancelled, "
            "finished results kept, unfinished requests end cancelled (deadline_exceeded)",
        )
        sub.add_argument(
            "--budget",
            metavar="USD",
            help="refuse the job (exit 2, nothing recorded or sent) when its estimated cost "
            "could exceed this many dollars; retry rounds stop before crossing it",
        )
        sub.add_argument(
            "--reuse-results",
            action="store_true",
            help="answer requests already answered successfully by an earlier job of this "
            "store (same provider, model and body) from that answer, without submitting them",
        )
        box = sub.add_mutually_exclusive_group()
        box.add_argument(
            "--sandbox",
            dest="sandbox",
            action="store_true",
            default=None,
            help="run offline on the provider's bundled emulator (invented answers, nothing "
            "billed; also BATCHCORE_SANDBOX=1)",
        )
        box.add_argument(
            "--no-sandbox",
            dest="sandbox",
            action="store_false",
            help="the real API even when BATCHCORE_SANDBOX is set",
        )
        if name == "run":
            sub.add_argument(
                "-o",
                "--output",
                metavar="OUT.jsonl",
                help="results file (default: JOB.results.jsonl; '-': stdout)",
            )

    sub = add(
        "estimate",
        "Estimate INPUT's tokens and cost at batch prices, offline: nothing is recorded or sent.",
    )
    sub.add_argument("input", help="JSONL: unified requests or OpenAI batch lines")
    sub.add_argument("--provider", required=True, help="provider name (`batchcore providers`)")
    sub.add_argument("--model", help="use this model for every request")
    config_option(sub, "provider config (limits, models) for the split into batches")
    sub.add_argument("--json", action="store_true")

    sub = add("status", "Show a job's state and batches (reads the store only).")
    job_options(sub)
    sub.add_argument("--json", action="store_true")

    for name, help_text in (
        (
            "wait",
            "Wait for a job to finish, then report (and write results with -o): drives it on a "
            "SQLite store; on a PostgreSQL store only watches while the workers drive it.",
        ),
        ("resume", "Continue a job from the store until it is finished (after a crash)."),
    ):
        sub = add(name, help_text)
        job_options(sub)
        config_option(sub, "provider config for this run (e.g. api_key=...)")
        drive_options(sub, given_again=True)
        lease_option(sub)
        sub.add_argument(
            "-o", "--output", metavar="OUT.jsonl", help="write results here ('-': stdout)"
        )
        sub.add_argument("--json", action="store_true")

    sub = add("results", "Write a job's results as JSONL (to stdout, or -o FILE).")
    job_options(sub)
    sub.add_argument("-o", "--output", metavar="OUT.jsonl")

    sub = add("cancel", "Cancel a job's open batches; finished results are kept.")
    job_options(sub)
    config_option(sub, "provider config for this call (e.g. api_key=...)")
    sub.add_argument("--json", action="store_true")

    sub = add(
        "resolve",
        "Decide for a job whose lost create left several candidate batches (see `status`).",
    )
    job_options(sub)
    choice = sub.add_mutually_exclusive_group(required=True)
    choice.add_argument("--adopt", metavar="BATCH_ID", help="this vendor batch is the job's")
    choice.add_argument(
        "--resubmit",
        action="store_true",
        help="none of the candidates is the job's: create its batch again",
    )
    config_option(sub, "provider config for this call (e.g. api_key=...)")
    sub.add_argument("--json", action="store_true")

    sub = add(
        "worker",
        "Drive every job of the store: claim one step at a time (submit, poll, fetch) under a "
        "lease; run as many as you like, on as many machines, against one PostgreSQL store.",
    )
    sub.add_argument("--burst", action="store_true", help="exit once no job is left to drive")
    sub.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="steps done at once (threads)"
    )
    sub.add_argument(
        "--submit-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="of those steps, uploads and creates at once (default 4)",
    )
    sub.add_argument(
        "--lease",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a claim outlives a worker that stopped answering (default 60; renewed "
        "every quarter of it)",
    )
    config_option(sub, "provider config for every job (keys come from the environment)")
    sub.add_argument("-v", "--verbose", action="store_true", help="print each job event")

    sub = add("jobs", "List the jobs in the store (reads the store only).")
    sub.add_argument("--json", action="store_true")
    return parser


COMMANDS = {
    "providers": cmd_providers,
    "run": cmd_run,
    "submit": cmd_submit,
    "estimate": cmd_estimate,
    "status": cmd_status,
    "wait": cmd_wait,
    "resume": cmd_wait,
    "results": cmd_results,
    "cancel": cmd_cancel,
    "resolve": cmd_resolve,
    "worker": cmd_worker,
    "jobs": cmd_jobs,
}


@contextlib.contextmanager
def _debug_log(stream: IO[str], debug: bool) -> Iterator[None]:
    """With ``--debug``, every library's log records (batchcore's, the vendor SDK's, the HTTP
    client's) at DEBUG go to *stream* for the life of the command."""
    if not debug:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """SIGTERM unwinds the command like Ctrl-C (leases released, the job kept)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    debug = args.debug or _flag(DEBUG_ENV)
    session = Session(args, stdout, stderr)
    try:
        with _sigterm_as_exception(), _debug_log(stderr, debug), session:
            return COMMANDS[args.command](session)
    except (KeyboardInterrupt, Terminated) as stop:
        code = EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
        how = "terminated" if code == EXIT_TERMINATED else "interrupted"
        if session.job_id:
            stderr.write(
                f"\nbatchcore: {how}; the job is kept: `batchcore resume {session.job_id}`\n"
            )
        else:
            stderr.write(f"\nbatchcore: {how} before a job was recorded; nothing was kept\n")
        return code
    except Exception as error:
        code = exit_code_for(error)
        if debug:
            traceback.print_exception(error, file=stderr)
        if code == EXIT_INTERNAL:
            stderr.write(
                f"batchcore: internal error: {type(error).__name__}: {error}\n"
                "batchcore: this is a bug; please report it (run with --debug for the "
                "traceback)\n"
            )
            return code
        stderr.write(f"batchcore: error: {error}\n")
        if code in (EXIT_PROVIDER, EXIT_STORE) and session.job_id:
            hint = "once the cause is fixed, " if code == EXIT_STORE else ""
            if "batchcore resolve" not in str(error):
                stderr.write(
                    f"batchcore: the job is kept; {hint}continue it with "
                    f"`batchcore resume {session.job_id}`\n"
                )
        elif code == EXIT_STORE and args.command in ("run", "submit"):
            stderr.write("batchcore: no job was recorded and nothing was sent\n")
        return code


def exit_code_for(error: Exception) -> int:
    """The documented exit code of an error (70 for a bug)."""
    if isinstance(error, UsageError | ConfigurationError | BudgetError):
        return EXIT_USAGE
    if isinstance(error, InvalidRequestError) and error.status_code is None:
        return EXIT_USAGE  # found locally, before anything was submitted
    if isinstance(error, JobNotFoundError | ProviderNotFoundError | PluginLoadError):
        return EXIT_NOT_FOUND
    if isinstance(error, JobBusyError):
        return EXIT_BUSY
    if isinstance(error, StoreError):
        return EXIT_STORE
    if isinstance(error, ProviderError | BatchcoreError):
        return EXIT_PROVIDER
    return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())

"""Ready-made progress bars for notebooks and terminals, fed by ``on_progress``.

::

    from batchcore.jobs import BatchRunner
    from batchcore.progress_bars import tqdm_progress

    runner = BatchRunner()
    runner.run("openai", requests, on_progress=tqdm_progress())

    # job-3f2a…:  40%|████      | 40/100 [12:03, succeeded 38, failed 2 |
    #   batches: completed 1, in_progress 1 | $0.0123]

The bar counts the job's requests that are done (succeeded or failed, final) out of all of
them, and shows the numbers of the ``batchcore run`` status line: requests succeeded and failed,
batches per state, and the cost so far when it is known. Waits (a Retry-After, a full vendor
queue), notices and retries are printed above the bar, as the command prints them. The bar
closes itself when the job finishes or stops; a new job gets a new bar.

:func:`tqdm_progress` uses tqdm (``pip install 'batchcore[progress]'``): ``tqdm.auto`` draws a
widget in Jupyter and text elsewhere. :func:`rich_progress` draws with rich instead
(``pip install rich``). Both work with :class:`~batchcore.aio.AsyncBatchRunner`'s
``on_progress`` too. Neither library is imported before a bar is made.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import IO, Any, Protocol

from batchcore.jobs.info import Progress
from batchcore.models import JobEventKind

__all__ = ["RichProgress", "TqdmProgress", "describe", "rich_progress", "tqdm_progress"]

#: Events whose detail stays on screen above the bar (the ones ``batchcore run`` keeps).
_PRINTED = frozenset(
    {JobEventKind.WAITING, JobEventKind.NOTICE, JobEventKind.RETRIED, JobEventKind.STOPPED}
)
_ENDS = frozenset({JobEventKind.FINISHED, JobEventKind.STOPPED})
#: tqdm's layout without its rate and ETA: results of a batch arrive all at once, hours apart,
#: so a rate says nothing.
TQDM_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


def describe(progress: Progress) -> str:
    """The numbers a bar shows beside its count: ``succeeded 38, failed 2 | batches:
    completed 1, in_progress 1 | $0.0123`` (the cost only when known)."""
    parts = [
        f"succeeded {progress.succeeded}, failed {progress.failed}",
        f"batches: {_states(progress.batches)}",
    ]
    if progress.cost_usd is not None:
        parts.append(f"${progress.cost_usd:.4f}")
    return " | ".join(parts)


def _states(batches: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(batches.items()) if n) or "-"


def _notice(progress: Progress) -> str | None:
    """The line printed above the bar for an event worth keeping, or None."""
    event = progress.event
    if event.kind not in _PRINTED or not event.detail:
        return None
    return f"{progress.job_id} {event.kind.value}: {event.detail}"


class _Bar(Protocol):
    """What is used of a tqdm bar (tqdm ships no type information)."""

    n: int
    total: int

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


class TqdmProgress:
    """An ``on_progress`` callback drawing one tqdm bar per job (see :func:`tqdm_progress`)."""

    def __init__(
        self,
        *,
        file: IO[str] | None = None,
        desc: str | None = None,
        leave: bool = True,
        tqdm_class: Any = None,
        **options: Any,
    ) -> None:
        if tqdm_class is None:
            tqdm_class = _import("tqdm.auto", "pip install 'batchcore[progress]'").tqdm
        self._tqdm = tqdm_class
        self.file = file
        self.desc = desc
        self.leave = leave
        self.options = options
        self._bar: _Bar | None = None
        self._job: str | None = None

    def __call__(self, progress: Progress) -> None:
        if self._job != progress.job_id:
            self.close()
            self._job = progress.job_id
            self._bar = self._tqdm(
                total=progress.requests,
                desc=self.desc or progress.job_id,
                unit="req",
                file=self.file,
                leave=self.leave,
                dynamic_ncols=self.file is None,
                **{"bar_format": TQDM_FORMAT, **self.options},
            )
        bar = self._bar
        assert bar is not None
        line = _notice(progress)
        if line is not None:
            self._tqdm.write(line, file=self.file)
        bar.total = progress.requests
        bar.n = progress.done
        bar.set_postfix_str(describe(progress), refresh=False)
        bar.refresh()
        if progress.event.kind in _ENDS:
            self.close()

    def close(self) -> None:
        """Close the bar now (a drive that was interrupted sends no last event)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._job = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tqdm_progress(
    *,
    file: IO[str] | None = None,
    desc: str | None = None,
    leave: bool = True,
    **options: Any,
) -> TqdmProgress:
    """A tqdm bar as an ``on_progress`` callback: ``runner.run(..., on_progress=
    tqdm_progress())``. *file* defaults to stderr (a widget in Jupyter); *desc* to the job id;
    other keyword arguments go to ``tqdm`` (``ncols``, ``colour``, ``mininterval``, ...);
    ``tqdm_class=`` picks another tqdm (``tqdm.notebook.tqdm``, ``tqdm.std.tqdm``)."""
    return TqdmProgress(file=file, desc=desc, leave=leave, **options)


class RichProgress:
    """An ``on_progress`` callback drawing rich progress bars, one task per job (see
    :func:`rich_progress`)."""

    def __init__(self, *, console: Any = None, transient: bool = False) -> None:
        progress = _import("rich.progress", "pip install rich")
        self._display = progress.Progress(
            progress.TextColumn("{task.description}"),
            progress.BarColumn(),
            progress.MofNCompleteColumn(),
            progress.TimeElapsedColumn(),
            progress.TextColumn("{task.fields[numbers]}"),
            console=console,
            transient=transient,
            auto_refresh=False,  # redrawn at each event: no thread of its own
        )
        self._tasks: dict[str, Any] = {}
        self._open: set[str] = set()
        self._started = False

    def __call__(self, progress: Progress) -> None:
        if not self._started:
            self._display.start()
            self._started = True
        task = self._tasks.get(progress.job_id)
        if task is None:
            task = self._display.add_task(progress.job_id, total=progress.requests, numbers="")
            self._tasks[progress.job_id] = task
            self._open.add(progress.job_id)
        line = _notice(progress)
        if line is not None:
            self._display.console.print(line)
        self._display.update(
            task,
            total=progress.requests,
            completed=progress.done,
            numbers=describe(progress),
        )
        self._display.refresh()
        if progress.event.kind in _ENDS:
            self._open.discard(progress.job_id)
            if not self._open:
                self.close()

    def close(self) -> None:
        """Stop drawing (left on screen unless *transient*)."""
        if self._started:
            self._display.stop()
            self._started = False
            self._tasks.clear()
            self._open.clear()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def rich_progress(*, console: Any = None, transient: bool = False) -> RichProgress:
    """Rich progress bars as an ``on_progress`` callback: ``runner.run(..., on_progress=
    rich_progress())``. *console* is a ``rich.console.Console`` (default: rich's own);
    *transient* removes the bars when done."""
    return RichProgress(console=console, transient=transient)


def _import(module: str, how: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(f"this progress bar needs {package}: {how}") from None

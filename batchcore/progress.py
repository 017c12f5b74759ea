"""The CLI's progress display: one observer of job events.

On a terminal it redraws one status line; elsewhere (logs, CI) it prints plain lines, at most
one per ``interval`` seconds except for the events that matter (submitted, finished).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from batchcore.models import JobEvent, JobEventKind

__all__ = ["ProgressDisplay", "format_counts", "format_elapsed"]

_ORDER = ("succeeded", "errored", "expired", "cancelled", "pending")
#: Events printed as they happen even between throttled lines: a wait says until when.
_KEPT_ON_SCREEN = frozenset(
    {JobEventKind.WAITING, JobEventKind.NOTICE, JobEventKind.STOPPED, JobEventKind.FINISHED}
)
_ALWAYS_SHOWN = frozenset(
    {
        JobEventKind.SUBMITTED,
        JobEventKind.FINISHED,
        JobEventKind.RETRIED,
        JobEventKind.WAITING,
        JobEventKind.NOTICE,
        JobEventKind.STOPPED,
    }
)


def format_elapsed(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_counts(counts: dict[str, int] | None) -> str:
    counts = counts or {}
    parts = [f"{name} {counts[name]}" for name in _ORDER if counts.get(name)]
    parts += [f"{name} {n}" for name, n in sorted(counts.items()) if name not in _ORDER and n]
    return ", ".join(parts) or "nothing yet"


class ProgressDisplay:
    """Call with each :class:`JobEvent` (it is a job observer)."""

    def __init__(
        self,
        stream: IO[str],
        *,
        tty: bool | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval
        self._clock = clock
        self._started = clock()
        self._last_line = float("-inf")
        self._batch_states: dict[str, str] = {}
        self._drawn = False

    def __call__(self, event: JobEvent) -> None:
        self.track(event)
        line = self._line(event)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            # Waits, notices and the end stay on screen; the rest is redrawn in place.
            permanent = event.kind in _KEPT_ON_SCREEN
            if permanent:
                self.stream.write("\n")
            self._drawn = not permanent
        else:
            now = self._clock()
            important = event.kind in _ALWAYS_SHOWN
            if not important and now - self._last_line < self.interval:
                return
            self._last_line = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def track(self, event: JobEvent) -> None:
        """Learn what *event* says about its batch without printing (a caller that learns of
        several batches at once, from a store, prints one line after)."""
        if event.batch_id is not None:
            if event.status is not None:
                self._batch_states[event.batch_id] = event.status.state.value
            elif event.kind is JobEventKind.SUBMITTED:
                self._batch_states.setdefault(event.batch_id, "submitted")

    def close(self) -> None:
        """End a redrawn line (when the job stopped without a finished event)."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _line(self, event: JobEvent) -> str:
        elapsed = format_elapsed(self._clock() - self._started)
        states: dict[str, int] = {}
        for state in self._batch_states.values():
            states[state] = states.get(state, 0) + 1
        batches = ", ".join(f"{name} {n}" for name, n in sorted(states.items()))
        what = {
            JobEventKind.SUBMITTED: "submitted",
            JobEventKind.STATUS_CHANGED: "status",
            JobEventKind.RESULTS_FETCHED: "fetched",
            JobEventKind.RETRIED: "retrying",
            JobEventKind.WAITING: "waiting",
            JobEventKind.NOTICE: "note",
            JobEventKind.STOPPED: "stopped",
            JobEventKind.FINISHED: "finished",
        }.get(event.kind, event.kind.value)
        detail = ""
        if event.detail and event.kind is not JobEventKind.FINISHED:
            detail = f" ({event.detail})"
        return (
            f"[{elapsed}] {event.job_id} {what}{detail} | batches: {batches or '-'} | "
            f"requests: {format_counts(dict(event.counts))}"
        )

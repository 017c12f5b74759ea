"""A clock tests move by hand, and a sleep that only remembers, so nothing waits."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Advancing", "ManualClock", "SleepRecorder"]


class ManualClock:
    """Unix time that only moves when :meth:`advance` is called (thread-safe).

    Pass ``clock.now`` where a component takes a clock, and ``clock.sleep`` where it takes a
    sleep function: sleeping then advances the clock instead of waiting.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now():.3f})"


class Advancing(Protocol):
    """A clock moved by hand: a :class:`ManualClock`, a vendor emulator, a fake backend."""

    def advance(self, seconds: float) -> object: ...


class SleepRecorder(list[float]):
    """A sleep function that waits for nothing: ``recorder(seconds)`` appends *seconds*.

    Put it where a component takes a sleep (``provider.sleep = recorder``), then assert on
    the waits it asked for (``recorder == [2.0]``). Given a *clock* (anything with
    ``advance(seconds)``), each wait also advances it, so code that sleeps until a time comes
    (a settle window) sees that time come at once.
    """

    def __init__(self, clock: Advancing | None = None) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.clock is not None:
            self.clock.advance(max(seconds, 0.0))

"""A clock tests move by hand, so lifecycles run without sleeping."""

from __future__ import annotations

import threading
import time

__all__ = ["ManualClock"]


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

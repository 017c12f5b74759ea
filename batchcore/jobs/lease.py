"""Keeping a job's lease while it is driven, however long one step takes.

A driver renews its lease from a heartbeat thread (every quarter of the lease), not only
between loop iterations, so a live driver inside one long phase (a stalled download, a large
upload) never looks dead to another process. When a renewal finds the lease gone (another
process took it over after this one was silent past expiry), the driver is told to stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from batchcore.errors import BatchcoreError

__all__ = ["LeaseKeeper"]

log = logging.getLogger("batchcore.jobs")


class LeaseKeeper:
    """Renews a lease every *interval* seconds on its own thread until stopped.

    *renew* returns False when the lease is no longer ours; *wait* is how the thread waits
    between beats (an ``Event.wait``; tests call :meth:`beat` directly instead).
    """

    def __init__(self, renew: Callable[[], bool], *, interval: float) -> None:
        self._renew = renew
        self.interval = interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batchcore-lease", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def beat(self) -> None:
        """Renew once now."""
        try:
            if not self._renew():
                self.lost.set()
        except BatchcoreError as error:
            # A store hiccup: the lease holds until it expires; the next beat tries again.
            log.warning("could not renew the job's lease: %s", error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
            if self.lost.is_set():
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

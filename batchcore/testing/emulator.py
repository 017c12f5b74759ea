"""The plumbing every vendor emulator shares: a loopback server, a clock, a working directory.

A vendor emulator subclasses :class:`VendorEmulator`, registers its routes on :attr:`server`,
reads the time with :meth:`~VendorEmulator.now` and keeps its files under
:attr:`~VendorEmulator.workdir`::

    class ThingsEmulator(VendorEmulator):
        WORKDIR_PREFIX = "things-emulator-"

        def __init__(self, *, clock: ManualClock | Callable[[], float] | None = None) -> None:
            super().__init__(clock=clock)
            self.server.add_route("GET", "/v1/now", self._now)

        def _now(self, request: Request) -> Response:
            return Response.json({"now": self.now()})

    with ThingsEmulator(clock=ManualClock()) as emulator:
        emulator.advance(60)
        requests.get(emulator.url + "/v1/now")

To be a :class:`~batchcore.testing.ContractBackend` for the conformance kit, an emulator names
its faults (:meth:`~VendorEmulator.fault`), its batch create route (``CREATE_ROUTE``, which
gives it the ``lost_create`` fault) and its results download route (``RESULTS_ROUTE``, which
gives it ``corrupt_result_line``), and implements ``batch_count()`` and ``failing_request()``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar

from batchcore.testing.clock import ManualClock
from batchcore.testing.contract_backend import CORRUPT_RESULT_LINE, FAULT_KINDS, LOST_CREATE
from batchcore.testing.server import Fault, LoopbackServer

__all__ = ["VendorEmulator"]

_E = TypeVar("_E", bound="VendorEmulator")


class VendorEmulator:
    """Base of an emulated vendor API served on 127.0.0.1 by a :class:`LoopbackServer`.

    *clock*: a :class:`ManualClock`, which :meth:`advance` moves (so everything else reading
    that clock sees the same time), or any ``() -> unix seconds`` callable such as
    ``time.time``, to which :meth:`advance` adds an offset; default: real time.
    *workdir_parent*: where the temporary working directory is created (made if missing);
    default: the system's temporary directory.

    :meth:`start` creates the working directory and starts serving; :meth:`stop` stops
    serving, calls :meth:`_on_stop` and deletes the directory with everything in it. Both are
    idempotent, and the emulator is a context manager.
    """

    #: Start of the working directory's name.
    WORKDIR_PREFIX = "batchcore-emulator-"
    #: The route that creates a batch, as registered: ``("POST", "/v1/batches")``. With it,
    #: the emulator can inject ``lost_create`` (the create runs, its answer never comes).
    CREATE_ROUTE: ClassVar[tuple[str, str] | None] = None
    #: The route that downloads a batch's results, as registered:
    #: ``("GET", "/v1/files/{file_id}/content")``. With it, the emulator can inject
    #: ``corrupt_result_line`` (the next download arrives with one line garbled).
    RESULTS_ROUTE: ClassVar[tuple[str, str] | None] = None

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        workdir_parent: str | Path | None = None,
    ) -> None:
        self._manual_clock = clock if isinstance(clock, ManualClock) else None
        self._read_clock: Callable[[], float] = (
            clock.now if isinstance(clock, ManualClock) else (clock or time.time)
        )
        self._offset = 0.0
        self._workdir_parent = None if workdir_parent is None else Path(workdir_parent)
        self._workdir: Path | None = None
        self.server = LoopbackServer()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); only while running."""
        return self.server.url

    @property
    def workdir(self) -> Path | None:
        """The directory for the emulator's files while it runs; None when stopped."""
        return self._workdir

    def start(self: _E) -> _E:
        if self._workdir is None:
            if self._workdir_parent is not None:
                self._workdir_parent.mkdir(parents=True, exist_ok=True)
            self._workdir = Path(
                tempfile.mkdtemp(prefix=self.WORKDIR_PREFIX, dir=self._workdir_parent)
            )
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the working directory."""
        self.server.stop()
        self._on_stop()
        # Unset first: a request still being handled then finds the emulator stopped rather
        # than writing into a directory being deleted.
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def _on_stop(self) -> None:
        """Subclass hook, called by :meth:`stop` once the server no longer accepts calls and
        before the working directory goes: forget state that refers to files in it."""

    def __enter__(self: _E) -> _E:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's time (unix seconds)."""
        return self._read_clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward; what it emulates progresses with it."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        if self._manual_clock is not None:
            self._manual_clock.advance(seconds)
        else:
            self._offset += seconds

    # -- faults and calls ------------------------------------------------------------------

    def inject(
        self,
        method: str,
        pattern: str,
        fault: Fault,
        *,
        times: int = 1,
        calls: Iterable[int] | None = None,
    ) -> None:
        """Serve *fault* on the next *times* calls (or the call numbers *calls*, counted from
        now) of the route ``method pattern``, as registered; ``"*"`` matches any."""
        self.server.inject(method, pattern, fault, times=times, calls=calls)

    def fault(self, kind: str) -> Fault | None:
        """The fault named *kind*, answered as the vendor would; None for a kind the emulator
        does not know. Subclasses name theirs (at least the conformance kit's ``rate_limit``,
        ``server_error``, ``overloaded``, ``unauthorized`` and ``reset``)."""
        return None

    @property
    def FAULTS(self) -> frozenset[str]:
        """The conformance kit's fault kinds this emulator can inject: those :meth:`fault`
        names, ``lost_create`` when ``CREATE_ROUTE`` is set and ``corrupt_result_line`` when
        ``RESULTS_ROUTE`` is. (:meth:`inject_fault` takes any other kind :meth:`fault` names
        too.)"""
        kinds = {kind for kind in FAULT_KINDS if self.fault(kind) is not None}
        if self.CREATE_ROUTE is not None:
            kinds.add(LOST_CREATE)
        if self.RESULTS_ROUTE is not None:
            kinds.add(CORRUPT_RESULT_LINE)
        return frozenset(kinds)

    def inject_fault(
        self, kind: str, *, method: str = "*", route: str = "*", times: int = 1
    ) -> None:
        """Make the next *times* calls (to *route*, a route pattern; default any) fail with
        the fault named *kind* (see :meth:`fault`). ``lost_create`` loses the answers of the
        next *times* calls to ``CREATE_ROUTE`` after they have run; ``corrupt_result_line``
        garbles the second line of the next *times* downloads from ``RESULTS_ROUTE``.
        ValueError for a kind this emulator does not know."""
        if kind == LOST_CREATE and self.CREATE_ROUTE is not None:
            create_method, create_route = self.CREATE_ROUTE
            self.inject(create_method, create_route, Fault.lose_response(), times=times)
            return
        if kind == CORRUPT_RESULT_LINE and self.RESULTS_ROUTE is not None:
            results_method, results_route = self.RESULTS_ROUTE
            self.inject(results_method, results_route, Fault.corrupt_line(2), times=times)
            return
        fault = self.fault(kind)
        if fault is None:
            known = ", ".join(sorted(self.FAULTS)) or "none"
            raise ValueError(
                f"{type(self).__name__} cannot inject fault {kind!r} (the conformance kit's "
                f"kinds it knows: {known})"
            )
        self.inject(method, route, fault, times=times)

    def call_count(self) -> int:
        """HTTP calls received so far."""
        return len(self.server.calls)

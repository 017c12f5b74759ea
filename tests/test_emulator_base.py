"""The emulator base class: a tiny emulator with one resource exercises its clock, working
directory, lifecycle and fault injection over real HTTP; and the sleep recorder."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from batchcore.errors import RateLimitError
from batchcore.models import BatchRequest
from batchcore.retry import RetryPolicy, retry_call
from batchcore.testing import (
    ContractBackend,
    Fault,
    ManualClock,
    Request,
    Response,
    SleepRecorder,
    VendorEmulator,
)

NOTES = "/v1/notes"
NOTE = "/v1/notes/{note_id}"


class NotesEmulator(VendorEmulator):
    """Stores notes as files; each remembers when it was written."""

    WORKDIR_PREFIX = "notes-emulator-"
    CREATE_ROUTE = ("POST", NOTES)

    def __init__(
        self,
        *,
        clock: ManualClock | Callable[[], float] | None = None,
        workdir_parent: Path | None = None,
    ) -> None:
        super().__init__(clock=clock, workdir_parent=workdir_parent)
        self.created: dict[str, float] = {}
        #: For each stop: whether the working directory still existed when the hook ran.
        self.hook_saw_workdir: list[bool] = []
        self.server.add_route("POST", NOTES, self._create)
        self.server.add_route("GET", NOTE, self._read)

    def fault(self, kind: str) -> Fault | None:
        return {
            "rate_limit": Fault.status(429, headers={"retry-after": "0"}),
            "reset": Fault.reset(),
        }.get(kind)

    def failing_request(self, custom_id: str, model: str) -> BatchRequest | None:
        return None

    def batch_count(self) -> int:
        return len(self.created)

    def _on_stop(self) -> None:
        self.hook_saw_workdir.append(self.workdir is not None and self.workdir.is_dir())
        self.created.clear()

    def _create(self, request: Request) -> Response:
        assert self.workdir is not None
        note_id = f"note-{len(self.created) + 1}"
        (self.workdir / note_id).write_bytes(request.body)
        self.created[note_id] = self.now()
        return Response.json({"id": note_id, "created": self.created[note_id]})

    def _read(self, request: Request) -> Response:
        assert self.workdir is not None
        note_id = request.path_params["note_id"]
        path = self.workdir / note_id
        if not path.exists():
            return Response.json({"error": "no such note"}, status=404)
        return Response(body=path.read_bytes(), headers={"x-created": str(self.created[note_id])})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000.0)


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[NotesEmulator]:
    with NotesEmulator(clock=clock) as running:
        yield running


def test_serves_its_routes_on_loopback_and_counts_calls(emulator: NotesEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    created = requests.post(emulator.url + NOTES, data=b"remember", timeout=5)
    assert created.json() == {"id": "note-1", "created": 1_000.0}
    assert requests.get(emulator.url + "/v1/notes/note-1", timeout=5).content == b"remember"
    assert requests.get(emulator.url + "/v1/notes/note-9", timeout=5).status_code == 404
    assert emulator.call_count() == 3


def test_is_a_contract_backend_once_it_names_a_failing_request(
    emulator: NotesEmulator,
) -> None:
    assert isinstance(emulator, ContractBackend)
    assert not isinstance(VendorEmulator(), ContractBackend)


def test_a_manual_clock_is_shared_and_moved_by_advance(
    emulator: NotesEmulator, clock: ManualClock
) -> None:
    emulator.advance(30)
    assert clock.now() == emulator.now() == 1_030.0  # the clock itself moved
    clock.advance(5)
    assert emulator.now() == 1_035.0
    created = requests.post(emulator.url + NOTES, data=b"x", timeout=5).json()["created"]
    assert created == 1_035.0


def test_a_callable_clock_is_read_and_advance_adds_an_offset() -> None:
    reading = [100.0]
    emulator = NotesEmulator(clock=lambda: reading[0])
    assert emulator.now() == 100.0
    emulator.advance(10)
    emulator.advance(2.5)
    assert emulator.now() == 112.5
    reading[0] = 200.0  # the source keeps moving on its own, the offset stays
    assert emulator.now() == 212.5


def test_the_default_clock_is_real_time() -> None:
    before = time.time()
    now = VendorEmulator().now()
    assert before <= now <= time.time()


@pytest.mark.parametrize("manual", [True, False])
def test_time_cannot_go_backwards(manual: bool) -> None:
    clock: ManualClock | Callable[[], float] = ManualClock(start=50.0) if manual else (lambda: 50.0)
    emulator = NotesEmulator(clock=clock)
    emulator.advance(0)
    with pytest.raises(ValueError, match="backwards"):
        emulator.advance(-1)
    assert emulator.now() == 50.0


def test_the_working_directory_lives_from_start_to_stop(clock: ManualClock) -> None:
    emulator = NotesEmulator(clock=clock)
    assert emulator.workdir is None
    workdir = emulator.start().workdir
    assert workdir is not None and workdir.is_dir()
    assert workdir.name.startswith("notes-emulator-")
    assert workdir.parent == Path(tempfile.gettempdir())
    requests.post(emulator.url + NOTES, data=b"on disk", timeout=5)
    assert (workdir / "note-1").read_bytes() == b"on disk"

    emulator.stop()
    assert emulator.workdir is None and not workdir.exists()
    assert emulator.hook_saw_workdir == [True]  # the hook runs before the directory goes
    assert emulator.created == {}
    emulator.stop()  # stopping again is harmless
    assert emulator.hook_saw_workdir == [True, False]

    with emulator as restarted:  # and it starts again, afresh
        assert restarted.workdir is not None and restarted.workdir != workdir
        assert requests.get(restarted.url + "/v1/notes/note-1", timeout=5).status_code == 404


def test_the_working_directory_can_go_under_a_given_parent(tmp_path: Path) -> None:
    parent = tmp_path / "not" / "yet"
    with NotesEmulator(workdir_parent=parent) as emulator:
        assert emulator.workdir is not None and emulator.workdir.parent == parent
        workdir = emulator.workdir
    assert parent.is_dir() and not workdir.exists()


def test_starting_twice_keeps_the_server_and_directory(emulator: NotesEmulator) -> None:
    url, workdir = emulator.url, emulator.workdir
    assert emulator.start() is emulator
    assert (emulator.url, emulator.workdir) == (url, workdir)


def test_inject_serves_a_fault_on_chosen_calls_of_a_route(emulator: NotesEmulator) -> None:
    requests.post(emulator.url + NOTES, data=b"x", timeout=5)
    emulator.inject("GET", NOTE, Fault.status(503), calls=[2, 3])
    statuses = [
        requests.get(emulator.url + "/v1/notes/note-1", timeout=5).status_code for _ in range(4)
    ]
    assert statuses == [200, 503, 503, 200]
    assert emulator.call_count() == 5


def test_inject_fault_by_name(emulator: NotesEmulator) -> None:
    emulator.inject_fault("rate_limit", method="POST", route=NOTES, times=2)
    assert requests.get(emulator.url + "/v1/notes/none", timeout=5).status_code == 404
    limited = requests.post(emulator.url + NOTES, data=b"x", timeout=5)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0"
    assert requests.post(emulator.url + NOTES, data=b"x", timeout=5).status_code == 429
    assert requests.post(emulator.url + NOTES, data=b"x", timeout=5).status_code == 200

    emulator.inject_fault("reset")  # default: the next call, whatever the route
    with pytest.raises(requests.ConnectionError):
        requests.get(emulator.url + "/v1/notes/note-1", timeout=5)
    assert requests.get(emulator.url + "/v1/notes/note-1", timeout=5).status_code == 200


def test_an_unknown_fault_is_refused_and_nothing_is_injected(emulator: NotesEmulator) -> None:
    with pytest.raises(ValueError, match=r"cannot inject fault 'meteor_strike'.*lost_create"):
        emulator.inject_fault("meteor_strike")
    with pytest.raises(ValueError, match="kinds it knows: none"):
        VendorEmulator().inject_fault("rate_limit")  # the base names no faults
    with pytest.raises(ValueError, match="lost_create"):
        VendorEmulator().inject_fault("lost_create")  # nor a create route
    assert requests.get(emulator.url + "/v1/notes/none", timeout=5).status_code == 404


def test_faults_are_declared_from_what_the_emulator_names() -> None:
    assert set(NotesEmulator().FAULTS) == {"rate_limit", "reset", "lost_create"}
    assert not VendorEmulator().FAULTS


def test_lost_create_runs_the_create_and_loses_its_answer(emulator: NotesEmulator) -> None:
    emulator.inject_fault("lost_create")
    assert requests.get(emulator.url + "/v1/notes/none", timeout=5).status_code == 404
    with pytest.raises(requests.ReadTimeout):
        requests.post(emulator.url + NOTES, data=b"lost", timeout=0.5)
    assert emulator.batch_count() == 1  # created, though the client never heard
    answered = requests.post(emulator.url + NOTES, data=b"kept", timeout=5)
    assert answered.json()["id"] == "note-2" and emulator.batch_count() == 2


def test_sleep_recorder_records_the_waits_instead_of_waiting() -> None:
    sleeps = SleepRecorder()
    failures = [RateLimitError("slow down", retry_after=30.0)] * 2

    def call() -> str:
        if failures:
            raise failures.pop()
        return "done"

    started = time.monotonic()
    assert retry_call(call, policy=RetryPolicy(max_retries=2), sleep=sleeps) == "done"
    assert sleeps == [30.0, 30.0]
    assert time.monotonic() - started < 5
    sleeps(0)
    assert sleeps == [30.0, 30.0, 0.0] and isinstance(sleeps, list)


def test_a_sleep_recorder_with_a_clock_also_moves_it() -> None:
    clock = ManualClock(start=100.0)
    sleeps = SleepRecorder(clock)
    sleeps(2.5)
    sleeps(0)
    assert sleeps == [2.5, 0] and clock.now() == 102.5

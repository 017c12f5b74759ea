"""The vendor-neutral engine of batch API emulators: lifecycles, files, input checks, answers.

A vendor emulator (a :class:`~batchcore.testing.VendorEmulator` subclass) keeps what is its
vendor's own: routes, the shapes of its batch and file objects, its error bodies and status
words. What every batch API shares is here, with no HTTP:

Lifecycle, a pure function of the clock (advancing a manual clock moves every batch at once):

* :class:`Timing` - how long each phase lasts; :class:`Stage` - the phases, in neutral words a
  vendor maps to its own (``in_progress`` may be ``RUNNING`` or ``InProgress``);
  :class:`Phase` and :func:`phase_of` - where a batch stands at an instant;
* :class:`CompletionOrder` - the seeded, shuffled order in which a batch's requests finish.

Files, on disk and streamed (a 50,000-request batch costs little memory):

* :class:`StoredFile`, :class:`FileStore`, :exc:`EmulatorStoppedError`,
  :func:`iter_file_lines`;
* :func:`write_finished` and :func:`unfinished` - result lines in completion order, and the
  requests an expired or cancelled batch never ran.

Input files:

* :func:`scan_input`, :class:`InputScan`, :class:`LineError` - a JSONL batch input file checked
  line by line (JSON, custom_ids, one model, size), with the vendor's own line rules plugged in;
* :class:`BodyChecker` - OpenAI-format request bodies checked against a vendor's spec with a
  strict :class:`~batchcore.testing.openapi.SpecValidator`.

Answers to OpenAI-format bodies (the chat completions, embeddings, responses, completions and
moderations endpoints), deterministic:

* :func:`answer_body` - the response body, with its usage (one word counts as one token);
  :data:`ANSWERED_ENDPOINTS`; :class:`UsageTotals` - a batch's token usage;
* :func:`schema_instance` - a small JSON value valid against a JSON schema: the answer to a
  request for structured output, and the arguments of a forced tool call.

The vendor's queue (what may wait in its batch queue at once):

* :class:`QueueCap`, :class:`Enqueued`, :class:`QueueGate`, :class:`QueueRefusal` - a cap on
  the input tokens (or requests) of the batches that have not ended, per model or per account,
  which a vendor emulator enforces the way its vendor does (a create refused, or a batch
  created and then failed); :func:`input_tokens` - a request's input tokens as the answers'
  usage counts them.

Failures and ids:

* :data:`FAIL_MARKER`, :class:`FailMarker`, :func:`find_fail_marker` - ``[emulator-fail:...]``
  in a request makes it fail inside its batch;
* :func:`request_id`, :class:`RequestIds` - request ids for answers and result lines.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import random
import re
import threading
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
import orjson

from batchcore.models import CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, MODERATIONS, RESPONSES

if TYPE_CHECKING:
    from batchcore.testing.openapi import SpecProblem, SpecValidator

__all__ = [
    "ANSWERED_ENDPOINTS",
    "FAIL_MARKER",
    "BodyChecker",
    "CompletionOrder",
    "EmulatorStoppedError",
    "Enqueued",
    "FailMarker",
    "FileStore",
    "InputScan",
    "LineError",
    "Phase",
    "QueueCap",
    "QueueGate",
    "QueueRefusal",
    "RequestIds",
    "Stage",
    "StoredFile",
    "Timing",
    "UsageTotals",
    "answer_body",
    "find_fail_marker",
    "input_tokens",
    "iter_file_lines",
    "phase_of",
    "request_id",
    "scan_input",
    "schema_instance",
    "unfinished",
    "write_finished",
]

# -- lifecycle ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Timing:
    """How long each phase of a batch lasts, in seconds of the emulator's clock."""

    validating: float = 60.0
    #: From ``in_progress`` until every request is done; requests finish evenly over it.
    processing: float = 600.0
    finalizing: float = 60.0
    cancelling: float = 60.0
    #: The completion window; a batch not finalizing by then expires (when it can expire).
    window: float = 86_400.0


class Stage(str, enum.Enum):
    """A phase of a batch's life. The values are OpenAI's words; a vendor with other words
    (``RUNNING``, ``InProgress``, ``ended``) maps them."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Stage.COMPLETED, Stage.FAILED, Stage.EXPIRED, Stage.CANCELLED})


@attrs.frozen(kw_only=True)
class Phase:
    """A batch as seen at one instant.

    *timestamps* maps the moments reached so far to unix seconds, named as OpenAI names them:
    ``created_at``, ``expires_at`` (always), ``in_progress_at``, ``finalizing_at``,
    ``completed_at``, ``failed_at``, ``expired_at``, ``cancelling_at``, ``cancelled_at``.
    """

    stage: Stage
    timestamps: Mapping[str, float]
    #: Requests finished (in completion order) when the batch stopped, or by now.
    done: int
    #: Whether the batch expired: its unfinished requests are reported as expired.
    expired: bool = False

    @property
    def terminal(self) -> bool:
        return self.stage.terminal


def phase_of(
    now: float,
    *,
    created_at: float,
    total: int,
    timing: Timing,
    invalid: bool = False,
    cancel_requested_at: float | None = None,
    expires: bool = True,
) -> Phase:
    """Where a batch created at *created_at* with *total* requests stands at *now*.

    ``validating`` -> ``in_progress`` (requests finish evenly over ``timing.processing``) ->
    ``finalizing`` -> ``completed``. An *invalid* batch (its input failed validation) is
    ``failed`` when validation ends. A cancel asked for at *cancel_requested_at* passes through
    ``cancelling`` to ``cancelled``, keeping what had finished. With *expires*, a batch still
    running when the window closes is ``expired`` with what had finished.
    """
    started = created_at + timing.validating
    finalizing_at = started + timing.processing
    completed_at = finalizing_at + timing.finalizing
    expiry = created_at + timing.window if expires else float("inf")
    stamps: dict[str, float] = {"created_at": created_at, "expires_at": created_at + timing.window}

    def done_at(moment: float) -> int:
        if moment <= started:
            return 0
        if moment >= finalizing_at or timing.processing <= 0:
            return total
        return min(int(total * (moment - started) / timing.processing), total)

    cancel = cancel_requested_at
    if cancel is not None and now >= cancel:
        if cancel >= started and not invalid:
            stamps["in_progress_at"] = started
        if cancel >= finalizing_at and not invalid:
            stamps["finalizing_at"] = finalizing_at
        stamps["cancelling_at"] = cancel
        done = 0 if invalid else done_at(min(cancel, expiry))
        if now < cancel + timing.cancelling:
            return Phase(stage=Stage.CANCELLING, timestamps=stamps, done=done)
        stamps["cancelled_at"] = cancel + timing.cancelling
        return Phase(stage=Stage.CANCELLED, timestamps=stamps, done=done)
    if now < started:
        return Phase(stage=Stage.VALIDATING, timestamps=stamps, done=0)
    if invalid:
        stamps["failed_at"] = started
        return Phase(stage=Stage.FAILED, timestamps=stamps, done=0)
    stamps["in_progress_at"] = started
    if expiry < finalizing_at and now >= expiry:
        stamps["expired_at"] = expiry
        return Phase(stage=Stage.EXPIRED, timestamps=stamps, done=done_at(expiry), expired=True)
    if now < finalizing_at:
        return Phase(stage=Stage.IN_PROGRESS, timestamps=stamps, done=done_at(now))
    stamps["finalizing_at"] = finalizing_at
    if now < completed_at:
        return Phase(stage=Stage.FINALIZING, timestamps=stamps, done=total)
    stamps["completed_at"] = completed_at
    return Phase(stage=Stage.COMPLETED, timestamps=stamps, done=total)


class CompletionOrder:
    """The order in which a batch's *total* requests finish: a shuffle seeded by *seed*, so
    results never come back in input order, yet every run is the same.

    *failing*: input indexes of requests that will not succeed, so a batch's counts can say
    how many of the first ``done`` finished requests failed. Two integer arrays; no per-request
    objects.
    """

    def __init__(self, total: int, *, seed: str, failing: Collection[int] = ()) -> None:
        order = list(range(total))
        random.Random(seed).shuffle(order)
        self.total = total
        self._rank = array("q", bytes(array("q").itemsize * total))
        self._failed_before = array("q", bytes(array("q").itemsize * (total + 1)))
        running = 0
        for position, index in enumerate(order):
            self._rank[index] = position
            if index in failing:
                running += 1
            self._failed_before[position + 1] = running

    def rank(self, index: int) -> int:
        """The position (from 0) at which the request at input index *index* finishes."""
        return self._rank[index]

    def failed_among(self, done: int) -> int:
        """How many of the first *done* requests to finish do not succeed."""
        return self._failed_before[done]


# -- files ----------------------------------------------------------------------------------------


class EmulatorStoppedError(RuntimeError):
    """The emulator is not running: there is no directory to keep files in."""


@attrs.define(eq=False)
class StoredFile:
    """A file the emulator keeps: its content is at *path*."""

    id: str
    filename: str
    purpose: str
    size: int
    created_at: int
    path: Path
    expires_at: int | None = None


def iter_file_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a file, without line endings, read one at a time."""
    with open(path, "rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                yield stripped


_CHUNK = 1 << 16


class FileStore:
    """The files of an emulator, each on disk under the directory *root* returns (None while
    the emulator is stopped: :exc:`EmulatorStoppedError`). *new_id* names new files (it is
    called without any lock held, and must be safe to call from several threads). Safe to use
    from the server's threads."""

    def __init__(self, root: Callable[[], Path | None], *, new_id: Callable[[], str]) -> None:
        self._root = root
        self._new_id = new_id
        self._lock = threading.RLock()
        self._files: dict[str, StoredFile] = {}

    def reserve(self) -> tuple[str, Path]:
        """A new file id and the path to write its content to (then :meth:`register` it)."""
        root = self._root()
        if root is None:
            raise EmulatorStoppedError("the emulator is not running")
        file_id = self._new_id()
        return file_id, root / file_id

    def register(
        self,
        file_id: str,
        path: Path,
        *,
        filename: str,
        purpose: str,
        created_at: int,
        expires_at: int | None = None,
    ) -> StoredFile:
        """Keep the file written at *path* (from :meth:`reserve`) as *file_id*."""
        stored = StoredFile(
            id=file_id,
            filename=filename,
            purpose=purpose,
            size=path.stat().st_size,
            created_at=created_at,
            path=path,
            expires_at=expires_at,
        )
        with self._lock:
            self._files[file_id] = stored
        return stored

    def add(
        self,
        data: bytes | memoryview,
        *,
        filename: str,
        purpose: str,
        created_at: int,
        expires_at: int | None = None,
    ) -> StoredFile:
        """Write *data* as a new file and keep it."""
        file_id, path = self.reserve()
        path.write_bytes(data)
        return self.register(
            file_id,
            path,
            filename=filename,
            purpose=purpose,
            created_at=created_at,
            expires_at=expires_at,
        )

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def delete(self, file_id: str) -> StoredFile | None:
        """Forget *file_id* and delete its content; the file, or None when there was none."""
        with self._lock:
            stored = self._files.pop(file_id, None)
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        return stored

    def newest_first(self, purpose: str | None = None) -> list[StoredFile]:
        """The files kept (those with *purpose*, when given), newest first."""
        with self._lock:
            files = list(self._files.values())
        return [f for f in reversed(files) if purpose is None or f.purpose == purpose]

    def open_stream(self, file_id: str) -> Iterator[bytes] | None:
        """The content of *file_id* in chunks, opened now (None when there is no such file)
        and closed when the iterator ends or is closed."""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                return None
            handle = open(stored.path, "rb")  # noqa: SIM115 - closed by the generator
        return _chunks(handle)

    def clear(self) -> None:
        """Forget every file (their directory is the emulator's to delete)."""
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def write_finished(
    input_path: Path,
    order: CompletionOrder,
    done: int,
    render: Callable[[int, bytes], tuple[int, bytes] | None],
    sinks: Sequence[IO[bytes]],
    scratch: IO[bytes],
) -> None:
    """Write the results of the first *done* requests to finish, in the order they finished.

    *render* turns (input index, input line) into ``(sink number, result line with its
    newline)``, or None for a request whose result is lost. Lines are staged in *scratch* (a
    temporary file) and copied to ``sinks[number]`` in completion order, so memory holds a
    few integers per request, never the results.
    """
    itemsize = array("q").itemsize
    offsets = array("q", bytes(itemsize * done))
    lengths = array("q", bytes(itemsize * done))
    where = bytearray(done)  # 0: no line, else sink number + 1
    for index, line in enumerate(iter_file_lines(input_path)):
        position = order.rank(index)
        if position >= done:
            continue
        rendered = render(index, line)
        if rendered is None:
            continue
        sink, data = rendered
        offsets[position] = scratch.tell()
        lengths[position] = len(data)
        where[position] = sink + 1
        scratch.write(data)
    scratch.flush()
    for position in range(done):
        if where[position]:
            scratch.seek(offsets[position])
            sinks[where[position] - 1].write(scratch.read(lengths[position]))


def unfinished(input_path: Path, order: CompletionOrder, done: int) -> Iterator[tuple[int, bytes]]:
    """(input index, input line) of every request not among the first *done* to finish."""
    for index, line in enumerate(iter_file_lines(input_path)):
        if order.rank(index) >= done:
            yield index, line


# -- the vendor's queue ---------------------------------------------------------------------------

_MEASURES = ("tokens", "requests")


@attrs.frozen(kw_only=True)
class Enqueued:
    """What one batch holds in a vendor's queue: its model and the input tokens and requests it
    counts for (an emulator keeps this for each batch it admitted, until the batch ends)."""

    model: str | None
    tokens: int
    requests: int


@attrs.frozen(kw_only=True)
class QueueCap:
    """A vendor's cap on what may wait in its batch queue at once, for an emulator to enforce.

    *limit* counts *measure*: ``"tokens"`` (the input tokens of the batches that have not
    ended, counted as the emulator's answers report them, :func:`input_tokens` for
    OpenAI-format bodies) or ``"requests"``. *per_model*: each model has a queue of its own
    (OpenAI, Azure OpenAI, Gemini, Together count enqueued tokens per model), else one queue
    holds every model's batches (Anthropic, Mistral count requests per organization or
    workspace). A batch that would take the queue over *limit* is refused, even one that is
    over it alone, as vendors refuse it.
    """

    limit: int = attrs.field(validator=attrs.validators.gt(0))
    measure: str = attrs.field(default="tokens", validator=attrs.validators.in_(_MEASURES))
    per_model: bool = True

    def amount(self, batch: Enqueued) -> int:
        """What *batch* counts for under this cap."""
        return batch.tokens if self.measure == "tokens" else batch.requests

    def held(self, model: str | None, waiting: Iterable[Enqueued]) -> int:
        """What the *waiting* batches hold in the queue a batch for *model* joins."""
        return sum(
            self.amount(batch) for batch in waiting if not self.per_model or batch.model == model
        )


@attrs.frozen(kw_only=True)
class QueueRefusal:
    """Why a batch was refused: the queue it would join held *queued* already, it needed
    *amount* more, and the cap is ``cap.limit`` (of ``cap.measure``, for *model* when the cap
    counts per model)."""

    cap: QueueCap
    model: str | None
    queued: int
    amount: int

    @property
    def limit(self) -> int:
        return self.cap.limit

    @property
    def measure(self) -> str:
        return self.cap.measure

    def describe(self) -> str:
        """The facts in plain words (a vendor emulator words its own error around them)."""
        where = f" for {self.model}" if self.model else ""
        return (
            f"{self.queued:,} {self.measure} enqueued{where}; this batch needs {self.amount:,} "
            f"more; the limit is {self.limit:,}"
        )


class QueueGate:
    """An emulator's batch queue: admits a batch when it fits under :attr:`cap` (None: no cap)
    beside the batches still waiting, and remembers what that took. Not locked: the emulator
    calls it under the lock that guards its batches, so two creates never both take the last
    room.

    :attr:`high_water` is the most the queue ever held once a batch was admitted (in the cap's
    measure), and :attr:`refused` how many batches were refused: tests read them to show that
    a client kept under the cap. :attr:`cap` may be changed while the emulator runs.
    """

    def __init__(self, cap: QueueCap | None = None) -> None:
        self.cap = cap
        self.high_water = 0
        self.refused = 0

    def admit(self, batch: Enqueued, waiting: Iterable[Enqueued]) -> QueueRefusal | None:
        """None when *batch* fits beside *waiting* (what each batch that has not ended holds),
        else why not."""
        cap = self.cap
        if cap is None:
            return None
        queued = cap.held(batch.model, waiting)
        amount = cap.amount(batch)
        if queued + amount > cap.limit:
            self.refused += 1
            model = batch.model if cap.per_model else None
            return QueueRefusal(cap=cap, model=model, queued=queued, amount=amount)
        self.high_water = max(self.high_water, queued + amount)
        return None


# -- failures on demand ---------------------------------------------------------------------------

#: Put ``[emulator-fail:429]`` (any HTTP status) in a request to make it fail inside its batch
#: with that status; ``[emulator-fail:some_code]`` makes it fail with the error code
#: ``some_code``; ``[emulator-fail:drop]`` loses it (the vendor reports nothing for it).
FAIL_MARKER = "[emulator-fail:{}]"
_MARKER = re.compile(rb"\[emulator-fail:([0-9]{3}|[a-z_]+)\]")


@attrs.frozen
class FailMarker:
    """What an ``[emulator-fail:...]`` marker asks for."""

    value: str

    @property
    def status(self) -> int | None:
        """The HTTP status to fail with, for ``[emulator-fail:<3 digits>]``."""
        return int(self.value) if self.value.isdigit() else None

    @property
    def drop(self) -> bool:
        """Whether the request is lost: no result line at all."""
        return self.value == "drop"

    @property
    def code(self) -> str | None:
        """The error code to fail with, for ``[emulator-fail:<code>]``."""
        return None if self.value.isdigit() or self.drop else self.value


def find_fail_marker(line: bytes) -> FailMarker | None:
    """The first ``[emulator-fail:...]`` marker in a raw input line, if any."""
    found = _MARKER.search(line)
    return None if found is None else FailMarker(found.group(1).decode())


# -- request ids ----------------------------------------------------------------------------------


def request_id(*parts: object, prefix: str = "req_") -> str:
    """A request id made from *parts* (the same parts, the same id): ``req_`` and 32 hex
    digits, the shape OpenAI's ``x-request-id`` has."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return prefix + digest


class RequestIds:
    """A source of distinct request ids, one per call, the same sequence for the same *seed*.
    Safe to call from the server's threads."""

    def __init__(self, seed: object = 0, *, prefix: str = "req_") -> None:
        self._seed = seed
        self._prefix = prefix
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._count += 1
            count = self._count
        return request_id(self._seed, count, prefix=self._prefix)


# -- input files ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LineError:
    """Why an input file (or one of its lines) fails validation. Codes are OpenAI's
    (``invalid_json_line``, ``duplicate_custom_id``, ``invalid_request``, ``empty_file``,
    ``too_many_tasks``, ...); a vendor with other codes maps them."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@attrs.define(eq=False)
class InputScan:
    """What validating an input file found."""

    total: int = 0
    #: The ``body.model`` of the first valid line, when lines carry one.
    model: str | None = None
    #: (line number, model) of the first valid line whose model differs from :attr:`model`.
    model_clash: tuple[int, str] | None = None
    errors: list[LineError] = attrs.field(factory=list)
    #: input index -> the ``[emulator-fail:...]`` marker of a valid line that has one.
    failures: dict[int, FailMarker] = attrs.field(factory=dict)
    #: The input tokens of the valid lines' bodies (:func:`input_tokens`): what the batch
    #: holds in a vendor's queue of enqueued tokens.
    tokens: int = 0


def scan_input(
    path: Path,
    check_line: Callable[[Mapping[str, Any]], LineError | None],
    *,
    max_requests: int,
    max_errors: int = 100,
) -> InputScan:
    """Validate a JSONL batch input file line by line, as batch APIs do before running it.

    Every line must be a JSON object (a UTF-8 byte order mark on the first line is refused)
    with a non-empty string ``custom_id`` not seen before; then *check_line* (the vendor's own
    rules: its line shape, the body against its spec) may refuse it with a :class:`LineError`
    (its ``line`` is filled in here). A line's ``body.model``, when present, must match the
    first one's (:attr:`InputScan.model_clash` says where it does not). An empty file, or one
    over *max_requests*, is refused too. At most *max_errors* errors are kept.
    """
    scan = InputScan()
    seen: set[str] = set()
    for number, line in enumerate(iter_file_lines(path), start=1):
        index = scan.total
        scan.total += 1
        if len(scan.errors) >= max_errors:
            continue
        checked = _check_line(line, number, seen, check_line)
        if isinstance(checked, LineError):
            scan.errors.append(checked)
            continue
        body = checked.get("body")
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(body, dict):
            scan.tokens += input_tokens(body)
        if isinstance(model, str):
            if scan.model is None:
                scan.model = model
            elif model != scan.model and scan.model_clash is None:
                scan.model_clash = (number, model)
        marker = find_fail_marker(line)
        if marker is not None:
            scan.failures[index] = marker
    if scan.total == 0:
        scan.errors.append(LineError(code="empty_file", message="The input file has no requests."))
    elif scan.total > max_requests:
        scan.errors.append(
            LineError(
                code="too_many_tasks",
                message=f"The batch has {scan.total} requests; the limit is {max_requests}.",
            )
        )
    return scan


def _check_line(
    line: bytes,
    number: int,
    seen: set[str],
    check_line: Callable[[Mapping[str, Any]], LineError | None],
) -> LineError | dict[str, Any]:
    """The line read as a JSON object, or why it is refused."""
    if number == 1 and line.startswith(b"\xef\xbb\xbf"):
        return LineError(
            code="invalid_json_line", message="The file starts with a byte order mark.", line=1
        )
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return LineError(
            code="invalid_json_line", message="This line is not valid JSON.", line=number
        )
    if not isinstance(obj, dict):
        return LineError(
            code="invalid_request", message="A line must be a JSON object.", line=number
        )
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return LineError(
            code="invalid_request", message="Missing 'custom_id'.", line=number, param="custom_id"
        )
    if custom_id in seen:
        return LineError(
            code="duplicate_custom_id",
            message=f"The custom_id {custom_id!r} appears more than once; custom_ids must be "
            "unique.",
            line=number,
            param="custom_id",
        )
    seen.add(custom_id)
    error = check_line(obj)
    return obj if error is None else attrs.evolve(error, line=number)


class BodyChecker:
    """Checks OpenAI-format request bodies against the request schemas of a vendor's spec.

    *schemas* maps an endpoint (``/v1/chat/completions``) to its request schema's name in
    *validator*'s document (``CreateChatCompletionRequest``). Bodies that differ only in the
    text of their chat messages share one verdict (remembered for up to *memo* shapes), so a
    batch of many similar requests is checked at the cost of a few; this holds for specs whose
    message text is an unconstrained string, as OpenAI's is.
    """

    def __init__(
        self, validator: SpecValidator, schemas: Mapping[str, str], *, memo: int = 4096
    ) -> None:
        self._validator = validator
        self._schemas = dict(schemas)
        self._memo: dict[tuple[str, bytes], bool] = {}
        self._memo_size = memo
        self._lock = threading.Lock()

    def problems(
        self, endpoint: str, body: Mapping[str, Any], *, limit: int = 5
    ) -> list[SpecProblem]:
        """What makes *body* break the request schema of *endpoint* (empty when nothing).
        :class:`KeyError` for an endpoint without a schema."""
        schema = self._schemas[endpoint]
        key = (endpoint, orjson.dumps(_blank_message_text(body)))
        with self._lock:
            valid = self._memo.get(key)
        if valid:
            return []
        found = self._validator.problems(schema, body, limit=limit)
        with self._lock:
            if len(self._memo) >= self._memo_size:
                del self._memo[next(iter(self._memo))]
            self._memo[key] = not found
        return found


def _blank_message_text(body: Mapping[str, Any]) -> Mapping[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    blanked: list[Any] = []
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                message = {**message, "content": ""}
            elif isinstance(content, list):
                parts = [
                    {**part, "text": ""}
                    if isinstance(part, dict)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                    else part
                    for part in content
                ]
                message = {**message, "content": parts}
        blanked.append(message)
    return {**body, "messages": blanked}


# -- answers --------------------------------------------------------------------------------------

#: The endpoints :func:`answer_body` answers.
ANSWERED_ENDPOINTS = frozenset({CHAT_COMPLETIONS, EMBEDDINGS, RESPONSES, COMPLETIONS, MODERATIONS})

_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_NO_REASONING = (None, "none")


def answer_body(endpoint: str, body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    """The response body the endpoint would give *body*, deterministically.

    * chat completions, responses and completions answer ``"Echo: <last user text>"``, cut to
      the request's token limit (``max_completion_tokens``, ``max_tokens`` or
      ``max_output_tokens``; then ``finish_reason: "length"``, or ``status: "incomplete"``);
      ``n`` choices where asked;
    * a request for structured output (``response_format`` / ``text.format`` of type
      ``json_schema``) is answered with ``json.dumps(schema_instance(schema))``, and one for
      ``json_object`` with a small JSON object;
    * a chat or responses request that forces a tool call (``tool_choice`` ``"required"`` or
      naming a function) is answered with a call of that function (the first one for
      ``"required"``), its arguments made by :func:`schema_instance`;
    * embeddings are derived from a hash of each input (``dimensions`` long, default 8);
      moderations flag nothing.

    Usage counts one word as one token. A request asking for reasoning (``reasoning_effort``,
    or ``reasoning.effort``, other than ``none``) also reports as many reasoning tokens as its
    answer has words (within the output tokens); one with a ``prompt_cache_key`` reports half
    its prompt tokens as cached. *ident* makes the ids; *created* is the unix time stamped.
    """
    if endpoint == EMBEDDINGS:
        return _embeddings(body)
    if endpoint == MODERATIONS:
        return _moderation(body, ident)
    if endpoint == RESPONSES:
        return _response(body, ident, created)
    if endpoint == COMPLETIONS:
        return _completion(body, ident, created)
    if endpoint == CHAT_COMPLETIONS:
        return _chat(body, ident, created)
    raise ValueError(f"no canned answer for endpoint {endpoint!r}")


@attrs.frozen
class _Answer:
    """The text of an answer (or a tool call's arguments) and its token counts."""

    text: str
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    truncated: bool


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _prompt(body: Mapping[str, Any]) -> tuple[str, int]:
    """(the last user text, the number of words in the whole prompt)."""
    items = body.get("messages")
    if items is None:
        items = body.get("input")
    if items is None:
        items = body.get("prompt")
    instructions = body.get("instructions")
    words = len(instructions.split()) if isinstance(instructions, str) else 0
    if isinstance(items, str):
        return items, words + len(items.split())
    last = ""
    for item in items if isinstance(items, list) else ():
        if isinstance(item, str):
            last, words = item, words + len(item.split())
        elif isinstance(item, dict):
            text = _text_of(item.get("content"))
            words += len(text.split())
            if item.get("role", "user") == "user":
                last = text
    return last, words


def input_tokens(body: Mapping[str, Any]) -> int:
    """The input tokens of an OpenAI-format request *body* as :func:`answer_body`'s usage counts
    them (one word of the prompt, one token; at least one): what a vendor's limit on enqueued
    tokens counts, so an emulator's queue and its answers' usage agree."""
    return max(_prompt(body)[1], 1)


def _limit(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _reasoning_effort(body: Mapping[str, Any]) -> Any:
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        return reasoning.get("effort")
    return body.get("reasoning_effort")


def _counted(body: Mapping[str, Any], text: str, *, cut: bool = True) -> _Answer:
    """*text* as the answer to *body*: cut to its token limit, with its token counts."""
    _, prompt_words = _prompt(body)
    words = text.split(" ")
    limit = _limit(body)
    truncated = cut and limit is not None and 0 < limit < len(words)
    if truncated:
        words = words[:limit]
    visible = len(words)
    reasoning = 0 if _reasoning_effort(body) in _NO_REASONING else visible
    prompt_tokens = max(prompt_words, 1)
    cached = prompt_tokens // 2 if isinstance(body.get("prompt_cache_key"), str) else 0
    return _Answer(
        text=" ".join(words),
        prompt_tokens=prompt_tokens,
        output_tokens=visible + reasoning,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        truncated=truncated,
    )


def _structured(endpoint: str, body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """("json_schema", schema) or ("json_object", None) when *body* asks for JSON output."""
    if endpoint == RESPONSES:
        text = body.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
    else:
        spec = body.get("response_format")
        inner = spec.get("json_schema") if isinstance(spec, dict) else None
        schema = inner.get("schema") if isinstance(inner, dict) else None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "json_schema":
        return kind, schema if isinstance(schema, dict) else {}
    if kind == "json_object":
        return kind, None
    return None


def _answer_text(endpoint: str, body: Mapping[str, Any]) -> str:
    last, _ = _prompt(body)
    structured = _structured(endpoint, body)
    if structured is None:
        return " ".join(["Echo:", *last.split()])
    kind, schema = structured
    if kind == "json_schema":
        return json.dumps(schema_instance(schema))
    return json.dumps({"echo": last})


def _forced_tool(endpoint: str, body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(name, parameters schema) of the function *body* forces a call of, if it does."""
    choice = body.get("tool_choice")
    tools = body.get("tools")
    functions: list[tuple[str, Any]] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        spec = tool if endpoint == RESPONSES else tool.get("function")
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            functions.append((spec["name"], spec.get("parameters")))
    if choice == "required":
        return functions[0] if functions else None
    if isinstance(choice, dict) and choice.get("type") == "function":
        named = choice.get("name") if endpoint == RESPONSES else None
        if named is None and isinstance(choice.get("function"), dict):
            named = choice["function"].get("name")
        return next((function for function in functions if function[0] == named), None)
    return None


def _arguments(parameters: Any) -> str:
    return json.dumps(schema_instance(parameters if isinstance(parameters, dict) else {}))


def _n(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def _chat(body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    tool = _forced_tool(CHAT_COMPLETIONS, body)
    message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
    if tool is not None:
        answer = _counted(body, _arguments(tool[1]), cut=False)
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{ident}",
                "type": "function",
                "function": {"name": tool[0], "arguments": answer.text},
            }
        ]
        finish = "tool_calls"
    else:
        answer = _counted(body, _answer_text(CHAT_COMPLETIONS, body))
        message["content"] = answer.text
        finish = "length" if answer.truncated else "stop"
    n = _n(body)
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": body.get("model"),
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            for i in range(n)
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.output_tokens * n,
            "total_tokens": answer.prompt_tokens + answer.output_tokens * n,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": answer.reasoning_tokens * n,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
    }


def _completion(body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    answer = _counted(body, _answer_text(COMPLETIONS, body))
    n = _n(body)
    return {
        "id": f"cmpl-{ident}",
        "object": "text_completion",
        "created": created,
        "model": body.get("model"),
        "choices": [
            {
                "text": answer.text,
                "index": i,
                "logprobs": None,
                "finish_reason": "length" if answer.truncated else "stop",
            }
            for i in range(n)
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.output_tokens * n,
            "total_tokens": answer.prompt_tokens + answer.output_tokens * n,
        },
    }


def _response(body: Mapping[str, Any], ident: str, created: int) -> dict[str, Any]:
    tool = _forced_tool(RESPONSES, body)
    output: list[dict[str, Any]] = []
    if _reasoning_effort(body) not in _NO_REASONING:
        output.append({"type": "reasoning", "id": f"rs_{ident}", "summary": []})
    if tool is not None:
        answer = _counted(body, _arguments(tool[1]), cut=False)
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{ident}",
                "call_id": f"call_{ident}",
                "name": tool[0],
                "arguments": answer.text,
                "status": "completed",
            }
        )
    else:
        answer = _counted(body, _answer_text(RESPONSES, body))
        output.append(
            {
                "type": "message",
                "id": f"msg_{ident}",
                "status": "incomplete" if answer.truncated else "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
                ],
            }
        )
    echoed = {
        name: body[name]
        for name in ("instructions", "max_output_tokens", "reasoning", "text", "metadata")
        if name in body
    }
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if answer.truncated else "completed",
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if answer.truncated else None,
        "instructions": None,
        "metadata": {},
        **echoed,
        "usage": {
            "input_tokens": answer.prompt_tokens,
            "input_tokens_details": {
                "cached_tokens": answer.cached_tokens,
                "cache_write_tokens": 0,
            },
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": answer.reasoning_tokens},
            "total_tokens": answer.prompt_tokens + answer.output_tokens,
        },
    }


def _embedding(text: str, dimensions: int) -> list[float]:
    digest = hashlib.blake2b(text.encode(), digest_size=64).digest()
    return [round(digest[i % 64] / 127.5 - 1.0, 6) for i in range(dimensions)]


def _embeddings(body: Mapping[str, Any]) -> dict[str, Any]:
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    requested = body.get("dimensions")
    dims = requested if isinstance(requested, int) and requested > 0 else 8
    texts = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in inputs]
    tokens = max(sum(len(t.split()) for t in texts), 1)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _embedding(t, dims)}
            for i, t in enumerate(texts)
        ],
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _moderation(body: Mapping[str, Any], ident: str) -> dict[str, Any]:
    raw = body.get("input")
    count = len(raw) if isinstance(raw, list) and raw and isinstance(raw[0], str) else 1
    result = {
        "flagged": False,
        "categories": dict.fromkeys(_MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(_MODERATION_CATEGORIES, 0.0),
        "category_applied_input_types": {name: ["text"] for name in _MODERATION_CATEGORIES},
    }
    return {
        "id": f"modr-{ident}",
        "model": body.get("model") or "omni-moderation-latest",
        "results": [result] * count,
    }


@attrs.define
class UsageTotals:
    """The token usage of a batch: the sum over its answers, read in either spelling
    (``prompt_tokens`` / ``completion_tokens``, or ``input_tokens`` / ``output_tokens``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, answer: Mapping[str, Any]) -> None:
        usage = answer.get("usage")
        if not isinstance(usage, dict):
            return
        chat = "input_tokens" not in usage
        self.input_tokens += usage.get("prompt_tokens" if chat else "input_tokens") or 0
        self.output_tokens += usage.get("completion_tokens" if chat else "output_tokens") or 0
        self.total_tokens += usage.get("total_tokens") or 0
        inputs = usage.get("prompt_tokens_details" if chat else "input_tokens_details")
        outputs = usage.get("completion_tokens_details" if chat else "output_tokens_details")
        if isinstance(inputs, dict):
            self.cached_tokens += inputs.get("cached_tokens") or 0
        if isinstance(outputs, dict):
            self.reasoning_tokens += outputs.get("reasoning_tokens") or 0


# -- a value valid against a JSON schema ----------------------------------------------------------

_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "P0D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri-reference": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "json-pointer": "",
    "regex": ".*",
}
_MAX_DEPTH = 64


def schema_instance(schema: Mapping[str, Any] | bool) -> Any:
    """A small JSON value valid against *schema* (JSON Schema 2020-12, or draft 7).

    What it honours: ``type`` (the first non-null one of a list), ``const`` and ``enum`` (the
    first value), required properties of objects (optional ones are left out, unless
    ``minProperties`` needs them), arrays of ``minItems`` items (``prefixItems``, ``items``,
    ``contains``, distinct items for ``uniqueItems``), numeric bounds and ``multipleOf``,
    string lengths and simple ``format``\\ s (date-time, date, email, uri, uuid, ...),
    ``allOf`` (merged), ``anyOf`` / ``oneOf`` (the first branch that is not just null) and
    ``$ref`` within the schema (``#/$defs/...``, ``#/definitions/...``, ``#``). A ``pattern`` is
    tried against a few plain strings only. ValueError for a schema no value can satisfy
    (``false``, a required property that requires itself) or a reference it cannot follow.
    """
    return _Instances(schema).make(schema, 0, 0)


class _Instances:
    def __init__(self, root: Mapping[str, Any] | bool) -> None:
        self.root = root

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"cannot follow the reference {ref!r} (only '#...' ones)")
        node: Any = self.root
        for token in ref[1:].lstrip("/").split("/") if ref not in ("#", "#/") else ():
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ValueError(f"the reference {ref!r} points at nothing")
        return node

    def flatten(self, schema: Any, depth: int) -> dict[str, Any]:
        """*schema* with its ``$ref``, ``allOf`` and chosen ``anyOf``/``oneOf`` branch merged in."""
        if depth > _MAX_DEPTH:
            raise ValueError("the schema nests too deep (a property that requires itself?)")
        if schema is True or schema is None:
            return {}
        if schema is False:
            raise ValueError("no value is valid against the schema false")
        merged: dict[str, Any] = {}
        parts: list[Any] = []
        for key, value in schema.items():
            if key == "$ref":
                parts.append(self.resolve(value))
            elif key == "allOf":
                parts.extend(value)
            elif key in ("anyOf", "oneOf"):
                parts.append(_first_branch(value, self))
            else:
                merged[key] = value
        for part in parts:
            _merge(merged, self.flatten(part, depth + 1))
        return merged

    def make(self, schema: Any, depth: int, variant: int) -> Any:
        node = self.flatten(schema, depth)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            values = node["enum"]
            if not values:
                raise ValueError("an empty enum has no valid value")
            return values[variant % len(values)]
        kind = _kind(node)
        if kind == "object":
            return self.make_object(node, depth)
        if kind == "array":
            return self.make_array(node, depth)
        if kind == "string":
            return _string(node, variant)
        if kind in ("integer", "number"):
            return _number(node, variant, integer=kind == "integer")
        if kind == "boolean":
            return variant % 2 == 1
        return None

    def make_object(self, node: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = node.get("properties") or {}
        required = list(dict.fromkeys(node.get("required") or ()))
        wanted = [name for name in properties if name in required]
        wanted += [name for name in required if name not in properties]
        for name in properties:
            if len(wanted) >= (node.get("minProperties") or 0):
                break
            if name not in wanted:
                wanted.append(name)
        extra = node.get("additionalProperties")
        value: dict[str, Any] = {}
        for name in wanted:
            sub = properties.get(name, extra if isinstance(extra, dict) else {})
            value[name] = self.make(sub, depth + 1, 0)
        return value

    def make_array(self, node: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = node.get("prefixItems") or []
        items = node.get("items", {})
        if isinstance(items, list):  # draft 7 tuple form
            prefix, items = items, node.get("additionalItems", {})
        count = node.get("minItems") or 0
        contains = node.get("contains")
        if contains is not None:
            count = max(count, node.get("minContains", 1), 1)
        unique = bool(node.get("uniqueItems"))
        value: list[Any] = []
        for i in range(count):
            if i < len(prefix):
                sub = prefix[i]
            elif contains is not None and i == len(prefix):
                sub = contains
            else:
                sub = items
            value.append(self.make(sub, depth + 1, i if unique else 0))
        return value


def _first_branch(branches: Sequence[Any], instances: _Instances) -> Any:
    for branch in branches:
        resolved = instances.flatten(branch, 0) if isinstance(branch, Mapping) else branch
        if not (isinstance(resolved, Mapping) and resolved.get("type") == "null"):
            return branch
    return branches[0] if branches else {}


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if key == "properties" and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        elif key == "required" and isinstance(into.get(key), list):
            into[key] = [*into[key], *value]
        elif key == "type" and key in into:
            into[key] = _common_type(into[key], value)
        else:
            into.setdefault(key, value)


def _common_type(a: Any, b: Any) -> Any:
    left = a if isinstance(a, list) else [a]
    right = b if isinstance(b, list) else [b]
    both = [t for t in left if t in right or (t == "integer" and "number" in right)]
    both += [t for t in right if t == "integer" and "number" in left and t not in both]
    return both or left


def _kind(node: Mapping[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if any(k in node for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in node for k in ("items", "prefixItems", "minItems", "contains")):
        return "array"
    if any(k in node for k in ("minLength", "maxLength", "pattern", "format")):
        return "string"
    if any(k in node for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return "number"
    return None


def _string(node: Mapping[str, Any], variant: int) -> str:
    low = node.get("minLength") or 0
    high = node.get("maxLength")
    suffix = str(variant) if variant else ""
    known = _FORMATS.get(node.get("format", ""))
    candidates = [suffix, "a" + suffix, "0" + suffix, "A" + suffix]
    if known is not None:
        candidates.insert(0, known)
    fitted = []
    for candidate in candidates:
        if len(candidate) < low:
            candidate = "a" * (low - len(candidate)) + candidate
        if high is not None:
            candidate = candidate[-high:] if high else ""
        fitted.append(candidate)
    pattern = node.get("pattern")
    for candidate in fitted:
        if pattern is None or re.search(pattern, candidate):
            return candidate
    return fitted[0]


def _number(node: Mapping[str, Any], variant: int, *, integer: bool) -> int | float:
    low, high = node.get("minimum"), node.get("maximum")
    above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if isinstance(above, bool):  # draft 4: a flag that excludes the minimum itself
        above, low = (low if above else None), (None if above else low)
    if isinstance(below, bool):
        below, high = (high if below else None), (None if below else high)
    step = node.get("multipleOf")
    unit: float = step or 1

    def valid(value: float) -> bool:
        return (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
            and (step is None or (value / step).is_integer())
            and (not integer or float(value).is_integer())
        )

    floor_at = low if low is not None else above
    ceiling_at = high if high is not None else below
    if floor_at is not None and floor_at > 0:
        start = math.ceil(floor_at / unit)
    elif ceiling_at is not None and ceiling_at < 0:
        start = math.floor(ceiling_at / unit)
    else:
        start = 0
    for offset in (variant, variant + 1, variant - 1, *range(2, 64), *range(-2, -64, -1)):
        value = (start + offset) * unit
        if valid(value):
            return int(value) if float(value).is_integer() else value
    if not integer and floor_at is not None and ceiling_at is not None:
        return float(floor_at + ceiling_at) / 2
    raise ValueError(f"no number found within the bounds of {dict(node)!r}")

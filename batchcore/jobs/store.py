"""The durable job store: jobs, their requests, batches, results and events.

Every step of a job is written here *before* and *after* its network call (intent, then
outcome), so a process killed at any instant resumes without losing a paid result or paying
twice. The SQL is written once; :mod:`batchcore.jobs.database` runs it on SQLite (the default:
one file in WAL mode, readers never block writers) and the schema comes from one migration
list (:mod:`batchcore.jobs.schema`). Secrets are never written: configuration passes through
:func:`public_config` first. States and their transitions: :mod:`batchcore.jobs.states`.
"""

from __future__ import annotations

import os
import re
import socket
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import orjson
import platformdirs

from batchcore.config import is_secret_key
from batchcore.errors import InvalidRequestError, StoreError
from batchcore.jobs.database import Database, Row, SQLiteDatabase
from batchcore.jobs.errors import JobBusyError, JobNotFoundError, JoinError
from batchcore.jobs.request_rows import common_prefix, decode, encode_extra, strip_prefix
from batchcore.jobs.schema import SCHEMA_VERSION, SEQ_BLOCK, migrate, next_number
from batchcore.jobs.states import BatchRowState, JobState, RequestState
from batchcore.models import BatchHandle, BatchRequest, BatchResult, BatchStatus, ResultStatus

__all__ = [
    "HOME_ENV",
    "STORE_ENV",
    "BatchRow",
    "Claim",
    "EventRow",
    "JobRow",
    "JobStore",
    "answers_reusable",
    "default_store_path",
    "payload_dir_for",
    "public_config",
    "public_url",
    "store_location",
]

HOME_ENV = "BATCHCORE_HOME"
STORE_ENV = "BATCHCORE_STORE"
STORE_FILE = "jobs.sqlite3"
_INSERT_CHUNK = 5000
# States as the SQL spells them, from the enums (constants, never user input: safe to inline).
_ACTIVE = JobState.ACTIVE.value
#: Batches with a step to do (submit, poll, fetch).
_STEPPING = "({})".format(
    ", ".join(
        f"'{state.value}'"
        for state in (BatchRowState.PREPARED, BatchRowState.SUBMITTED, BatchRowState.ENDED)
    )
)
_PENDING = RequestState.PENDING.value
_ASSIGNED = RequestState.ASSIGNED.value
_DONE = RequestState.DONE.value
#: Each request state as its partial index spells it (an assigned request always has its
#: batch's row once recorded: see the schema).
_IN_STATE = {
    RequestState.PENDING: f"state='{_PENDING}'",
    RequestState.ASSIGNED: f"state='{_ASSIGNED}' AND batch_row IS NOT NULL",
    RequestState.DONE: f"state='{_DONE}'",
}
_SUCCEEDED = ResultStatus.SUCCEEDED.value
#: Results per statement (4 parameters each, under every backend's parameter limit).
_RESULT_ROWS = 1000


def default_store_path() -> Path:
    """``$BATCHCORE_HOME/jobs.sqlite3``, else the per-user state directory."""
    home = os.environ.get(HOME_ENV)
    base = Path(home) if home else Path(platformdirs.user_state_dir("batchcore", appauthor=False))
    return base / STORE_FILE


#: Config keys that describe this machine, not the job: never recorded, so another machine (a
#: worker) resuming the job uses its own.
_LOCAL_KEYS = frozenset({"workdir"})
#: Query parameters that carry credentials in URLs (``?key=`` of Gemini, SAS ``sig``, presigned
#: ``X-Amz-Signature``), besides every name :func:`is_secret_key` flags.
_SECRET_PARAM = re.compile(r"(^sig$|signature|^auth|^code$|^pass|^pwd$|^session)", re.IGNORECASE)


def public_url(value: str, *, keep_user: bool = False) -> str:
    """*value* without what may be a credential, when it is a URL: no ``user:password@``
    (*keep_user*: only the password goes, for messages that name a database user) and no
    secret-looking query parameter. Anything else comes back unchanged."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:  # not a URL after all: keep nothing that could hide a secret
        return value.split("://", 1)[0] + "://"
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        if keep_user and parts.username:
            netloc = f"{parts.username}@{netloc}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(n, v) for n, v in pairs if not (is_secret_key(n) or _SECRET_PARAM.search(n))]
    query = parts.query if len(kept) == len(pairs) else urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """*config* without anything that may be a secret (api keys, tokens, passwords, credentials
    inside URLs) or is local to this machine (``workdir``), and without values that are not
    plain JSON (callables, backends): what may be written to the store."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if is_secret_key(key) or key in _LOCAL_KEYS:
            continue
        if isinstance(value, str):
            out[key] = public_url(value)
        elif value is None or isinstance(value, (int, float, bool)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            out[key] = [public_url(v) for v in value]
    return out


def answers_reusable(options: Mapping[str, Any]) -> bool:
    """Whether a job's successful answers may serve other jobs (opt-in result reuse), and it
    may be served by theirs: only a job whose answers are real. A sandbox job's answers are
    invented by an emulator; it neither lends nor borrows (the one rule, for both ways)."""
    return not options.get("sandbox")


def owner_token() -> str:
    """Who is driving: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """False only when *owner* is certainly dead: a process of this host that no longer
    exists. An owner on another host can only be judged by its lease."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@attrs.frozen(kw_only=True)
class JobRow:
    id: str
    provider: str
    config: Mapping[str, Any]
    options: Mapping[str, Any]
    state: JobState
    cancel_requested: bool
    request_count: int
    error: str | None
    owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    cancel_reason: str | None = None
    deadline: float | None = None
    #: When ``owner`` took the job (kept while the same owner renews or re-acquires it).
    owner_since: float | None = None


@attrs.frozen(kw_only=True)
class BatchRow:
    row: int
    job_id: str
    round: int
    idempotency_key: str
    state: BatchRowState
    request_count: int
    payload: Mapping[str, Any] | None
    handle: BatchHandle | None
    status: BatchStatus | None
    cancel_sent: bool
    #: When the batch's next step (submit, poll or fetch) is due; None: now.
    next_poll_at: float | None
    polls: int
    #: Transient failures of the current step in a row (reset when a step succeeds).
    poll_failures: int
    error: str | None
    batch_id: str | None
    staged: Mapping[str, Any]
    attempted_at: float | None
    candidates: tuple[str, ...]
    claimed_by: str | None = None
    claimed_at: float | None = None
    claim_until: float | None = None
    model: str | None = None
    #: Estimated input tokens the batch puts in the vendor's queue (the expected estimate of
    #: :mod:`batchcore.tokens`; see :meth:`JobStore.queue_cap` for why not the upper bound).
    tokens: int | None = None
    #: Usage of its results by the model that answered: {model: {field: tokens}}.
    usage: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    #: What a prepared batch waits for (``"capacity"``: room in the vendor's queue; the reason
    #: is in ``error``), or None.
    waits_for: str | None = None


@attrs.frozen(kw_only=True)
class Claim:
    """A step someone may do now: of batch ``batch_row`` of job ``job_id``, or (``batch_row``
    None) of the job itself."""

    job_id: str
    batch_row: int | None


@attrs.frozen(kw_only=True)
class EventRow:
    at: float
    kind: str
    batch_id: str | None
    actor: str | None
    detail: str | None


def _cause(error: StoreError) -> str:
    """A store error's cause, without the store's name in front."""
    prefix = f"job store {error.where}: "
    text = str(error)
    return text[len(prefix) :] if text.startswith(prefix) else text


def _check_assigned(job_id: str, expected: int, assigned: int) -> None:
    if assigned != expected:
        # The structural guard against paying for a batch whose results can never be
        # joined: every request of a payload must be a request of this job waiting for it.
        raise JoinError(
            f"job {job_id}: a batch of {expected} requests matched {assigned} pending "
            "requests of the job; nothing was submitted. This is a bug: please report it"
        )


def _queue_lock(provider: str, model: str | None) -> str:
    """The name that serialises decisions about one vendor queue among processes."""
    return f"batchcore-queue:{provider}:{model or '*'}"


def _json(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _job(row: Row) -> JobRow:
    return JobRow(
        id=row["id"],
        provider=row["provider"],
        config=orjson.loads(row["config"]),
        options=orjson.loads(row["options"]),
        state=JobState(row["state"]),
        cancel_requested=bool(row["cancel_requested"]),
        request_count=row["request_count"],
        error=row["error"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        cancel_reason=row["cancel_reason"],
        deadline=row["deadline"],
        owner_since=row["owner_since"],
    )


def _batch(row: Row) -> BatchRow:
    handle = _json(row["handle"])
    status = _json(row["status"])
    return BatchRow(
        row=row["row"],
        job_id=row["job_id"],
        round=row["round"],
        idempotency_key=row["idempotency_key"],
        state=BatchRowState(row["state"]),
        request_count=row["request_count"],
        payload=_json(row["payload"]),
        handle=None if handle is None else BatchHandle.from_dict(handle),
        status=None if status is None else BatchStatus.from_dict(status),
        cancel_sent=bool(row["cancel_sent"]),
        next_poll_at=row["next_poll_at"],
        polls=row["polls"],
        poll_failures=row["poll_failures"],
        error=row["error"],
        batch_id=row["batch_id"],
        staged=_json(row["staged"]) or {},
        attempted_at=row["attempted_at"],
        candidates=tuple(_json(row["candidates"]) or ()),
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        claim_until=row["claim_until"],
        model=row["model"],
        tokens=row["tokens"],
        usage=_json(row["usage"]) or {},
        waits_for=row["waits_for"],
    )


def store_location(location: str | Path | None) -> str | Path:
    """What a store location names: a PostgreSQL URL (a string) or a SQLite file path (default:
    ``$BATCHCORE_STORE``, else :func:`default_store_path`)."""
    if location is None:
        location = os.environ.get(STORE_ENV) or default_store_path()
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return text
    return Path(text).expanduser()


def payload_dir_for(location: str | Path | None) -> Path:
    """Where batch payload files are written for jobs of the store at *location*: beside a
    SQLite store (same disk, same permissions, same cleanup as the jobs), else in this
    machine's ``$BATCHCORE_HOME`` or per-user cache directory. Payloads of a server store are
    local scratch: any machine rebuilds them from the store."""
    where = store_location(location)
    if isinstance(where, Path):
        return where.parent / "payloads"
    home = os.environ.get(HOME_ENV)
    base = Path(home) if home else Path(platformdirs.user_cache_dir("batchcore", appauthor=False))
    return base / "payloads"


def open_database(location: str | Path | None, *, readonly: bool = False) -> Database:
    """The database a store location names (see :func:`store_location`)."""
    where = store_location(location)
    if isinstance(where, str):
        from batchcore.jobs.postgres import PostgresDatabase

        return PostgresDatabase(where, readonly=readonly)
    return SQLiteDatabase(where, readonly=readonly)


class JobStore:
    """Jobs, their requests, batches, results and events, in one database.

    *location* is a SQLite file path or a PostgreSQL URL (default: ``$BATCHCORE_STORE``, else
    ``$BATCHCORE_HOME/jobs.sqlite3``). *readonly* never writes jobs (read commands work on
    read-only media); a store from an older batchcore is still upgraded in place when it is
    writable, and refused with the reason when it is not. One instance per thread; any number
    of processes may open the same store.
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        readonly: bool = False,
        database: Database | None = None,
    ) -> None:
        self.location = location
        self._db = database or open_database(location, readonly=readonly)
        self.readonly = readonly
        self._clock = clock
        #: job id -> (its key, the start its requests' bodies share): fixed once recorded.
        self._keys: dict[str, tuple[int, bytes | None]] = {}
        try:
            if readonly and not getattr(self._db, "missing", False):
                version = self._check_version()
                if version < SCHEMA_VERSION:
                    self._upgrade_in_place(version)
            else:
                migrate(self._db)
        except BaseException:
            self._db.close()
            raise

    @property
    def where(self) -> str:
        """The store's path or URL (without a password), for messages."""
        return self._db.where

    @property
    def path(self) -> Path:
        """The SQLite file (payload files live beside it). Raises for a server store."""
        if not isinstance(self._db, SQLiteDatabase):
            raise AttributeError("a server store has no file path")
        return self._db.path

    @property
    def payload_dir(self) -> Path:
        """Where payload files of this store's jobs are written (see :func:`payload_dir_for`)."""
        return payload_dir_for(
            self._db.path if isinstance(self._db, SQLiteDatabase) else self.where
        )

    @property
    def database(self) -> Database:
        return self._db

    def reopen(self) -> JobStore:
        """Another connection to the same store (for another thread)."""
        return JobStore(
            self.location if self.location is not None else self.where,
            clock=self._clock,
            readonly=self.readonly,
        )

    def _check_version(self) -> int:
        """The schema version of the store; a store from a newer batchcore is refused."""
        found = None
        if self._db.query_one(
            "SELECT name FROM sqlite_master WHERE name='meta'"
            if self._db.dialect == "sqlite"
            else "SELECT table_name AS name FROM information_schema.tables WHERE table_name='meta'"
        ):
            found = self._db.query_one("SELECT value FROM meta WHERE key='schema'")
        version = 0 if found is None else int(found["value"])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"job store {self.where} was written by a newer batchcore (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}); upgrade batchcore to read it",
                where=self.where,
            )
        return version

    def _upgrade_in_place(self, version: int) -> None:
        """Bring an older store opened read-only up to date through a writable connection of
        its own (a read command on an old store just works); refuse with the reason only where
        it cannot be written."""
        if isinstance(self._db, SQLiteDatabase):
            target: str | Path | None = self._db.path
        else:
            target = self.location
        failure: StoreError | None = None
        try:
            writer = open_database(target)
            try:
                migrate(writer)
            finally:
                writer.close()
        except StoreError as error:
            failure = error
        if failure is None:
            return
        why = _cause(failure)
        if "read-only" in why or "readonly" in why:
            why = "the store is on read-only storage or not writable"
        raise StoreError(
            f"job store {self.where} is at schema {version}, older than this batchcore's "
            f"{SCHEMA_VERSION}, and reading it needs a one-time upgrade in place, which cannot "
            f"be done here ({why}): run any batchcore command once where the store is "
            "writable, or read it with the batchcore that wrote it",
            where=self.where,
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[Database]:
        """A write transaction taken up front, so two writers never deadlock mid-way."""
        with self._db.transaction(durable=durable):
            yield self._db

    # -- jobs ------------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        *,
        provider: str,
        config: Mapping[str, Any],
        options: Mapping[str, Any],
        requests: Iterable[BatchRequest],
    ) -> int:
        """Record a job and all its requests in one transaction; returns the request count.

        A duplicate custom_id, or any exception raised while iterating *requests* (a caller's
        validation), rolls everything back: the job never half-exists.
        """
        with self.new_job(job_id, provider=provider, config=config, options=options) as job:
            for _ in job.record(requests):
                pass
        return job.count

    @contextmanager
    def new_job(
        self,
        job_id: str,
        *,
        provider: str,
        config: Mapping[str, Any],
        options: Mapping[str, Any],
        batched: bool = False,
    ) -> Iterator[NewJob]:
        """Record a job in one transaction: requests stream in through :meth:`NewJob.record`
        (so a caller can prepare payloads from the same pass) and batches are added with
        :meth:`NewJob.add_batch`. Any exception rolls everything back.

        *batched*: the caller puts every request it is passed into one of the batches it adds
        here (the job's first round), so each is recorded with its first attempt, waiting for
        its batch, and never rewritten as pending then assigned; a request left without a
        batch at the end is a bug (:class:`JoinError`), and nothing is recorded then."""
        now = self._clock()
        try:
            with self.transaction():
                key = next_number(self._db)
                self._db.execute(
                    "INSERT INTO jobs (id, key, provider, config, options, state, created_at,"
                    " updated_at, driver_only, deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        key,
                        provider,
                        orjson.dumps(public_config(config)),
                        orjson.dumps(dict(options)),
                        JobState.ACTIVE.value,
                        now,
                        now,
                        # A sandbox job lives in its driver's process: no worker can reach it.
                        int(bool(options.get("sandbox"))),
                        options.get("deadline"),
                    ),
                )
                job = NewJob(self, job_id, key, options, batched=batched)
                yield job
                job.finish()
                self._db.execute("UPDATE jobs SET request_count=? WHERE id=?", (job.count, job_id))
        finally:
            self._keys.pop(job_id, None)  # learnt again from the store, as committed
        if job.count >= _INSERT_CHUNK:
            self._db.refresh_statistics("requests")

    def _job_key(self, job_id: str) -> tuple[int, bytes | None]:
        """The key the job's requests are recorded under, and the start their bodies share."""
        known = self._keys.get(job_id)
        if known is None:
            row = self._db.query_one("SELECT key, body_prefix FROM jobs WHERE id=?", (job_id,))
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.where}")
            known = self._keys[job_id] = (int(row["key"]), row["body_prefix"])
        return known

    def _insert_requests(self, rows: list[tuple[Any, ...]], first: int) -> None:
        """Insert rows of :meth:`NewJob.record` (with ``extra`` only where one has it);
        *first*: the request number of the first."""
        columns = "seq, job, custom_id, state, attempts, fingerprint, body"
        if any(len(row) > 7 for row in rows):
            rows = [row if len(row) > 7 else (*row, None) for row in rows]
            columns += ", extra"
        failure: StoreError | None = None
        try:
            self._db.executemany(
                f"INSERT INTO requests ({columns})"
                f" VALUES ({', '.join('?' * (columns.count(',') + 1))})",
                rows,
            )
        except StoreError as error:
            failure = error
        if failure is None:
            return
        seen: set[str] = set()
        for number, row in enumerate(rows, first):
            if row[2] in seen or self._db.query_one(
                "SELECT 1 FROM requests WHERE job=? AND custom_id=?", (row[1], row[2])
            ):
                raise InvalidRequestError(
                    f"custom_id {row[2]!r} appears more than once (again as request "
                    f"#{number}); custom_ids must be unique within a job",
                    custom_id=row[2],
                    field="custom_id",
                )
            seen.add(row[2])
        raise failure

    def job(self, job_id: str) -> JobRow:
        row = self._db.query_one("SELECT * FROM jobs WHERE id=?", (job_id,))
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.where}")
        return _job(row)

    def jobs(self) -> list[JobRow]:
        return [_job(r) for r in self._db.query("SELECT * FROM jobs ORDER BY created_at, id")]

    def set_job_state(self, job_id: str, state: JobState, *, error: str | None = None) -> None:
        now = self._clock()
        state = JobState(state)
        with self.transaction():
            self._db.execute(
                "UPDATE jobs SET state=?, error=?, updated_at=?, finished_at=? WHERE id=?",
                (state.value, error, now, now if state.is_final else None, job_id),
            )

    def set_job_options(self, job_id: str, options: Mapping[str, Any]) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE jobs SET options=?, updated_at=? WHERE id=?",
                (orjson.dumps(dict(options)), self._clock(), job_id),
            )

    def request_cancel(self, job_id: str, *, reason: str | None = None) -> None:
        """Ask for the job to stop (*reason*: ``"deadline"`` when its deadline passed)."""
        self.job(job_id)
        with self.transaction():
            self._db.execute(
                "UPDATE jobs SET cancel_requested=1, cancel_reason=COALESCE(cancel_reason, ?),"
                " updated_at=? WHERE id=?",
                (reason, self._clock(), job_id),
            )

    # -- the driver's lease ------------------------------------------------------------------

    def acquire(self, job_id: str, *, lease_seconds: float = 120.0, me: str | None = None) -> str:
        """Claim the right to drive *job_id*. Raises :class:`JobBusyError` while another
        process holds it; takes it over from an owner that is dead (same host) or whose lease
        ran out (silent: a live driver renews it), and records the takeover as a job event."""
        me = me or owner_token()
        now = time.time()  # wall time: leases are compared across processes and hosts
        with self.transaction():
            row = self._db.query_one(
                "SELECT owner, lease_until, owner_since FROM jobs WHERE id=?", (job_id,)
            )
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.where}")
            owner, until = row["owner"], row["lease_until"]
            if owner and owner != me:
                expired = until is None or until <= now
                if not expired and owner_alive(owner):
                    raise JobBusyError(
                        f"job {job_id} is being run by another process ({owner}); wait for it, "
                        f"or stop it and run `batchcore resume {job_id}`"
                    )
                why = "its lease ran out" if expired else "it is no longer running"
                self._event(job_id, "takeover", f"took over from {owner}: {why}", actor=me)
                self._drop_claims_of(owner)
            since = row["owner_since"] if owner == me and row["owner_since"] else now
            self._db.execute(
                "UPDATE jobs SET owner=?, lease_until=?, owner_since=? WHERE id=?",
                (me, now + lease_seconds, since, job_id),
            )
        return me

    def renew(self, job_id: str, owner: str, *, lease_seconds: float = 120.0) -> bool:
        """Extend *owner*'s lease; False when it no longer holds it (it was taken over)."""
        with self.transaction():
            changed = self._db.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND owner=?",
                (time.time() + lease_seconds, job_id, owner),
            )
        return changed == 1

    def release(self, job_id: str, owner: str) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE jobs SET owner=NULL, lease_until=NULL, owner_since=NULL"
                " WHERE id=? AND owner=?",
                (job_id, owner),
            )

    # -- claims: many drivers and workers share the store -------------------------------------

    def claim_batch(self, row: int, me: str, *, seconds: float) -> bool:
        """Take the right to do the next step of batch *row* for *seconds* (renewed by the
        holder's heartbeat). False while someone else holds it."""
        now = time.time()
        with self.transaction():
            return (
                self._db.execute(
                    "UPDATE batches SET claimed_by=?, claimed_at=?, claim_until=?,"
                    " admitted_at=NULL WHERE row=?"
                    " AND (claimed_by IS NULL OR claimed_by=? OR claim_until < ?)",
                    (me, now, now + seconds, row, me, now),
                )
                == 1
            )

    def release_batch(self, row: int, me: str) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET claimed_by=NULL, claimed_at=NULL, claim_until=NULL,"
                " admitted_at=NULL WHERE row=? AND claimed_by=?",
                (row, me),
            )

    def claim_job_step(self, job_id: str, me: str, *, seconds: float) -> bool:
        """Take the right to do a job-level step (plan a round, finish the job)."""
        now = time.time()
        with self.transaction():
            return (
                self._db.execute(
                    "UPDATE jobs SET step_owner=?, step_until=? WHERE id=?"
                    " AND (step_owner IS NULL OR step_owner=? OR step_until < ?)",
                    (me, now + seconds, job_id, me, now),
                )
                == 1
            )

    def release_job_step(self, job_id: str, me: str) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE jobs SET step_owner=NULL, step_until=NULL WHERE id=? AND step_owner=?",
                (job_id, me),
            )

    def _drop_claims_of(self, owner: str) -> None:
        self._db.execute(
            "UPDATE batches SET claimed_by=NULL, claimed_at=NULL, claim_until=NULL,"
            " admitted_at=NULL WHERE claimed_by=?",
            (owner,),
        )
        self._db.execute(
            "UPDATE jobs SET step_owner=NULL, step_until=NULL WHERE step_owner=?", (owner,)
        )

    def release_dead_claims(self) -> int:
        """Drop the claims of processes of this host that no longer exist (a killed worker or
        driver), so their steps need not wait for the claims to expire. Claims of other hosts
        are judged by their expiry alone."""
        now = time.time()
        holders = {
            r["who"]
            for r in self._db.query(
                "SELECT DISTINCT claimed_by AS who FROM batches WHERE claim_until > ?"
                " UNION SELECT DISTINCT step_owner AS who FROM jobs WHERE step_until > ?",
                (now, now),
            )
            if r["who"]
        }
        dead = [who for who in holders if not owner_alive(who.split("/", 1)[0])]
        if dead:
            with self.transaction():
                for who in dead:
                    self._drop_claims_of(who)
        return len(dead)

    def renew_claims(self, me: str, *, seconds: float) -> int:
        """Extend every claim *me* holds (its heartbeat); how many it still holds."""
        until = time.time() + seconds
        with self.transaction():
            held = self._db.execute(
                "UPDATE batches SET claim_until=? WHERE claimed_by=?", (until, me)
            )
            held += self._db.execute("UPDATE jobs SET step_until=? WHERE step_owner=?", (until, me))
        return held

    def claim_next(
        self,
        me: str,
        *,
        seconds: float,
        now: float,
        providers: Iterable[str] | None = None,
    ) -> Claim | None:
        """The next step that is due (by the jobs' clock *now*) in any active job no driver
        holds, claimed for *me*: a batch step first (submit, poll, fetch, cancel), else a job
        step (plan a round, finish). Only jobs of *providers*, when given. None when nothing
        is due."""
        wall = time.time()
        active = (
            f"j.state='{_ACTIVE}' AND j.driver_only=0 AND (j.owner IS NULL OR j.lease_until < ?)"
        )
        names: tuple[str, ...] = ()
        if providers is not None:
            names = tuple(sorted(providers)) or ("",)
            active += f" AND j.provider IN ({', '.join('?' * len(names))})"
        with self.transaction():
            # A passed deadline comes first: it stops the job's other steps.
            found = self._db.query_one(
                f"SELECT j.id FROM jobs j WHERE {active}"
                " AND (j.step_owner IS NULL OR j.step_until < ?)"
                " AND j.deadline <= ? AND j.cancel_requested = 0"
                " ORDER BY j.deadline LIMIT 1" + self._db.lock_rows("j"),
                (wall, *names, wall, now),
            )
            if found is not None:
                self._db.execute(
                    "UPDATE jobs SET step_owner=?, step_until=? WHERE id=?",
                    (me, wall + seconds, found["id"]),
                )
                return Claim(job_id=found["id"], batch_row=None)
            found = self._db.query_one(
                "SELECT b.row, b.job_id FROM batches b JOIN jobs j ON j.id = b.job_id"
                f" WHERE {active} AND (b.claimed_by IS NULL OR b.claim_until < ?)"
                f" AND ((b.state IN {_STEPPING}"
                " AND (b.next_poll_at IS NULL OR b.next_poll_at <= ?))"
                f" OR (b.state = '{BatchRowState.SUBMITTED.value}' AND j.cancel_requested = 1"
                " AND b.cancel_sent = 0))"
                " ORDER BY COALESCE(b.next_poll_at, 0), b.row LIMIT 1" + self._db.lock_rows("b"),
                (wall, *names, wall, now),
            )
            if found is not None:
                self._db.execute(
                    "UPDATE batches SET claimed_by=?, claimed_at=?, claim_until=?,"
                    " admitted_at=NULL WHERE row=?",
                    (me, wall, wall + seconds, found["row"]),
                )
                return Claim(job_id=found["job_id"], batch_row=found["row"])
            found = self._db.query_one(
                "SELECT j.id FROM jobs j"
                f" WHERE {active} AND (j.step_owner IS NULL OR j.step_until < ?)"
                # A round to plan (pending requests), or nothing unfinished: the job ends.
                f" AND (EXISTS (SELECT 1 FROM requests r WHERE r.job = j.key AND r.state ="
                f" '{_PENDING}') OR NOT EXISTS (SELECT 1 FROM requests r WHERE r.job = j.key"
                f" AND r.state = '{_ASSIGNED}' AND r.batch_row IS NOT NULL)"
                " OR (j.deadline <= ? AND j.cancel_requested = 0))"
                " ORDER BY j.created_at LIMIT 1" + self._db.lock_rows("j"),
                (wall, *names, wall, now),
            )
            if found is not None:
                self._db.execute(
                    "UPDATE jobs SET step_owner=?, step_until=? WHERE id=?",
                    (me, wall + seconds, found["id"]),
                )
                return Claim(job_id=found["id"], batch_row=None)
        return None

    def has_worker_jobs(self, providers: Iterable[str] | None = None) -> bool:
        """Whether any active job is left for workers (not held by a live driver; of
        *providers*, when given)."""
        sql = (
            f"SELECT 1 FROM jobs j WHERE j.state='{_ACTIVE}' AND j.driver_only=0"
            " AND (j.owner IS NULL OR j.lease_until < ?)"
        )
        args: list[Any] = [time.time()]
        if providers is not None:
            names = tuple(sorted(providers)) or ("",)
            sql += f" AND j.provider IN ({', '.join('?' * len(names))})"
            args.extend(names)
        return self._db.query_one(sql + " LIMIT 1", args) is not None

    def next_due(self, *, now: float, job_id: str | None = None) -> float | None:
        """When the earliest waiting batch step becomes due (the jobs' clock), or None."""
        sql = (
            "SELECT MIN(b.next_poll_at) AS due FROM batches b JOIN jobs j ON j.id = b.job_id"
            f" WHERE j.state='{_ACTIVE}' AND b.state IN {_STEPPING}"
            " AND b.next_poll_at > ?"
        )
        args: list[Any] = [now]
        if job_id is not None:
            sql += " AND b.job_id = ?"
            args.append(job_id)
        found = self._db.query_one(sql, args)
        return None if found is None or found["due"] is None else float(found["due"])

    # -- events ------------------------------------------------------------------------------

    def _event(
        self,
        job_id: str,
        kind: str,
        detail: str | None,
        *,
        batch_id: str | None = None,
        actor: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO events (job_id, at, kind, batch_id, actor, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, self._clock(), kind, batch_id, actor, detail),
        )

    def record_event(
        self,
        job_id: str,
        kind: str,
        detail: str | None = None,
        *,
        batch_id: str | None = None,
        actor: str | None = None,
    ) -> None:
        with self.transaction():
            self._event(job_id, kind, detail, batch_id=batch_id, actor=actor)

    def events(self, job_id: str) -> list[EventRow]:
        return [
            EventRow(
                at=r["at"],
                kind=r["kind"],
                batch_id=r["batch_id"],
                actor=r["actor"],
                detail=r["detail"],
            )
            for r in self._db.query(
                "SELECT at, kind, batch_id, actor, detail FROM events WHERE job_id=? ORDER BY row",
                (job_id,),
            )
        ]

    # -- requests --------------------------------------------------------------------------

    # States are spelled in the SQL (enum constants, never user input): a partial index is
    # used only for a query that names its state, which a bound parameter may not.

    def iter_requests(
        self, job_id: str, *, state: RequestState | None = None, batch_row: int | None = None
    ) -> Iterator[BatchRequest]:
        """Requests in input order, streamed from the database: all of the job's, those in
        *state*, or those assigned to batch *batch_row*."""
        key, prefix = self._job_key(job_id)
        sql = "SELECT custom_id, body, extra FROM requests WHERE job=?"
        args: list[Any] = [key]
        if batch_row is not None:
            sql += f" AND batch_row=? AND state='{_ASSIGNED}'"
            args.append(batch_row)
        elif state is not None:
            sql += f" AND state='{RequestState(state).value}'"
        for row in self._db.iterate(sql + " ORDER BY seq", args):
            yield decode(row["custom_id"], row["body"], row["extra"], prefix)

    def has_requests(self, job_id: str, state: RequestState) -> bool:
        """Whether any request of the job is in *state* (reads one index entry)."""
        key = self._job_key(job_id)[0]
        found = self._db.query_one(
            f"SELECT 1 FROM requests WHERE job=? AND {_IN_STATE[RequestState(state)]} LIMIT 1",
            (key,),
        )
        return found is not None

    def count_requests(self, job_id: str) -> dict[RequestState, int]:
        """Requests by state (states with none left out). Pending and done requests are
        counted from their indexes; the rest of the job's requests are assigned."""
        key = self._job_key(job_id)[0]
        found = self._db.query_one(
            f"SELECT (SELECT COUNT(*) FROM requests WHERE job=? AND state='{_PENDING}') AS p,"
            f" (SELECT COUNT(*) FROM requests WHERE job=? AND state='{_DONE}') AS d,"
            " request_count AS n FROM jobs WHERE key=?",
            (key, key, key),
        )
        assert found is not None
        pending, done = int(found["p"]), int(found["d"])
        counts = {
            RequestState.PENDING: pending,
            RequestState.ASSIGNED: int(found["n"]) - pending - done,
            RequestState.DONE: done,
        }
        return {state: n for state, n in counts.items() if n}

    def count_results(self, job_id: str) -> dict[str, int]:
        """Final results by status (requests whose outcome is settled)."""
        counts: dict[str, int] = {}
        for by_status in self.count_done(job_id, None).values():
            for status, n in by_status.items():
                counts[status] = counts.get(status, 0) + n
        return counts

    def count_done(
        self, job_id: str, batch_rows: Iterable[int] | None
    ) -> dict[int | None, dict[str, int]]:
        """Final outcomes of the job's requests, by the batch row that settled them (None:
        settled without one: reused, cancelled or refused before a batch), from an index
        alone: of the batches *batch_rows* and of none, or (None) of every batch. A batch
        that is fetched is settled for good: a caller may keep its counts."""
        key = self._job_key(job_id)[0]
        sql = (
            "SELECT batch_row, outcome, COUNT(*) AS n FROM requests"
            f" WHERE job=? AND state='{_DONE}'"
        )
        groups = " GROUP BY batch_row, outcome"
        if batch_rows is None:
            found = self._db.query(sql + groups, (key,))
        else:
            found = self._db.query(sql + " AND batch_row IS NULL" + groups, (key,))
            rows = list(batch_rows)
            for first in range(0, len(rows), _RESULT_ROWS):
                part = rows[first : first + _RESULT_ROWS]
                marks = ", ".join("?" * len(part))
                found += self._db.query(sql + f" AND batch_row IN ({marks})" + groups, (key, *part))
        counts: dict[int | None, dict[str, int]] = {}
        for r in found:
            counts.setdefault(r["batch_row"], {})[r["outcome"]] = int(r["n"])
        return counts

    def iter_pending_ids(self, job_id: str) -> Iterator[str]:
        for row in self._db.iterate(
            f"SELECT custom_id FROM requests WHERE job=? AND state='{_PENDING}' ORDER BY seq",
            (self._job_key(job_id)[0],),
        ):
            yield row["custom_id"]

    # -- batches ---------------------------------------------------------------------------

    def add_batch(
        self,
        job_id: str,
        *,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
        custom_ids: Iterable[str],
    ) -> int:
        """Record a prepared payload (the intent to submit) and assign its requests to it."""
        with self.transaction():
            return self._add_batch(job_id, round_number, idempotency_key, payload, custom_ids)

    def _add_batch(
        self,
        job_id: str,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
        custom_ids: Iterable[str],
    ) -> int:
        row = self._insert_batch(job_id, round_number, idempotency_key, payload)
        assigned = self._db.executemany(
            "UPDATE requests SET state=?, batch_row=?, attempts=attempts+1"
            " WHERE job=? AND custom_id=? AND state=?",
            ((_ASSIGNED, row, self._job_key(job_id)[0], cid, _PENDING) for cid in custom_ids),
        )
        _check_assigned(job_id, payload["request_count"], assigned)
        return row

    def _insert_batch(
        self,
        job_id: str,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
    ) -> int:
        """Record a prepared batch (its requests are assigned by the caller)."""
        now = self._clock()
        expected = payload["request_count"]
        return self._db.insert_id(
            "INSERT INTO batches (job_id, round, idempotency_key, state, request_count,"
            " payload, created_at, updated_at, model, tokens)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING row",
            (
                job_id,
                round_number,
                idempotency_key,
                BatchRowState.PREPARED.value,
                expected,
                orjson.dumps(dict(payload)),
                now,
                now,
                payload.get("model"),
                payload.get("tokens"),
            ),
        )

    def batches(self, job_id: str, *, state: BatchRowState | None = None) -> list[BatchRow]:
        sql = "SELECT * FROM batches WHERE job_id=?"
        args: list[Any] = [job_id]
        if state is not None:
            sql += " AND state=?"
            args.append(BatchRowState(state).value)
        return [_batch(r) for r in self._db.query(sql + " ORDER BY row", args)]

    def batch(self, row: int) -> BatchRow:
        found = self._db.query_one("SELECT * FROM batches WHERE row=?", (row,))
        if found is None:
            raise JobNotFoundError(f"no batch row {row} in {self.where}")
        return _batch(found)

    def knows_batch_id(self, batch_id: str) -> bool:
        """Whether any job of this store has recorded the vendor batch *batch_id*."""
        return (
            self._db.query_one("SELECT 1 FROM batches WHERE batch_id=? LIMIT 1", (batch_id,))
            is not None
        )

    def batch_staged(self, row: int, staged: Mapping[str, Any]) -> None:
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET staged=?, updated_at=? WHERE row=?",
                (orjson.dumps(dict(staged)), self._clock(), row),
            )

    def batch_attempting(self, row: int, at: datetime) -> None:
        """A create is about to be sent: durable before it is (even across a power loss)."""
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET attempted_at=?, updated_at=? WHERE row=?",
                (at.timestamp(), self._clock(), row),
            )

    def batch_submitted(self, row: int, handle: BatchHandle, next_poll_at: float) -> None:
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET state=?, handle=?, batch_id=?, payload=NULL, candidates=NULL,"
                " next_poll_at=?, poll_failures=0, error=NULL, waits_for=NULL, admitted_at=NULL,"
                " updated_at=? WHERE row=?",
                (
                    BatchRowState.SUBMITTED.value,
                    orjson.dumps(handle.to_dict()),
                    handle.batch_id,
                    next_poll_at,
                    self._clock(),
                    row,
                ),
            )

    def batch_polled(self, row: int, status: BatchStatus, next_poll_at: float | None) -> None:
        state = BatchRowState.ENDED if status.is_terminal else BatchRowState.SUBMITTED
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET state=?, status=?, batch_state=?, next_poll_at=?,"
                " polls=polls+1, poll_failures=0, error=NULL, updated_at=? WHERE row=?",
                (
                    state.value,
                    orjson.dumps(status.to_dict()),
                    status.state.value,
                    next_poll_at,
                    self._clock(),
                    row,
                ),
            )

    def batch_step_failed(self, row: int, error: str, next_poll_at: float) -> None:
        """The batch's current step failed transiently: try it again at *next_poll_at*."""
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET poll_failures=poll_failures+1, error=?, next_poll_at=?,"
                " updated_at=? WHERE row=?",
                (error, next_poll_at, self._clock(), row),
            )

    def batch_cancel_sent(self, row: int) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET cancel_sent=1, next_poll_at=?, updated_at=? WHERE row=?",
                (self._clock(), self._clock(), row),
            )

    def batch_unresolved(self, row: int, candidates: Iterable[str], error: str) -> None:
        """A create may have made one of several vendor batches: stop for a human decision."""
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET state=?, candidates=?, error=?, updated_at=? WHERE row=?",
                (
                    BatchRowState.UNRESOLVED.value,
                    orjson.dumps(list(candidates)),
                    error,
                    self._clock(),
                    row,
                ),
            )

    def batch_resubmit(self, row: int) -> None:
        """A human said none of the candidates is this batch's: submit it afresh."""
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET state=?, attempted_at=NULL, candidates=NULL, error=NULL,"
                " next_poll_at=NULL, poll_failures=0, updated_at=? WHERE row=?",
                (BatchRowState.PREPARED.value, self._clock(), row),
            )

    def batch_usage(self, row: int, usage: Mapping[str, Mapping[str, int]]) -> None:
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET usage=?, updated_at=? WHERE row=?",
                (orjson.dumps(dict(usage)), self._clock(), row),
            )

    # -- the vendor's queue: admission, learned caps ---------------------------------------------

    def batch_wait(self, row: int, until: float, reason: str) -> None:
        """The batch's submit waits for room in the vendor's queue, until *until* at the latest
        (:meth:`wake_waiting` wakes it earlier): no attempt and no postponement is counted."""
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET next_poll_at=?, error=?, waits_for='capacity', updated_at=?"
                " WHERE row=?",
                (until, reason, self._clock(), row),
            )

    def batch_not_created(self, row: int) -> None:
        """The vendor answered the create of batch *row* with a refusal for capacity: nothing
        was created, so the next submit goes through admission again instead of looking for a
        batch that attempt may have made."""
        with self.transaction(durable=True):
            self._db.execute(
                "UPDATE batches SET attempted_at=NULL, updated_at=? WHERE row=? AND state=?",
                (self._clock(), row, BatchRowState.PREPARED.value),
            )

    def wake_waiting(self, provider: str, model: str | None = None, *, ran: bool = True) -> int:
        """A batch of *provider* (for *model*) left the vendor's queue: the batches waiting for
        room in it may try now. *ran*: it ran (it was not refused for capacity), which ends a
        run of capacity refusals for its queue (see :meth:`queue_refused`)."""
        with self.transaction():
            if ran:
                self._db.execute(
                    "UPDATE queue_caps SET refusals=0 WHERE provider=? AND model IN (?, '*')"
                    " AND refusals > 0",
                    (provider, model or "*"),
                )
            return self._db.execute(
                "UPDATE batches SET next_poll_at=NULL WHERE waits_for='capacity' AND state=?"
                " AND job_id IN (SELECT id FROM jobs WHERE provider=?)",
                (BatchRowState.PREPARED.value, provider),
            )

    def requeue_batch(self, job_id: str, row: int, reason: str) -> int:
        """A batch the vendor refused for capacity (it never ran): its requests go back to
        pending with their attempt given back, to be planned again. Returns how many."""
        with self.transaction():
            back = self._db.execute(
                "UPDATE requests SET state=?, batch_row=NULL, attempts=attempts-1"
                f" WHERE job=? AND batch_row=? AND state='{_ASSIGNED}'",
                (_PENDING, self._job_key(job_id)[0], row),
            )
            self._db.execute(
                "UPDATE batches SET state=?, error=?, updated_at=? WHERE row=?",
                (BatchRowState.FETCHED.value, reason, self._clock(), row),
            )
        return back

    def enqueued(
        self, provider: str, model: str | None, *, besides: int | None = None
    ) -> tuple[int, int]:
        """(estimated tokens, requests) in the vendor's queue now, across every job of the
        store (one account's queue), of *model* (None: of every model): batches of *provider*
        submitted and not ended, and batches admitted whose submit is under way. An admission
        counts only while the step that made it is alive (its claim has not expired, or its
        holder is the job's driver with a live lease): a process killed between admitting a
        batch and creating it holds no room. *besides*: a batch row left out (the one being
        admitted)."""
        wall = time.time()  # claims and leases are wall time, compared across hosts
        sql = (
            "SELECT COALESCE(SUM(b.tokens), 0) AS tokens, COALESCE(SUM(b.request_count), 0)"
            " AS requests FROM batches b JOIN jobs j ON j.id = b.job_id"
            " WHERE j.provider=? AND b.row <> ? AND (b.state=? OR (b.state=?"
            " AND b.admitted_at IS NOT NULL AND b.claimed_by IS NOT NULL"
            " AND (b.claim_until >= ? OR (b.claimed_by = j.owner AND j.lease_until >= ?))))"
        )
        args: list[Any] = [
            provider,
            -1 if besides is None else besides,
            BatchRowState.SUBMITTED.value,
            BatchRowState.PREPARED.value,
            wall,
            wall,
        ]
        if model is not None:
            sql += " AND b.model=?"
            args.append(model)
        found = self._db.query_one(sql, args)
        return (0, 0) if found is None else (int(found["tokens"]), int(found["requests"]))

    def admit(
        self,
        row: int,
        *,
        provider: str,
        model: str | None,
        measure: str,
        amount: int,
        cap: int,
    ) -> int | None:
        """Admit batch *row* into the vendor's queue if *amount* more fits under *cap* beside
        what is enqueued (:meth:`enqueued`, the batch itself left out), as one decision among
        every process sharing the store (a batch alone is always admitted). Returns None when
        admitted, else what is in the queue now."""
        with self._db.exclusive(_queue_lock(provider, model)):
            tokens, requests = self.enqueued(provider, model, besides=row)
            in_flight = tokens if measure == "tokens" else requests
            if in_flight and in_flight + amount > cap:
                return in_flight
            self._db.execute(
                "UPDATE batches SET admitted_at=?, waits_for=NULL, error=NULL WHERE row=?",
                (self._clock(), row),
            )
        return None

    def unadmit(self, row: int) -> None:
        """The admitted batch was not submitted after all (it waits, or its submit failed)."""
        with self.transaction():
            self._db.execute(
                "UPDATE batches SET admitted_at=NULL WHERE row=? AND state=?",
                (row, BatchRowState.PREPARED.value),
            )

    #: How long a cap learned from the vendor's refusals holds after the last refusal: through
    #: the waves of a big job (batches take an hour or more), and not past the day, so that a
    #: queue others had filled is tried again.
    LEARNED_CAP_SECONDS = 6 * 3600.0

    def queue_cap(self, provider: str, model: str, *, configured: int | None = None) -> int | None:
        """The cap the vendor's refusals taught for the queue of *provider* / *model* (``"*"``
        for a queue shared by every model), if one holds now.

        The rule, in one place. A capacity refusal teaches a cap (:meth:`queue_refused`):
        what this store had in the vendor's queue when it was refused, or, with nothing of
        ours in it, half of the refused batch (so what is planned next is smaller). The runner
        keeps to the lower of the learned cap and the configured one (``max_enqueued_*``, else
        the provider's declared default) and splits new batches under it. A learned cap
        only ever lowers the configured one, and it holds only:

        * while the configured cap is the one it was learned under (*configured*): a new
          config value replaces it at once, raised or lowered;
        * for :attr:`LEARNED_CAP_SECONDS` after the last refusal: then the configured cap is
          tried again, and a refusal teaches the cap anew (an account's limit grows with its
          tier; a queue that others filled empties).

        Amounts are the runner's estimates (for tokens, the *expected* estimate of
        :mod:`batchcore.tokens`, not its upper bound: the upper bound counts a token per byte,
        about four times what vendors count for prose, and would keep a queue a quarter full),
        so a learned cap also corrects the estimate's bias for this vendor."""
        found = self._learned(provider, model)
        if found is None or found["cap"] is None:
            return None
        if configured is not None and int(found["configured"]) != configured:
            return None
        if float(found["updated_at"]) + self.LEARNED_CAP_SECONDS <= self._clock():
            return None
        return int(found["cap"])

    def queue_refusals(self, provider: str, model: str) -> tuple[int, float | None]:
        """(capacity refusals in a row with no batch of this store ending after it ran in
        between, when the last one was) for the queue of *provider* / *model*."""
        found = self._learned(provider, model)
        if found is None or not found["refusals"]:
            return 0, None
        return int(found["refusals"]), float(found["updated_at"])

    def _learned(self, provider: str, model: str) -> Row | None:
        return self._db.query_one(
            "SELECT cap, configured, refusals, updated_at FROM queue_caps"
            " WHERE provider=? AND model=?",
            (provider, model),
        )

    def queue_refused(
        self,
        provider: str,
        model: str,
        *,
        cap: int,
        configured: int,
        reason: str,
    ) -> int:
        """Record a capacity refusal for the queue of *provider* / *model*: it teaches *cap*
        (kept if lower than a learned cap still in force, see :meth:`queue_cap`). Refusals are
        counted until a batch of ours that ran ends (:meth:`wake_waiting`); returns the count
        with this one."""
        now = self._clock()
        with self._db.exclusive(_queue_lock(provider, None if model == "*" else model)):
            found = self._learned(provider, model)
            refusals = 1
            if found is not None:
                refusals += int(found["refusals"])
                if self.queue_cap(provider, model, configured=configured) is not None:
                    cap = min(cap, int(found["cap"]))
            self._db.execute(
                "INSERT INTO queue_caps (provider, model, cap, reason, updated_at, configured,"
                " refusals) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, model) DO UPDATE"
                " SET cap=excluded.cap, reason=excluded.reason, updated_at=excluded.updated_at,"
                " configured=excluded.configured, refusals=excluded.refusals",
                (provider, model, cap, reason, now, configured, refusals),
            )
        return refusals

    def forget_refusals(self, provider: str, model: str) -> None:
        """Start counting capacity refusals for the queue afresh (a job stopped for them; its
        resume gets the whole count again)."""
        with self.transaction():
            self._db.execute(
                "UPDATE queue_caps SET refusals=0 WHERE provider=? AND model=?", (provider, model)
            )

    # -- results ---------------------------------------------------------------------------

    def save_results(self, job_id: str, row: int, results: Iterable[BatchResult]) -> int:
        """Store results of batch *row* (one transaction). A result only counts for a request
        still assigned to that batch; storing the same result twice changes nothing."""
        items = [
            (r.custom_id, r.status.value, int(r.retryable), orjson.dumps(r.to_dict()))
            for r in results
        ]
        stored = 0
        key = self._job_key(job_id)[0]
        with self.transaction():
            # One statement per chunk (not one per result): the results join their requests
            # on the primary key, and the database sees the whole chunk at once.
            for first in range(0, len(items), _RESULT_ROWS):
                chunk = items[first : first + _RESULT_ROWS]
                values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                stored += self._db.execute(
                    f"WITH v(custom_id, status, retryable, data) AS (VALUES {values})"
                    " INSERT INTO results (job_id, custom_id, batch_row, status, retryable, data)"
                    " SELECT ?, r.custom_id, r.batch_row, v.status, v.retryable, v.data"
                    " FROM v JOIN requests r ON r.job = ? AND r.custom_id = v.custom_id"
                    " WHERE r.batch_row = ? AND r.state = ?"
                    " ON CONFLICT (job_id, custom_id) DO UPDATE SET batch_row=excluded.batch_row,"
                    " status=excluded.status, retryable=excluded.retryable, data=excluded.data",
                    [
                        *(value for item in chunk for value in item),
                        job_id,
                        key,
                        row,
                        RequestState.ASSIGNED.value,
                    ],
                )
        return stored

    def missing_results(self, job_id: str, row: int) -> list[str]:
        """custom_ids assigned to batch *row* with no result from it yet."""
        return [
            r["custom_id"]
            for r in self._db.query(
                "SELECT req.custom_id FROM requests req LEFT JOIN results res"
                " ON res.job_id = ? AND res.custom_id = req.custom_id"
                " AND res.batch_row = req.batch_row"
                " WHERE req.job=? AND req.batch_row=? AND req.state=? AND res.custom_id IS NULL",
                (job_id, self._job_key(job_id)[0], row, RequestState.ASSIGNED.value),
            )
        ]

    def settle_batch(self, job_id: str, row: int, *, max_attempts: int, retry: bool) -> int:
        """After a batch's results are stored: successes and permanent failures become final;
        retryable failures go back to pending (for a follow-up batch) while attempts remain and
        *retry* holds. Returns how many requests were sent back. Successes of a job whose
        answers are real (:func:`answers_reusable`) become reusable by later jobs."""
        assigned, done = RequestState.ASSIGNED.value, RequestState.DONE.value
        reusable = answers_reusable(self.job(job_id).options)
        key = self._job_key(job_id)[0]
        with self.transaction():
            self._db.execute(
                "UPDATE requests SET state=?, outcome=(SELECT status FROM results res"
                " WHERE res.job_id=? AND res.custom_id=requests.custom_id)"
                " WHERE job=? AND batch_row=?"
                " AND state=? AND (? = 0 OR attempts >= ? OR custom_id IN"
                " (SELECT custom_id FROM results WHERE job_id=? AND batch_row=?"
                " AND (status=? OR retryable=0)))",
                (
                    done,
                    job_id,
                    key,
                    row,
                    assigned,
                    int(retry),
                    max_attempts,
                    job_id,
                    row,
                    _SUCCEEDED,
                ),
            )
            if reusable:
                # What was answered can be reused by later jobs that ask the same (opt-in).
                self._db.execute(
                    "INSERT INTO answers (fingerprint, job_id, custom_id) SELECT fingerprint,"
                    " ?, custom_id FROM requests WHERE job=? AND batch_row=? AND state=?"
                    " AND outcome=? AND fingerprint IS NOT NULL"
                    " ON CONFLICT (fingerprint) DO NOTHING",
                    (job_id, key, row, done, _SUCCEEDED),
                )
            back = self._db.execute(
                "UPDATE requests SET state=?, batch_row=NULL WHERE job=?"
                " AND batch_row=? AND state=?",
                (RequestState.PENDING.value, key, row, assigned),
            )
            self._db.execute(
                "UPDATE batches SET state=?, updated_at=? WHERE row=?",
                (BatchRowState.FETCHED.value, self._clock(), row),
            )
        return back

    def abandon_batch(self, job_id: str, row: int) -> None:
        """Forget a prepared batch that was never submitted: its requests are pending again,
        with the attempt it would have been given back."""
        with self.transaction():
            self._db.execute(
                "UPDATE requests SET state=?, batch_row=NULL, attempts=attempts-1"
                f" WHERE job=? AND batch_row=? AND state='{_ASSIGNED}'",
                (_PENDING, self._job_key(job_id)[0], row),
            )
            self._db.execute(
                "UPDATE batches SET state=?, updated_at=? WHERE row=?",
                (BatchRowState.ABANDONED.value, self._clock(), row),
            )

    def settle_pending_as(self, job_id: str, results: Iterable[BatchResult]) -> None:
        """Give never-submitted requests a final result (a cancelled job's leftovers)."""
        items = list(results)
        key = self._job_key(job_id)[0]
        with self.transaction():
            self._db.executemany(
                "INSERT INTO results (job_id, custom_id, batch_row, status, retryable, data)"
                " VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (job_id, custom_id) DO UPDATE SET"
                " status=excluded.status, retryable=excluded.retryable, data=excluded.data",
                [
                    (
                        job_id,
                        r.custom_id,
                        r.status.value,
                        int(r.retryable),
                        orjson.dumps(r.to_dict()),
                    )
                    for r in items
                ],
            )
            self._db.executemany(
                "UPDATE requests SET state=?, outcome=? WHERE job=? AND custom_id=?",
                [(RequestState.DONE.value, r.status.value, key, r.custom_id) for r in items],
            )

    def iter_results(self, job_id: str) -> Iterator[BatchResult]:
        """Every stored result, in input order (one per custom_id)."""
        for row in self._db.iterate(
            "SELECT res.data FROM requests req JOIN results res ON res.job_id = ?"
            " AND res.custom_id = req.custom_id WHERE req.job=? ORDER BY req.seq",
            (job_id, self._job_key(job_id)[0]),
        ):
            yield BatchResult.from_dict(orjson.loads(row["data"]))


class NewJob:
    """A job being recorded (see :meth:`JobStore.new_job`)."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        key: int,
        options: Mapping[str, Any],
        *,
        batched: bool = False,
    ) -> None:
        self._store = store
        self.job_id = job_id
        self._key = key
        self._options = dict(options)
        self._batched = batched
        self.count = 0
        #: Requests answered by an earlier job's result instead of a new batch.
        self.reused = 0
        self._chunk: list[tuple[Any, ...]] = []
        self._chunk_first = 1  # the request number of the chunk's first row
        #: The start the job's request bodies share, kept once on the job (None: not known
        #: yet: decided from the first rows written; see batchcore.jobs.request_rows).
        self._prefix: bytes | None = None
        self._next_seq = self._seqs_left = 0
        self._real_answers: dict[str, bool] = {}  # job id -> its answers may be reused
        # Batched: each request passed on, in order (its position), as its batch will name it
        # (the hash of its custom_id) and where it is stored (its seq); see add_batch.
        self._hashes = array("q")
        self._seqs = array("q")
        self._claimed = bytearray()
        self._first_free = 0
        self._assigned = 0
        self._in_order = True

    def record(
        self,
        requests: Iterable[BatchRequest],
        *,
        fingerprint: Callable[[BatchRequest], bytes] | None = None,
        reuse: bool = False,
        on_reuse: Callable[[BatchRequest, BatchResult], None] | None = None,
    ) -> Iterator[BatchRequest]:
        """Store each request, then pass it on. With *fingerprint*, each request's fingerprint
        is kept (its answer may be reused later); with *reuse*, a request whose fingerprint
        was answered successfully before in this store is recorded as done with a copy of that
        answer (see :attr:`reused`; *on_reuse* sees each request and its copy) and not passed on.

        A job whose answers are not real (a sandbox job: :func:`answers_reusable`) keeps no
        fingerprint and reuses nothing: its invented answers never serve another job, and real
        answers never hide among its invented ones."""
        key = self._key
        chunk = self._chunk
        batched = self._batched
        state, attempts = (_ASSIGNED, 1) if batched else (_PENDING, 0)
        hashes, seqs = self._hashes, self._seqs
        prefix = self._prefix
        if not answers_reusable(self._options):
            fingerprint, reuse = None, False
        for request in requests:
            self.count += 1
            mark = None if fingerprint is None else fingerprint(request)
            if reuse and mark is not None and self._reuse(request, mark, on_reuse):
                continue
            if not chunk:
                self._chunk_first = self.count
            seq = self._seq()
            cid = request.custom_id
            body = request.openai_body_json()
            # Blobs as bytearray: sqlite3 binds bytes (and None) only after looking for an
            # adapter, which costs more than the copy (benchmarks/bench_submit.py).
            row: tuple[Any, ...] = (
                seq,
                key,
                cid,
                state,
                attempts,
                None if mark is None else bytearray(mark),
                bytearray(strip_prefix(body, prefix) if prefix else body),
            )
            extra = encode_extra(request)
            if extra is not None:
                row += (extra,)  # rare: the chunk is then written with the column
            chunk.append(row)
            if batched:
                hashes.append(hash(cid))
                seqs.append(seq)
            if len(chunk) >= _INSERT_CHUNK:
                self.flush()
                prefix = self._prefix
            yield request

    def _seq(self) -> int:
        """The next request's seq: consecutive within blocks the store hands out."""
        if not self._seqs_left:
            self._next_seq = next_number(self._store.database) * SEQ_BLOCK
            self._seqs_left = SEQ_BLOCK
        seq = self._next_seq
        self._next_seq += 1
        self._seqs_left -= 1
        return seq

    def _reuse(
        self,
        request: BatchRequest,
        fingerprint: bytes,
        on_reuse: Callable[[BatchRequest, BatchResult], None] | None,
    ) -> bool:
        db = self._store.database
        found = db.query_one(
            "SELECT a.job_id, res.data FROM answers a JOIN results res ON res.job_id = a.job_id"
            " AND res.custom_id = a.custom_id WHERE a.fingerprint=? AND res.status=?",
            (fingerprint, _SUCCEEDED),
        )
        if found is None or not self._real(found["job_id"]):
            return False
        data = orjson.loads(found["data"])
        data["reused_from"] = {"job_id": found["job_id"], "custom_id": data["custom_id"]}
        data["custom_id"] = request.custom_id
        self.flush()
        db.execute(
            "INSERT INTO requests (seq, job, custom_id, state, attempts, outcome, fingerprint,"
            " body, extra) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                self._seq(),
                self._key,
                request.custom_id,
                _DONE,
                _SUCCEEDED,
                fingerprint,
                request.openai_body_json(),
                encode_extra(request),
            ),
        )
        db.execute(
            "INSERT INTO results (job_id, custom_id, batch_row, status, retryable, data)"
            " VALUES (?, ?, 0, ?, 0, ?)",
            (self.job_id, request.custom_id, _SUCCEEDED, orjson.dumps(data)),
        )
        self.reused += 1
        if on_reuse is not None:
            on_reuse(request, BatchResult.from_dict(data))
        return True

    def _real(self, job_id: str) -> bool:
        """Whether answers of job *job_id* may be reused (a store written before sandbox
        answers were kept out of ``answers`` may still hold some)."""
        known = self._real_answers.get(job_id)
        if known is None:
            known = answers_reusable(self._store.job(job_id).options)
            self._real_answers[job_id] = known
        return known

    def add_options(self, options: Mapping[str, Any]) -> None:
        """Record more options with the job (in the same transaction)."""
        self._options.update(options)
        self._store.database.execute(
            "UPDATE jobs SET options=? WHERE id=?", (orjson.dumps(self._options), self.job_id)
        )

    def flush(self) -> None:
        chunk = self._chunk
        if not chunk:
            return
        if self._prefix is None and len(chunk) > 1:
            # The first rows decide what the job's bodies share; these are kept without it too.
            prefix = common_prefix([row[6] for row in chunk])
            if prefix:
                self._store.database.execute(
                    "UPDATE jobs SET body_prefix=? WHERE key=?", (prefix, self._key)
                )
                chunk[:] = [
                    (*row[:6], bytearray(strip_prefix(row[6], prefix)), *row[7:]) for row in chunk
                ]
            self._prefix = prefix
        self._store._insert_requests(chunk, self._chunk_first)
        chunk.clear()

    def add_batch(
        self,
        *,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
        custom_ids: Iterable[str],
    ) -> int:
        """Record a prepared batch and assign the requests it names (*custom_ids*) to it."""
        self.flush()
        store = self._store
        if not self._batched:
            return store._add_batch(self.job_id, round_number, idempotency_key, payload, custom_ids)
        row = store._insert_batch(self.job_id, round_number, idempotency_key, payload)
        ids = list(custom_ids)
        runs = self._runs(ids) if self._in_order else None
        db = store.database
        wait = f"state='{_ASSIGNED}' AND batch_row IS NULL"
        if runs is None:
            # Not in input order (a provider that sorts its payloads): one by one.
            self._in_order = False
            assigned = db.executemany(
                f"UPDATE requests SET batch_row=? WHERE job=? AND custom_id=? AND {wait}",
                ((row, self._key, cid) for cid in ids),
            )
        else:
            assigned = 0
            for first, last, count in runs:
                done = db.execute(
                    f"UPDATE requests SET batch_row=? WHERE job=? AND seq BETWEEN ? AND ?"
                    f" AND {wait}",
                    (row, self._key, first, last),
                )
                _check_assigned(self.job_id, count, done)
                assigned += done
        _check_assigned(self.job_id, payload["request_count"], assigned)
        self._assigned += assigned
        return row

    def _runs(self, ids: list[str]) -> list[tuple[int, int, int]] | None:
        """The seq ranges to assign to a batch of *ids*: (first seq, last seq, requests), or
        None when its ids do not come in input order.

        A payload holds requests in the order they were passed on (a subsequence of them; all
        the next ones while the job's requests go into one batch at a time), so a batch is a
        few ranges of seqs, each assigned by one statement instead of one per request: a
        range holds this batch's requests and others' already assigned, never a request
        still waiting for a later batch. Matching is by hash of the custom_id; the count of
        every range, and of the batch, is checked against what the store changed."""
        hashes, seqs, claimed = self._hashes, self._seqs, self._claimed
        total = len(hashes)
        claimed.extend(bytes(total - len(claimed)))
        start, count = self._first_free, len(ids)
        end = start + count
        wanted = array("q", map(hash, ids))
        if end <= total and claimed.find(1, start, end) < 0 and hashes[start:end] == wanted:
            claimed[start:end] = b"\x01" * count
            runs = [(seqs[start], seqs[end - 1], count)]
        else:
            runs = []
            taken: list[int] = []
            at = start
            for mark in wanted:
                gap = False
                while at < total and (claimed[at] or hashes[at] != mark):
                    gap = gap or not claimed[at]
                    at += 1
                if at == total:
                    return None
                taken.append(at)
                if runs and not gap:
                    first, _, n = runs[-1]
                    runs[-1] = (first, seqs[at], n + 1)
                else:
                    runs.append((seqs[at], seqs[at], 1))
                at += 1
            for at in taken:
                claimed[at] = 1
        free = claimed.find(0, self._first_free)
        self._first_free = total if free < 0 else free
        return runs

    def finish(self) -> None:
        """The job is recorded: every request is stored, in a batch when *batched*."""
        self.flush()
        if self.count == 0:
            raise InvalidRequestError("no requests: a job needs at least one request")
        if self._batched and self._assigned != len(self._hashes):
            raise JoinError(
                f"job {self.job_id}: {len(self._hashes)} requests were recorded for the first "
                f"round's batches, which hold {self._assigned} of them; nothing was submitted. "
                "This is a bug: please report it"
            )

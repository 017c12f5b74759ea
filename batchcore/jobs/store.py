"""The durable job store: one SQLite file (WAL) that survives crashes and concurrent processes.

Every step of a job is written here *before* and *after* its network call (intent, then
outcome), so a process killed at any instant resumes without losing a paid result or paying
twice. Writes happen in ``BEGIN IMMEDIATE`` transactions; readers never block writers (WAL).
Secrets are never written: configuration passes through :func:`public_config` first.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson
import platformdirs

from batchcore.config import is_secret_key
from batchcore.errors import BatchcoreError, InvalidRequestError
from batchcore.models import BatchHandle, BatchRequest, BatchResult, BatchStatus

__all__ = [
    "HOME_ENV",
    "BatchRow",
    "JobBusyError",
    "JobNotFoundError",
    "JobRow",
    "JobStore",
    "default_store_path",
    "public_config",
]

HOME_ENV = "BATCHCORE_HOME"
STORE_FILE = "jobs.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    config BLOB NOT NULL,
    options BLOB NOT NULL,
    state TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    request_count INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    owner TEXT,
    lease_until REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS requests (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    custom_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    batch_row INTEGER,
    PRIMARY KEY (job_id, custom_id)
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (job_id, state, seq);
-- Counting a job by state and final outcome reads this index alone (no join, no table rows).
CREATE INDEX IF NOT EXISTS requests_by_outcome ON requests (job_id, state, outcome);
CREATE INDEX IF NOT EXISTS requests_by_batch ON requests (batch_row);
CREATE TABLE IF NOT EXISTS batches (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    request_count INTEGER NOT NULL,
    payload BLOB,
    handle BLOB,
    status BLOB,
    batch_state TEXT,
    cancel_sent INTEGER NOT NULL DEFAULT 0,
    next_poll_at REAL,
    polls INTEGER NOT NULL DEFAULT 0,
    poll_failures INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_job ON batches (job_id, state);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    custom_id TEXT NOT NULL,
    batch_row INTEGER NOT NULL,
    status TEXT NOT NULL,
    retryable INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, custom_id)
);
CREATE INDEX IF NOT EXISTS results_by_batch ON results (batch_row);
"""


class JobNotFoundError(BatchcoreError, LookupError):
    """No job with that id in the store."""


class JobBusyError(BatchcoreError):
    """Another live process is driving this job."""


def default_store_path() -> Path:
    """``$BATCHCORE_HOME/jobs.sqlite3``, else the per-user state directory."""
    home = os.environ.get(HOME_ENV)
    base = Path(home) if home else Path(platformdirs.user_state_dir("batchcore", appauthor=False))
    return base / STORE_FILE


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """*config* without anything that may be a secret (api keys, tokens, passwords) and without
    values that are not plain JSON (callables, backends): what may be written to disk."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if is_secret_key(key):
            continue
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    return out


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot tell: trust the lease time
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
    state: str
    cancel_requested: bool
    request_count: int
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None


@attrs.frozen(kw_only=True)
class BatchRow:
    row: int
    job_id: str
    round: int
    idempotency_key: str
    state: str
    request_count: int
    payload: Mapping[str, Any] | None
    handle: BatchHandle | None
    status: BatchStatus | None
    cancel_sent: bool
    next_poll_at: float | None
    polls: int
    poll_failures: int
    error: str | None


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(
        id=row["id"],
        provider=row["provider"],
        config=orjson.loads(row["config"]),
        options=orjson.loads(row["options"]),
        state=row["state"],
        cancel_requested=bool(row["cancel_requested"]),
        request_count=row["request_count"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


def _batch(row: sqlite3.Row) -> BatchRow:
    return BatchRow(
        row=row["row"],
        job_id=row["job_id"],
        round=row["round"],
        idempotency_key=row["idempotency_key"],
        state=row["state"],
        request_count=row["request_count"],
        payload=orjson.loads(row["payload"]) if row["payload"] else None,
        handle=BatchHandle.from_dict(orjson.loads(row["handle"])) if row["handle"] else None,
        status=BatchStatus.from_dict(orjson.loads(row["status"])) if row["status"] else None,
        cancel_sent=bool(row["cancel_sent"]),
        next_poll_at=row["next_poll_at"],
        polls=row["polls"],
        poll_failures=row["poll_failures"],
        error=row["error"],
    )


class JobStore:
    """Jobs, their requests, batches and results in one SQLite file.

    ``path`` defaults to :func:`default_store_path`. One instance per thread; any number of
    processes may open the same file.
    """

    def __init__(self, path: str | Path | None = None, *, clock: Any = time.time) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=60000")
        self._init_schema()

    def _init_schema(self) -> None:
        # executescript commits on its own; run it outside our transaction helper, guarded by
        # IF NOT EXISTS so concurrent first openings are harmless.
        self._db.executescript(_SCHEMA)
        with self.transaction() as db:
            found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if found is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(found["value"]) > SCHEMA_VERSION:
                raise BatchcoreError(
                    f"the job store {self.path} was written by a newer batchcore "
                    f"(schema {found['value']}); upgrade batchcore to read it"
                )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front, so two writers never deadlock mid-way."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
        self, job_id: str, *, provider: str, config: Mapping[str, Any], options: Mapping[str, Any]
    ) -> Iterator[NewJob]:
        """Record a job in one transaction: requests stream in through :meth:`NewJob.record`
        (so a caller can prepare payloads from the same pass) and batches are added with
        :meth:`NewJob.add_batch`. Any exception rolls everything back."""
        now = self._clock()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, provider, config, options, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'active', ?, ?)",
                (
                    job_id,
                    provider,
                    orjson.dumps(public_config(config)),
                    orjson.dumps(dict(options)),
                    now,
                    now,
                ),
            )
            job = NewJob(self, db, job_id)
            yield job
            job.flush()
            if job.count == 0:
                raise InvalidRequestError("no requests: a job needs at least one request")
            db.execute("UPDATE jobs SET request_count=? WHERE id=?", (job.count, job_id))

    @staticmethod
    def _insert_requests(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        try:
            db.executemany(
                "INSERT INTO requests (job_id, custom_id, seq, data, state)"
                " VALUES (?, ?, ?, ?, 'pending')",
                rows,
            )
        except sqlite3.IntegrityError:
            seen: set[str] = set()
            for row in rows:
                if (
                    row[1] in seen
                    or db.execute(
                        "SELECT 1 FROM requests WHERE job_id=? AND custom_id=?", (row[0], row[1])
                    ).fetchone()
                ):
                    raise InvalidRequestError(
                        f"custom_id {row[1]!r} appears more than once (again as request "
                        f"#{row[2]}); custom_ids must be unique within a job",
                        custom_id=row[1],
                        field="custom_id",
                    ) from None
                seen.add(row[1])
            raise

    def job(self, job_id: str) -> JobRow:
        row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r} in {self.path}")
        return _job(row)

    def jobs(self) -> list[JobRow]:
        return [_job(r) for r in self._db.execute("SELECT * FROM jobs ORDER BY created_at, id")]

    def set_job_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        now = self._clock()
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state=?, error=?, updated_at=?,"
                " finished_at=CASE WHEN ? IN ('finished', 'cancelled') THEN ? ELSE NULL END"
                " WHERE id=?",
                (state, error, now, state, now, job_id),
            )

    def request_cancel(self, job_id: str) -> None:
        self.job(job_id)
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?",
                (self._clock(), job_id),
            )

    def acquire(self, job_id: str, *, lease_seconds: float = 120.0) -> str:
        """Claim the right to drive *job_id*. Raises :class:`JobBusyError` when a live process
        holds it; a holder that died (same host, pid gone) or whose lease ran out is replaced."""
        me = _owner_token()
        now = time.time()  # wall time: leases are compared across processes
        with self.transaction() as db:
            row = db.execute("SELECT owner, lease_until FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in {self.path}")
            owner, until = row["owner"], row["lease_until"]
            if owner and owner != me and until and until > now and _owner_alive(owner):
                raise JobBusyError(
                    f"job {job_id} is being run by another process ({owner}); wait for it, or "
                    f"stop it and run `batchcore resume {job_id}`"
                )
            db.execute(
                "UPDATE jobs SET owner=?, lease_until=? WHERE id=?",
                (me, now + lease_seconds, job_id),
            )
        return me

    def renew(self, job_id: str, owner: str, *, lease_seconds: float = 120.0) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND owner=?",
                (time.time() + lease_seconds, job_id, owner),
            )

    def release(self, job_id: str, owner: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET owner=NULL, lease_until=NULL WHERE id=? AND owner=?",
                (job_id, owner),
            )

    # -- requests --------------------------------------------------------------------------

    def iter_requests(
        self, job_id: str, *, state: str | None = None, batch_row: int | None = None
    ) -> Iterator[BatchRequest]:
        """Requests in input order, streamed from the database."""
        sql = "SELECT data FROM requests WHERE job_id=?"
        args: list[Any] = [job_id]
        if state is not None:
            sql += " AND state=?"
            args.append(state)
        if batch_row is not None:
            sql += " AND batch_row=?"
            args.append(batch_row)
        cursor = self._db.execute(sql + " ORDER BY seq", args)
        while True:
            rows = cursor.fetchmany(1000)
            if not rows:
                return
            for row in rows:
                yield BatchRequest.from_dict(orjson.loads(row["data"]))

    def count_requests(self, job_id: str) -> dict[str, int]:
        return {
            r["state"]: r["n"]
            for r in self._db.execute(
                "SELECT state, COUNT(*) AS n FROM requests WHERE job_id=? GROUP BY state",
                (job_id,),
            )
        }

    def count_results(self, job_id: str) -> dict[str, int]:
        """Final results by status (requests whose outcome is settled)."""
        return {
            r["outcome"]: r["n"]
            for r in self._db.execute(
                "SELECT outcome, COUNT(*) AS n FROM requests WHERE job_id=? AND state='done'"
                " GROUP BY outcome",
                (job_id,),
            )
        }

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
        with self.transaction() as db:
            return self._add_batch(db, job_id, round_number, idempotency_key, payload, custom_ids)

    def _add_batch(
        self,
        db: sqlite3.Connection,
        job_id: str,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
        custom_ids: Iterable[str],
    ) -> int:
        now = self._clock()
        cursor = db.execute(
            "INSERT INTO batches (job_id, round, idempotency_key, state, request_count,"
            " payload, created_at, updated_at) VALUES (?, ?, ?, 'prepared', ?, ?, ?, ?)",
            (
                job_id,
                round_number,
                idempotency_key,
                payload["request_count"],
                orjson.dumps(dict(payload)),
                now,
                now,
            ),
        )
        row = cursor.lastrowid
        assert row is not None
        db.executemany(
            "UPDATE requests SET state='assigned', batch_row=?, attempts=attempts+1"
            " WHERE job_id=? AND custom_id=? AND state='pending'",
            ((row, job_id, cid) for cid in custom_ids),
        )
        return row

    def batches(self, job_id: str, *, state: str | None = None) -> list[BatchRow]:
        sql = "SELECT * FROM batches WHERE job_id=?"
        args: list[Any] = [job_id]
        if state is not None:
            sql += " AND state=?"
            args.append(state)
        return [_batch(r) for r in self._db.execute(sql + " ORDER BY row", args)]

    def batch_submitted(self, row: int, handle: BatchHandle, next_poll_at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET state='submitted', handle=?, payload=NULL, next_poll_at=?,"
                " updated_at=? WHERE row=?",
                (orjson.dumps(handle.to_dict()), next_poll_at, self._clock(), row),
            )

    def batch_polled(self, row: int, status: BatchStatus, next_poll_at: float | None) -> None:
        state = "ended" if status.is_terminal else "submitted"
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET state=?, status=?, batch_state=?, next_poll_at=?,"
                " polls=polls+1, poll_failures=0, error=NULL, updated_at=? WHERE row=?",
                (
                    state,
                    orjson.dumps(status.to_dict()),
                    status.state.value,
                    next_poll_at,
                    self._clock(),
                    row,
                ),
            )

    def batch_poll_failed(self, row: int, error: str, next_poll_at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET poll_failures=poll_failures+1, error=?, next_poll_at=?,"
                " updated_at=? WHERE row=?",
                (error, next_poll_at, self._clock(), row),
            )

    def batch_cancel_sent(self, row: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET cancel_sent=1, next_poll_at=?, updated_at=? WHERE row=?",
                (self._clock(), self._clock(), row),
            )

    # -- results ---------------------------------------------------------------------------

    def save_results(self, job_id: str, row: int, results: Iterable[BatchResult]) -> int:
        """Store results of batch *row* (one transaction). A result only counts for a request
        still assigned to that batch; storing the same result twice changes nothing."""
        items = [
            (
                job_id,
                r.custom_id,
                row,
                r.status.value,
                int(r.retryable),
                orjson.dumps(r.to_dict()),
                job_id,
                r.custom_id,
                row,
            )
            for r in results
        ]
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO results (job_id, custom_id, batch_row, status, retryable, data)"
                " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM requests WHERE job_id=?"
                " AND custom_id=? AND batch_row=? AND state='assigned')"
                " ON CONFLICT (job_id, custom_id) DO UPDATE SET batch_row=excluded.batch_row,"
                " status=excluded.status, retryable=excluded.retryable, data=excluded.data",
                items,
            )
            return db.total_changes - before

    def missing_results(self, job_id: str, row: int) -> list[str]:
        """custom_ids assigned to batch *row* with no result from it yet."""
        return [
            r["custom_id"]
            for r in self._db.execute(
                "SELECT req.custom_id FROM requests req LEFT JOIN results res"
                " ON res.job_id = req.job_id AND res.custom_id = req.custom_id"
                " AND res.batch_row = req.batch_row"
                " WHERE req.job_id=? AND req.batch_row=? AND res.custom_id IS NULL",
                (job_id, row),
            )
        ]

    def settle_batch(self, job_id: str, row: int, *, max_attempts: int, retry: bool) -> int:
        """After a batch's results are stored: successes and permanent failures become final;
        retryable failures go back to pending (for a follow-up batch) while attempts remain and
        *retry* holds. Returns how many requests were sent back."""
        with self.transaction() as db:
            db.execute(
                "UPDATE requests SET state='done', outcome=(SELECT status FROM results res"
                " WHERE res.job_id=requests.job_id AND res.custom_id=requests.custom_id)"
                " WHERE job_id=? AND batch_row=?"
                " AND state='assigned' AND (? = 0 OR attempts >= ? OR custom_id IN"
                " (SELECT custom_id FROM results WHERE job_id=? AND batch_row=?"
                " AND (status='succeeded' OR retryable=0)))",
                (job_id, row, int(retry), max_attempts, job_id, row),
            )
            back = db.execute(
                "UPDATE requests SET state='pending', batch_row=NULL WHERE job_id=?"
                " AND batch_row=? AND state='assigned'",
                (job_id, row),
            ).rowcount
            db.execute(
                "UPDATE batches SET state='fetched', updated_at=? WHERE row=?", (self._clock(), row)
            )
        return back

    def abandon_batch(self, job_id: str, row: int) -> None:
        """Forget a prepared batch that was never submitted: its requests are pending again,
        with the attempt it would have been given back."""
        with self.transaction() as db:
            db.execute(
                "UPDATE requests SET state='pending', batch_row=NULL, attempts=attempts-1"
                " WHERE job_id=? AND batch_row=? AND state='assigned'",
                (job_id, row),
            )
            db.execute(
                "UPDATE batches SET state='abandoned', updated_at=? WHERE row=?",
                (self._clock(), row),
            )

    def settle_pending_as(self, job_id: str, results: Iterable[BatchResult]) -> None:
        """Give never-submitted requests a final result (a cancelled job's leftovers)."""
        items = list(results)
        with self.transaction() as db:
            db.executemany(
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
            db.executemany(
                "UPDATE requests SET state='done', outcome=? WHERE job_id=? AND custom_id=?",
                [(r.status.value, job_id, r.custom_id) for r in items],
            )

    def iter_results(self, job_id: str) -> Iterator[BatchResult]:
        """Every stored result, in input order (one per custom_id)."""
        cursor = self._db.execute(
            "SELECT res.data FROM requests req JOIN results res ON res.job_id = req.job_id"
            " AND res.custom_id = req.custom_id WHERE req.job_id=? ORDER BY req.seq",
            (job_id,),
        )
        while True:
            rows = cursor.fetchmany(1000)
            if not rows:
                return
            for row in rows:
                yield BatchResult.from_dict(orjson.loads(row["data"]))

    def iter_pending_ids(self, job_id: str) -> Iterator[str]:
        for row in self._db.execute(
            "SELECT custom_id FROM requests WHERE job_id=? AND state='pending' ORDER BY seq",
            (job_id,),
        ):
            yield row["custom_id"]


class NewJob:
    """A job being recorded (see :meth:`JobStore.new_job`)."""

    def __init__(self, store: JobStore, db: sqlite3.Connection, job_id: str) -> None:
        self._store = store
        self._db = db
        self.job_id = job_id
        self.count = 0
        self._chunk: list[tuple[Any, ...]] = []

    def record(self, requests: Iterable[BatchRequest]) -> Iterator[BatchRequest]:
        """Store each request, then pass it on."""
        job_id = self.job_id
        chunk = self._chunk
        for request in requests:
            self.count += 1
            chunk.append((job_id, request.custom_id, self.count, orjson.dumps(request.to_dict())))
            if len(chunk) >= 5000:
                self.flush()
            yield request

    def flush(self) -> None:
        if self._chunk:
            self._store._insert_requests(self._db, self._chunk)
            self._chunk.clear()

    def add_batch(
        self,
        *,
        round_number: int,
        idempotency_key: str,
        payload: Mapping[str, Any],
        custom_ids: Iterable[str],
    ) -> int:
        self.flush()
        return self._store._add_batch(
            self._db, self.job_id, round_number, idempotency_key, payload, custom_ids
        )

"""The job store's schema: one ordered list of migrations, for every backend.

A store records the version it is at (``meta.schema``). Opening a store applies the migrations
it lacks, in order, inside one transaction that also serialises concurrent first opens; a store
from a newer batchcore is refused (never downgraded). A migration is a list of steps: SQL in the
dialect the backends share (``{id}``, ``{blob}``, ``{real}``, ``{bigint}`` stand for the
column types each backend spells its own way), or a function for data that SQL alone cannot
move portably.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import attrs
import orjson

from batchcore.errors import StoreError
from batchcore.jobs.database import Database

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

Step = Union[str, Callable[[Database], None]]  # noqa: UP007 - runs on 3.10


@attrs.frozen
class Migration:
    version: int
    purpose: str
    steps: Sequence[Step]


def _backfill_batch_ids(db: Database) -> None:
    rows = db.query("SELECT row, handle FROM batches WHERE handle IS NOT NULL")
    db.executemany(
        "UPDATE batches SET batch_id=? WHERE row=?",
        [(orjson.loads(r["handle"])["batch_id"], r["row"]) for r in rows],
    )


#: Request states as the migrations spell them (constants of their version, never user input).
_PENDING, _ASSIGNED, _DONE = "pending", "assigned", "done"
#: Request seqs are handed out in blocks of this many: a job's requests take consecutive seqs
#: (their input order) even while other jobs are recorded at once on a server store.
SEQ_BLOCK = 4096


def next_number(db: Database) -> int:
    """The next number of the store's sequence (never handed out twice)."""
    number = db.insert_id("INSERT INTO numbers DEFAULT VALUES RETURNING n", ())
    db.execute("DELETE FROM numbers WHERE n=?", (number,))  # the sequence remembers it
    return number


def _key_jobs(db: Database) -> None:
    for row in db.query("SELECT id FROM jobs ORDER BY created_at, id"):
        db.execute("UPDATE jobs SET key=? WHERE id=?", (next_number(db), row["id"]))


def _v7_body(data: bytes) -> tuple[bytes, bytes | None]:
    """A request as schema 6 kept it (the unified request's JSON) as schema 7 keeps it: the
    OpenAI body bytes, and the endpoint and provider_params only when not default."""
    request = orjson.loads(data)
    body: dict[str, object] = {"model": request["model"]}
    if request.get("messages"):
        body["messages"] = request["messages"]
    body.update(request.get("params") or {})
    extra: dict[str, object] = {}
    if request.get("endpoint", "/v1/chat/completions") != "/v1/chat/completions":
        extra["endpoint"] = request["endpoint"]
    if request.get("provider_params"):
        extra["provider_params"] = request["provider_params"]
    return orjson.dumps(body), orjson.dumps(extra) if extra else None


def _move_requests(db: Database) -> None:
    if db.query_one("SELECT 1 FROM requests LIMIT 1") is None:
        return  # nothing to move (a new store: its old table is not even committed yet)
    # Rows are streamed (on a server store by a reader of their own, which sees the table as
    # committed); only the old table is read: the jobs table is being altered, and a reader
    # of it would wait for this very transaction.
    keys = {r["id"]: int(r["key"]) for r in db.query("SELECT id, key FROM jobs")}
    insert = (
        "INSERT INTO requests_v7 (seq, job, custom_id, state, attempts, batch_row, outcome,"
        " fingerprint, body, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows: list[tuple[object, ...]] = []
    job, seq, left = None, 0, 0
    for old in db.iterate(
        "SELECT job_id, custom_id, data, state, attempts, batch_row, outcome, fingerprint"
        " FROM requests ORDER BY job_id, seq"
    ):
        if old["job_id"] != job or not left:
            job, seq, left = old["job_id"], next_number(db) * SEQ_BLOCK, SEQ_BLOCK
        body, extra = _v7_body(old["data"])
        rows.append(
            (
                seq,
                keys[old["job_id"]],
                old["custom_id"],
                old["state"],
                old["attempts"],
                old["batch_row"],
                old["outcome"],
                old["fingerprint"],
                body,
                extra,
            )
        )
        seq, left = seq + 1, left - 1
        if len(rows) >= 5000:
            db.executemany(insert, rows)
            rows.clear()
    if rows:
        db.executemany(insert, rows)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the first release's layout",
        (
            """CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                provider TEXT NOT NULL,
                config {blob} NOT NULL,
                options {blob} NOT NULL,
                state TEXT NOT NULL,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                request_count INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                owner TEXT,
                lease_until {real},
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL,
                finished_at {real}
            )""",
            """CREATE TABLE IF NOT EXISTS requests (
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                custom_id TEXT NOT NULL,
                seq {bigint} NOT NULL,
                data {blob} NOT NULL,
                state TEXT NOT NULL,
                outcome TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                batch_row {bigint},
                PRIMARY KEY (job_id, custom_id)
            )""",
            "CREATE INDEX IF NOT EXISTS requests_by_state ON requests (job_id, state, seq)",
            # Counting a job by state and final outcome reads this index alone.
            "CREATE INDEX IF NOT EXISTS requests_by_outcome ON requests (job_id, state, outcome)",
            "CREATE INDEX IF NOT EXISTS requests_by_batch ON requests (batch_row)",
            """CREATE TABLE IF NOT EXISTS batches (
                row {id},
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                round INTEGER NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE,
                state TEXT NOT NULL,
                request_count INTEGER NOT NULL,
                payload {blob},
                handle {blob},
                status {blob},
                batch_state TEXT,
                cancel_sent INTEGER NOT NULL DEFAULT 0,
                next_poll_at {real},
                polls INTEGER NOT NULL DEFAULT 0,
                poll_failures INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                created_at {real} NOT NULL,
                updated_at {real} NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS batches_by_job ON batches (job_id, state)",
            """CREATE TABLE IF NOT EXISTS results (
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                custom_id TEXT NOT NULL,
                batch_row {bigint} NOT NULL,
                status TEXT NOT NULL,
                retryable INTEGER NOT NULL,
                data {blob} NOT NULL,
                PRIMARY KEY (job_id, custom_id)
            )""",
            "CREATE INDEX IF NOT EXISTS results_by_batch ON results (batch_row)",
        ),
    ),
    Migration(
        2,
        "submit journal (staged upload, create attempts, unresolved candidates), vendor batch "
        "ids, and a job event log",
        (
            "ALTER TABLE batches ADD COLUMN batch_id TEXT",
            "ALTER TABLE batches ADD COLUMN staged {blob}",
            "ALTER TABLE batches ADD COLUMN attempted_at {real}",
            "ALTER TABLE batches ADD COLUMN candidates {blob}",
            "CREATE INDEX IF NOT EXISTS batches_by_batch_id ON batches (batch_id)",
            _backfill_batch_ids,
            """CREATE TABLE IF NOT EXISTS events (
                row {id},
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                at {real} NOT NULL,
                kind TEXT NOT NULL,
                batch_id TEXT,
                actor TEXT,
                detail TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, row)",
        ),
    ),
    Migration(
        3,
        "claims, so many workers share the store: one step of one batch per claim, under a "
        "lease; jobs only their own driver may run (sandbox jobs)",
        (
            "ALTER TABLE batches ADD COLUMN claimed_by TEXT",
            "ALTER TABLE batches ADD COLUMN claimed_at {real}",
            "ALTER TABLE batches ADD COLUMN claim_until {real}",
            "ALTER TABLE jobs ADD COLUMN step_owner TEXT",
            "ALTER TABLE jobs ADD COLUMN step_until {real}",
            "ALTER TABLE jobs ADD COLUMN driver_only INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX IF NOT EXISTS batches_due ON batches (state, next_poll_at)",
            "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)",
        ),
    ),
    Migration(
        4,
        "what each batch holds and used (model, estimated enqueued tokens, usage by answering "
        "model), why a job was cancelled, and answers reusable across jobs",
        (
            "ALTER TABLE batches ADD COLUMN model TEXT",
            "ALTER TABLE batches ADD COLUMN tokens {bigint}",
            "ALTER TABLE batches ADD COLUMN usage {blob}",
            "ALTER TABLE batches ADD COLUMN waits_for TEXT",
            "ALTER TABLE batches ADD COLUMN admitted_at {real}",
            "ALTER TABLE jobs ADD COLUMN cancel_reason TEXT",
            "ALTER TABLE jobs ADD COLUMN deadline {real}",
            "ALTER TABLE requests ADD COLUMN fingerprint {blob}",
            """CREATE TABLE IF NOT EXISTS answers (
                fingerprint {blob} PRIMARY KEY,
                job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
                custom_id TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS queue_caps (
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                cap {bigint} NOT NULL,
                reason TEXT,
                updated_at {real} NOT NULL,
                PRIMARY KEY (provider, model)
            )""",
        ),
    ),
    Migration(
        5,
        "learned queue caps that recover: the configured cap each was learned under (a new "
        "config value replaces it) and the capacity refusals in a row since a batch ended",
        (
            # 0 matches no configured cap: a cap learned before this version is not trusted.
            "ALTER TABLE queue_caps ADD COLUMN configured {bigint} NOT NULL DEFAULT 0",
            "ALTER TABLE queue_caps ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        6,
        "since when the job's driver holds it (`batchcore jobs` shows who holds what since when)",
        ("ALTER TABLE jobs ADD COLUMN owner_since {real}",),
    ),
    Migration(
        7,
        "requests kept compact: keyed by a number (the job's key and an input-ordered seq, not "
        "the job id repeated in every row and index entry), each holding its OpenAI body bytes "
        "once (without the start its job's requests share, kept once on the job), and indexed "
        "only where a query needs it (partial indexes on pending, assigned and done requests)",
        (
            # A sequence both backends spell the same way: job keys and blocks of request seqs.
            "CREATE TABLE IF NOT EXISTS numbers (n {id})",
            "ALTER TABLE jobs ADD COLUMN key {bigint}",
            "ALTER TABLE jobs ADD COLUMN body_prefix {blob}",
            _key_jobs,
            "CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_key ON jobs (key)",
            """CREATE TABLE requests_v7 (
                seq {bigint} PRIMARY KEY,
                job {bigint} NOT NULL REFERENCES jobs(key) ON DELETE CASCADE,
                custom_id TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                batch_row {bigint},
                outcome TEXT,
                fingerprint {blob},
                body {blob} NOT NULL,
                extra {blob}
            )""",
            _move_requests,
            "DROP TABLE requests",
            "ALTER TABLE requests_v7 RENAME TO requests",
            "CREATE UNIQUE INDEX requests_by_id ON requests (job, custom_id)",
            # The batch a request waits on: settling and rebuilding a batch. A job's first
            # requests are written waiting for their batch's row (NULL) and get it in the same
            # transaction: they enter this index once, with it.
            "CREATE INDEX requests_assigned ON requests (job, batch_row)"
            f" WHERE state = '{_ASSIGNED}' AND batch_row IS NOT NULL",
            # Rows no batch holds yet (usually none): planning a round, claiming a job step.
            "CREATE INDEX requests_pending ON requests (job, state, seq)"
            f" WHERE state = '{_PENDING}'",
            # Final outcomes, counted by batch without reading the rows.
            "CREATE INDEX requests_done ON requests (job, state, batch_row, outcome)"
            f" WHERE state = '{_DONE}'",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(db: Database) -> int:
    """Bring the store to :data:`SCHEMA_VERSION`; returns the version it was at (0: new).

    Safe when several processes open a new store at once: the check and the migrations run in
    one exclusive transaction, so one of them migrates and the others find it done.
    """
    with db.exclusive("batchcore-schema"):
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        found = db.query_one("SELECT value FROM meta WHERE key='schema'")
        current = 0 if found is None else int(found["value"])
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"job store {db.where} was written by a newer batchcore (schema {current}; this "
                f"one reads up to {SCHEMA_VERSION}); upgrade batchcore to use it",
                where=db.where,
            )
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for step in migration.steps:
                if isinstance(step, str):
                    db.execute(step.format_map(db.types))
                else:
                    step(db)
        if current != SCHEMA_VERSION:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE"
                " SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
    return current

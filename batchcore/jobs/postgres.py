"""The job store on PostgreSQL, for teams whose jobs outgrow one machine.

Same SQL as the SQLite store (see :mod:`batchcore.jobs.database`); this module speaks it through
``psycopg`` 3, imported only when a ``postgresql://`` store is opened (``pip install
batchcore[postgres]``). Writes run in transactions (``transaction()``); a statement that fails
inside one rolls back alone (a savepoint), as in SQLite. Long reads stream from a server-side
cursor on a connection of their own, so memory stays flat and writes are never held back.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batchcore.errors import StoreError
from batchcore.jobs.database import Row, to_format_params
from batchcore.jobs.store import public_url as without_credentials

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresDatabase", "public_url"]

POSTGRES_TYPES: Mapping[str, str] = {
    "id": "BIGSERIAL PRIMARY KEY",
    "blob": "BYTEA",
    "real": "DOUBLE PRECISION",
    "bigint": "BIGINT",
}
_cursor_names = itertools.count(1)


def public_url(url: str) -> str:
    """*url* without its password (in the user part or a ``?password=`` parameter), for
    messages: the store's one rule for credentials in URLs, keeping the database user."""
    return without_credentials(url, keep_user=True)


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lowered = text.lower()
    if "no space left" in lowered or "could not extend" in lowered or "disk full" in lowered:
        return f"the disk is full ({text})"
    if "read-only transaction" in lowered:
        return "the store was opened read-only"
    if "connection" in lowered and ("refused" in lowered or "failed" in lowered):
        return f"cannot connect to the PostgreSQL server ({text})"
    if "does not exist" in lowered and "database" in lowered:
        return f"the database does not exist ({text})"
    if "password authentication" in lowered or "authentication failed" in lowered:
        return f"the server refused the credentials ({text})"
    return text


class PostgresDatabase:
    """One PostgreSQL connection (per thread) running the store's SQL."""

    dialect = "postgresql"
    types = POSTGRES_TYPES

    def __init__(self, url: str, *, readonly: bool = False, timeout: float = 30.0) -> None:
        self.url = url
        self.where = public_url(url)
        self.readonly = readonly
        self._timeout = timeout
        self._lock = threading.RLock()
        self._depth = 0
        try:
            import psycopg  # noqa: F401 - only to report a missing driver clearly
        except ImportError:
            raise StoreError(
                f"job store {self.where}: PostgreSQL stores need psycopg: "
                "pip install 'batchcore[postgres]'",
                where=self.where,
            ) from None
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Row]:
        import psycopg
        from psycopg.rows import dict_row

        failure: Exception | None = None
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(int(self._timeout), 1),
                application_name="batchcore",
            )
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
            return conn
        except psycopg.Error as error:
            failure = error
        raise StoreError(f"job store {self.where}: {_describe(failure)}", where=self.where)

    # -- running SQL -----------------------------------------------------------------------

    def _run(self, work: Callable[[], Any]) -> Any:
        import psycopg

        failure: Exception | None = None
        with self._lock:
            try:
                return work()
            except psycopg.Error as error:
                failure = error
        raise StoreError(f"job store {self.where}: {_describe(failure)}", where=self.where)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        text = to_format_params(sql)
        return self._run(lambda: self._conn.execute(text, params).fetchall())  # type: ignore[no-any-return]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        text = to_format_params(sql)
        return self._run(lambda: self._conn.execute(text, params).fetchone())  # type: ignore[no-any-return]

    def iterate(self, sql: str, params: Sequence[Any] = (), *, chunk: int = 1000) -> Iterator[Row]:
        text = to_format_params(sql)
        reader = self._run(self._connect_reader)
        try:
            with reader.transaction():
                cursor = reader.cursor(name=f"batchcore_{next(_cursor_names)}")
                self._run(lambda: cursor.execute(text, params))
                while True:
                    rows = self._run(lambda: cursor.fetchmany(chunk))
                    if not rows:
                        return
                    yield from rows
        finally:
            reader.close()

    def _connect_reader(self) -> psycopg.Connection[Row]:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(
            self.url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(int(self._timeout), 1),
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        text = to_format_params(sql)
        return self._run(lambda: self._conn.execute(text, params).rowcount)  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        text = to_format_params(sql)
        batch = list(rows)

        def work() -> int:
            with self._conn.cursor() as cursor:
                cursor.executemany(text, batch)
                return max(cursor.rowcount, 0)

        with self.transaction():
            # A failed statement aborts a PostgreSQL transaction; a savepoint keeps the failure
            # to this statement, as SQLite does, so the caller can still look around.
            self._run(lambda: self._conn.execute("SAVEPOINT batchcore_statement"))
            try:
                changed: int = self._run(work)
            except BaseException:
                self._run(lambda: self._conn.execute("ROLLBACK TO SAVEPOINT batchcore_statement"))
                raise
            self._run(lambda: self._conn.execute("RELEASE SAVEPOINT batchcore_statement"))
            return changed

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        row = self.query_one(sql, params)
        assert row is not None
        return int(next(iter(row.values())))

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        # PostgreSQL commits are durable (synchronous_commit) unless configured otherwise.
        with self._lock:
            if self._depth:  # nested: part of the enclosing transaction
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._run(lambda: self._conn.execute("BEGIN"))
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            try:
                self._run(lambda: self._conn.execute("COMMIT"))
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        with self.transaction():
            self._run(
                lambda: self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
            )
            yield

    def refresh_statistics(self, table: str) -> None:
        # Without statistics on a table that just grew by thousands of rows, the planner may
        # scan an index of the whole job for each result instead of the primary key.
        self.execute(f"ANALYZE {table}")

    def lock_rows(self, alias: str) -> str:
        # Many workers claim different rows at once instead of queueing on one.
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()

"""The job store's connection to its database, for each backend, behind one small interface.

The store writes its SQL once, in the dialect SQLite and PostgreSQL share (``?`` parameters,
``INSERT ... ON CONFLICT``, ``RETURNING``); a backend translates what differs (parameter style,
column types in DDL, how a write transaction is taken) and turns every driver error into a
:class:`~batchcore.errors.StoreError` that names the store and the cause.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from batchcore.errors import StoreError

__all__ = ["Database", "Row", "SQLiteDatabase", "describe_sqlite_error"]

Row = Mapping[str, Any]

#: DDL spellings per dialect; schema statements use ``{name}`` for these.
SQLITE_TYPES: Mapping[str, str] = {
    "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "blob": "BLOB",
    "real": "REAL",
    "bigint": "INTEGER",
}


class Database(Protocol):
    """What the store needs from a database connection (one per thread)."""

    dialect: str
    where: str
    types: Mapping[str, str]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def iterate(self, sql: str, params: Sequence[Any] = (), *, chunk: int = 1000) -> Iterator[Row]:
        """Rows streamed in chunks (memory stays flat however many match)."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT ... RETURNING row; the new row's id."""
        ...

    def transaction(self, *, durable: bool = False) -> contextlib.AbstractContextManager[None]:
        """A write transaction, taken up front. *durable*: the commit survives a power loss
        (used for the records that prevent paying twice)."""
        ...

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A transaction that also serialises everyone using *name* (first opens, migrations)."""
        ...

    def refresh_statistics(self, table: str) -> None:
        """Let the query planner see what a bulk insert into *table* changed."""
        ...

    def lock_rows(self, alias: str) -> str:
        """The clause that locks the selected rows of *alias* for this transaction, skipping
        rows another transaction holds ("" where transactions already run one at a time)."""
        ...

    def close(self) -> None: ...


def describe_sqlite_error(error: sqlite3.Error) -> str:
    """A user's words for what went wrong, from SQLite's message."""
    text = str(error)
    lowered = text.lower()
    if "disk is full" in lowered or "disk full" in lowered:
        return "the disk is full"
    if "readonly" in lowered or "read-only" in lowered:
        return "the store is on read-only storage or not writable"
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return f"the file is damaged or is not a batchcore job store ({text})"
    if "unable to open" in lowered:
        return "the file cannot be opened (check the path and its permissions)"
    if "disk i/o error" in lowered:
        return f"the disk reported an I/O error ({text})"
    if "locked" in lowered or "busy" in lowered:
        return f"another process kept the store locked too long ({text})"
    return text


class SQLiteDatabase:
    """One SQLite file in WAL mode: readers never block writers, writers queue.

    *readonly* opens the file without ever writing to it (no WAL switch, no schema work), so
    read commands work on read-only media. Commits are durable against a killed process;
    ``transaction(durable=True)`` also makes them durable against a power loss.
    """

    dialect = "sqlite"
    types = SQLITE_TYPES

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 60.0) -> None:
        self.path = path
        self.where = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        try:
            #: Opened read-only where no store exists yet: an empty store in memory stands in.
            self.missing = readonly and _absent(path)
            if self.missing:
                self._db = sqlite3.connect(
                    ":memory:", isolation_level=None, check_same_thread=False
                )
            elif readonly:
                self._db = self._open_readonly(path, timeout)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    path, timeout=timeout, isolation_level=None, check_same_thread=False
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        except sqlite3.Error as error:
            problem = describe_sqlite_error(error)
            if _read_only_media(path):
                problem = "the store is on read-only storage (only status, jobs and results work)"
        except OSError as error:
            problem = _describe_os_error(error, path)
        else:
            return
        raise StoreError(f"job store {path}: {problem}", where=str(path))

    @staticmethod
    def _open_readonly(path: Path, timeout: float) -> sqlite3.Connection:
        uri = path.resolve().as_uri()
        db = sqlite3.connect(
            f"{uri}?mode=ro",
            uri=True,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL database on read-only media cannot create its shared-memory file: read
            # it as an immutable file instead (nothing can be writing to read-only media).
            db.close()
            db = sqlite3.connect(
                f"{uri}?mode=ro&immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        return db

    # -- running SQL -----------------------------------------------------------------------

    def _fail(self, error: sqlite3.Error) -> StoreError:
        return StoreError(
            f"job store {self.path}: {describe_sqlite_error(error)}", where=str(self.path)
        )

    def _run(self, work: Callable[[], Any]) -> Any:
        failure: sqlite3.Error | None = None
        with self._lock:
            try:
                return work()
            except sqlite3.Error as error:
                failure = error
        raise self._fail(failure)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(lambda: self._db.execute(sql, params).fetchall())  # type: ignore[no-any-return]

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._run(lambda: self._db.execute(sql, params).fetchone())  # type: ignore[no-any-return]

    def iterate(self, sql: str, params: Sequence[Any] = (), *, chunk: int = 1000) -> Iterator[Row]:
        cursor = self._run(lambda: self._db.execute(sql, params))
        while True:
            rows = self._run(lambda: cursor.fetchmany(chunk))
            if not rows:
                return
            yield from rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        def work() -> int:
            # Counted from total_changes: sqlite3's rowcount is -1 for "WITH ... INSERT".
            before = self._db.total_changes
            self._db.execute(sql, params)
            return self._db.total_changes - before

        return self._run(work)  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        def work() -> int:
            before = self._db.total_changes
            self._db.executemany(sql, rows)
            return self._db.total_changes - before

        return self._run(work)  # type: ignore[no-any-return]

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        row = self._run(lambda: self._db.execute(sql, params).fetchone())
        return int(row[0])

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        with self._lock:
            if self._db.in_transaction:  # nested: part of the enclosing transaction
                yield
                return
            if durable:
                self._run(lambda: self._db.execute("PRAGMA synchronous=FULL"))
            try:
                self._run(lambda: self._db.execute("BEGIN IMMEDIATE"))
                try:
                    yield
                except BaseException:
                    self._rollback()
                    raise
                self._commit()
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("PRAGMA synchronous=NORMAL")

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        # BEGIN IMMEDIATE already serialises every writer of the file.
        return self.transaction()

    def lock_rows(self, alias: str) -> str:
        return ""  # a write transaction holds the whole file

    def refresh_statistics(self, table: str) -> None:
        pass  # SQLite's planner picks the primary key for these lookups without statistics

    def _commit(self) -> None:
        failure: sqlite3.Error | None = None
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            failure = error
        if failure is not None:
            self._rollback()
            raise self._fail(failure)

    def _rollback(self) -> None:
        # After SQLITE_FULL or an I/O error SQLite may have rolled back already; the error worth
        # reporting is the one that caused it, never "cannot rollback".
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()


def _read_only_media(path: Path) -> bool:
    for place in (path, path.parent):
        try:
            return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def _absent(path: Path) -> bool:
    """Whether no store exists at *path* yet (its directory may be missing too: a first run).
    A path that cannot be looked at (a file where a directory should be, a directory this
    user may not search) is an error, never an empty store."""
    try:
        path.stat()
    except FileNotFoundError:
        return True
    return False


def _not_a_directory(path: Path) -> Path:
    """The first of *path*'s parents that exists but is not a directory."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path.parent


def _describe_os_error(error: OSError, path: Path) -> str:
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        return f"{_not_a_directory(path)} is not a directory (check BATCHCORE_HOME and --store)"
    if isinstance(error, PermissionError):
        return f"no permission to open or create {path} (check the permissions of {path.parent})"
    return f"cannot open or create {path} ({error.strerror or error})"


_QMARK = re.compile(r"\?")


def to_format_params(sql: str) -> str:
    """``?`` placeholders as ``%s`` (the format style of drivers like psycopg). The store's SQL
    never holds a literal question mark, so a plain substitution is exact."""
    return _QMARK.sub("%s", sql.replace("%", "%%"))

"""A throwaway PostgreSQL server on 127.0.0.1, for tests of the PostgreSQL job store.

``TemporaryPostgres`` runs ``initdb`` into a temporary directory and ``pg_ctl start`` on a free
port, as the ``postgres`` system user when the tests run as root (the server refuses to run as
root), and ``stop()`` removes everything. ``find_server()`` says why a server cannot be started
on this machine (no ``initdb`` on PATH or in the usual Debian place, no user to run it as), so a
test can skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["TemporaryPostgres", "find_server"]

_DEBIAN_BIN = Path("/usr/lib/postgresql")


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    if _DEBIAN_BIN.is_dir():
        for version in sorted(_DEBIAN_BIN.iterdir(), reverse=True):
            candidate = version / "bin"
            if (candidate / "initdb").exists():
                return candidate
    return None


def find_server() -> tuple[Path | None, str]:
    """(the directory of initdb/pg_ctl, "") or (None, why a server cannot be started)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        return None, "PostgreSQL's initdb is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return None, "running as root and runuser is missing"
    return bin_dir, ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL server of its own. ``url`` points at a fresh database on it; ``new_url()``
    creates another one (each test can have an empty store)."""

    def __init__(self, *, base: str | Path | None = None) -> None:
        """*base*: where the server's directory goes (default: the system temp directory); the
        ``postgres`` user must be able to reach it when running as root."""
        bin_dir, why = find_server()
        if bin_dir is None:
            raise RuntimeError(why)
        self._bin = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="batchcore-pg-", dir=base))
        self._data = self._root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self.url = ""

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        argv = list(command)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> TemporaryPostgres:
        if self._as_postgres:
            shutil.chown(self._root, user="postgres")
            os.chmod(self._root, 0o700)
        done = self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self._data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        options = (
            f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        done = self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self._data),
            "-o",
            options,
            "-l",
            str(self._root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if done.returncode != 0:
            log = (self._root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        self.url = self.new_url()
        return self

    def new_url(self) -> str:
        """A new, empty database on this server."""
        import psycopg

        name = "batchcore_" + uuid.uuid4().hex[:12]
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
                ) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._data.exists():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "immediate", "stop")
        with contextlib.suppress(OSError):
            shutil.rmtree(self._root)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

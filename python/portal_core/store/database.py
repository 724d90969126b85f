"""One SQLite database file shared by threads and processes: the machinery every store uses.

* WAL journal, ``synchronous=FULL`` (a committed transaction survives a crash or power loss),
  foreign keys on, a busy timeout so writers from other threads and processes wait their turn.
* One connection per thread, made again in a forked child (SQLite's locks are per process, so
  a connection must not cross a fork).
* Every change in an explicit ``BEGIN IMMEDIATE`` transaction: the write lock is taken before
  the first read, so read-check-write sequences cannot interleave.
* A schema history in a version table of the store's own, one migration per transaction, so
  several stores (each with its own tables and version table) can share one file, and two
  processes opening a new file at once apply each migration once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["Migration", "SqliteDatabase"]


@dataclass(frozen=True)
class Migration:
    """One step of a schema history; applied ones are never edited, only new ones appended."""

    version: int
    description: str
    steps: tuple[str, ...]


class SqliteDatabase:
    """The connections, transactions and migrations of one store in one SQLite file.

    Subclasses name themselves (``what``, for messages), their version table, the exception
    they raise (``error``) and any extra pragmas.
    """

    what = "store"
    version_table = "schema_version"
    error: type[Exception] = RuntimeError
    pragmas: tuple[str, ...] = ()

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float, migrations: Sequence[Migration]
    ) -> None:
        self.path = os.fspath(path)
        if self.path == ":memory:" or self.path.startswith("file:"):
            # Each thread has its own connection, and an in-memory database is private to its
            # connection: the threads would not see each other's records.
            raise ValueError(f"{type(self).__name__} needs a file path")
        if not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError("timeout must be a number >= 0")
        self.timeout = float(timeout)
        self._migrations = tuple(migrations)
        self._closed = False
        self._reset_connections()
        conn = self._conn()
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.Error as e:
            raise self.error(f"cannot open the {self.what} {self.path!r}: {e}") from None
        if str(mode).lower() != "wal":
            raise self.error(
                f"the {self.what} {self.path!r} cannot use a WAL journal (got {mode!r})"
            )
        self._migrate()

    def _reset_connections(self) -> None:
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._pid = os.getpid()

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise self.error(f"the {self.what} is closed")
        if os.getpid() != self._pid:
            self._reset_connections()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # Autocommit mode (isolation_level=None): transactions are explicit BEGINs.
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                for pragma in self.pragmas:
                    conn.execute(pragma)
            except sqlite3.Error as e:
                raise self.error(f"cannot open the {self.what} {self.path!r}: {e}") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed (and synced) if the block returns, rolled back if
        it raises."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self.error(f"{self.what} transaction failed to start: {e}") from None
        try:
            yield conn
        except sqlite3.Error as e:
            conn.execute("ROLLBACK")
            raise self.error(f"{self.what} transaction failed: {e}") from None
        except BaseException:
            # Also on a simulated crash (a BaseException): SQLite would roll an unfinished
            # transaction back when the database is next opened; this does it now.
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self.error(f"{self.what} transaction failed to commit: {e}") from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise self.error(f"{self.what} read failed: {e}") from None

    def _migrate(self) -> None:
        table = self.version_table
        with self._tx() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL DEFAULT (datetime('now'))) STRICT"
            )
        while True:
            # One migration per transaction, the version read again each time.
            with self._tx() as conn:
                row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {table}").fetchone()
                current = row[0]
                latest = self._migrations[-1].version
                if current > latest:
                    raise self.error(
                        f"the {self.what} {self.path!r} has schema version {current}, newer "
                        f"than this build knows ({latest}): upgrade portal-core"
                    )
                if current == latest:
                    return
                migration = self._migrations[current]
                for step in migration.steps:
                    conn.execute(step)
                conn.execute(
                    f"INSERT INTO {table} (version, description) VALUES (?, ?)",
                    (migration.version, migration.description),
                )

    @property
    def schema_version(self) -> int:
        rows = self._read(f"SELECT COALESCE(MAX(version), 0) FROM {self.version_table}")
        return int(rows[0][0])

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
            self._closed = True
        for conn in conns:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

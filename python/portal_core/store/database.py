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
* Private files: a database this class creates is mode 0600 whatever the umask, and so are
  its ``-wal`` and ``-shm`` companions (see :meth:`SqliteDatabase._create_private`).

Stores use only the public methods: :meth:`~SqliteDatabase.transaction` for every change,
:meth:`~SqliteDatabase.query` / :meth:`~SqliteDatabase.query_one` for reads, and
:meth:`~SqliteDatabase.truncate_wal`; :func:`portal_core.store.rows.record_from_row` turns
their rows into records.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["Migration", "SqliteDatabase"]

# Database files hold records (sealed shares, cipher texts, vault counters): owner only.
_PRIVATE_MODE = 0o600
# The files SQLite keeps beside a WAL database; they hold page images, records included.
_COMPANIONS = ("-wal", "-shm")


@dataclass(frozen=True)
class Migration:
    """One step of a schema history; applied ones are never edited, only new ones appended."""

    version: int
    description: str
    steps: tuple[str, ...]


# One queue of writers per database file in this process. SQLite lets one write transaction
# run at a time; a writer that finds the lock taken sleeps in SQLite's busy handler (1 to
# 100 ms a try, whatever the holder does), which under many threads costs seconds of tail
# latency. Queued here first, a process's writers wake one another as soon as the lock is
# free; SQLite's lock still orders the processes. Re-entrant, so a transaction opened inside
# another on one thread fails at once (as SQLite refuses it) instead of waiting the timeout.
_writer_queues: dict[str, threading.RLock] = {}
_writer_queues_lock = threading.Lock()


def _writer_queue(path: str) -> threading.RLock:
    key = os.path.realpath(path)
    with _writer_queues_lock:
        queue = _writer_queues.get(key)
        if queue is None:
            queue = _writer_queues[key] = threading.RLock()
        return queue


def _forget_writer_queues() -> None:
    # A forked child has none of its parent's threads: locks they held would never be let go.
    global _writer_queues_lock
    _writer_queues.clear()
    _writer_queues_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_writer_queues)


class SqliteDatabase:
    """The connections, transactions and migrations of one store in one SQLite file.

    Subclasses name themselves (``what``, for messages), their version table, the exception
    they raise (``error``) and any extra pragmas, and reach the database only through the
    public methods below.
    """

    what = "store"
    version_table = "schema_version"
    error: type[Exception] = RuntimeError
    pragmas: tuple[str, ...] = ()
    # Appended to the SELECT of a read-then-write: nothing, BEGIN IMMEDIATE already holds
    # the whole database (PostgreSQL's row locks order the change: see portable.py).
    for_update = ""
    for_no_key_update = ""

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
        self._create_private()
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
        self._narrow_companions()

    def _create_private(self) -> None:
        """Creates the database file, empty and mode 0600, if there is none yet.

        The file is made here rather than by SQLite (which would use 0644 minus the umask),
        so it never exists with a wider mode, not even for an instant: ``O_EXCL`` makes
        sure this call is the one creating it, the mode given to ``open`` can only be
        narrowed by the umask, and ``fchmod`` on the open descriptor then sets exactly
        0600 whatever the umask was. Changing the process umask around the open instead
        would race with every other thread creating files meanwhile.

        SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode (it
        sets that mode on them even against the umask), so they are 0600 from their first
        instant as well. An existing database keeps the mode its operator gave it.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _PRIVATE_MODE)
        except FileExistsError:
            return
        except OSError as e:
            raise self.error(
                f"cannot create the {self.what} {self.path!r}: {e.strerror or e}"
            ) from None
        try:
            os.fchmod(fd, _PRIVATE_MODE)
        except OSError as e:
            raise self.error(
                f"cannot make the {self.what} {self.path!r} private (mode 0600): {e.strerror or e}"
            ) from None
        finally:
            os.close(fd)

    def _narrow_companions(self) -> None:
        """Takes from the ``-wal`` and ``-shm`` files any permission the database file does
        not grant.

        New companions already have the database's mode (see :meth:`_create_private`);
        this catches older ones, left more open than the database by an earlier build or
        by an operator who narrowed only the database file. SQLite keeps using a companion
        it finds, whatever its mode, so the check runs on every open.

        Raises:
            error: a companion is more open than the database and its mode cannot be
                changed (another user owns it).
        """
        try:
            allowed = stat.S_IMODE(os.stat(self.path).st_mode)
        except OSError as e:
            raise self.error(
                f"cannot read the mode of the {self.what} {self.path!r}: {e.strerror or e}"
            ) from None
        for suffix in _COMPANIONS:
            companion = self.path + suffix
            try:
                mode = stat.S_IMODE(os.stat(companion).st_mode)
                if mode & ~allowed:
                    os.chmod(companion, mode & allowed)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise self.error(
                    f"{companion!r} grants more access than the {self.what} {self.path!r} "
                    f"and its mode cannot be narrowed: {e.strerror or e}"
                ) from None

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

    # -- what the stores use ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, begun with ``BEGIN IMMEDIATE``
        (the write lock is taken before the first read): committed (and synced) if the
        block returns, rolled back if it raises.

        Raises:
            error: the transaction cannot start or commit, or an SQLite error escapes the
                block (after the rollback).
        """
        conn = self._conn()
        writers = _writer_queue(self.path)
        if not writers.acquire(timeout=self.timeout):
            raise self.error(
                f"{self.what} transaction failed to start: other writers held the database "
                f"for over {self.timeout:g} s"
            )
        try:
            with self._begun(conn) as begun:
                yield begun
        finally:
            writers.release()

    @contextmanager
    def _begun(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
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

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one read statement, outside any explicit transaction (``params``
        are bound, never interpolated).

        Raises:
            error: the statement failed.
        """
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self.error(f"{self.what} read failed: {e}") from None

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of :meth:`query`, or None when there is none."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def truncate_wal(self) -> bool:
        """Copies the WAL into the database file and truncates the WAL to zero bytes;
        whether that completed (another connection still reading an older snapshot can
        keep part of the WAL in use, in which case a later call finishes the job).

        Raises:
            error: the checkpoint failed.
        """
        busy: int  # 1 when the checkpoint could not complete
        try:
            busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as e:
            raise self.error(f"{self.what} checkpoint failed: {e}") from None
        return busy == 0

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        table = self.version_table
        with self.transaction() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL DEFAULT (datetime('now'))) STRICT"
            )
        while True:
            # One migration per transaction, the version read again each time.
            with self.transaction() as conn:
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
        rows = self.query(f"SELECT COALESCE(MAX(version), 0) FROM {self.version_table}")
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

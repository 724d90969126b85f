"""One PostgreSQL database shared by threads and processes: the machinery every PostgreSQL
store uses, the counterpart of :class:`~portal_core.store.database.SqliteDatabase`.

* A pool of connections (``psycopg_pool.ConnectionPool``, at most ``pool_size``), made
  again in a forked child: a connection must not cross a fork (the child would write into
  the parent's socket).
* Connections in autocommit mode: a read is one statement, a change an explicit
  transaction (:meth:`~PostgresDatabase.transaction`), at READ COMMITTED, PostgreSQL's
  default. SQLite's ``BEGIN IMMEDIATE`` runs writers one at a time; here they run at once,
  so each store takes, before it reads what it is about to change, a row lock
  (``SELECT ... FOR UPDATE``) on the row that orders those changes, or makes the
  change one statement whose ``WHERE`` is its check (``UPDATE ... WHERE``, ``DELETE ...
  RETURNING``, ``INSERT ... ON CONFLICT``). Every statement after a lock is granted sees
  what the previous holder committed, so the callers get the serial outcomes they get on
  SQLite, without SERIALIZABLE's retries. Locks are always taken in one order (a wallet,
  then its client's lock row, then a session), so two transactions never wait on each
  other in a cycle. ``lock_timeout`` bounds every wait (``timeout``).
* JSON columns (``JSONB``, which checks its text on the way in) are read back as text, as
  SQLite holds them, so both engines build records with the same converters.
* A schema history in a version table of the store's own, each migration applied in its
  own transaction holding a transaction-level advisory lock named after that table
  (``pg_advisory_xact_lock``): processes starting at once apply each migration once, one
  after another.
* No password in any message or repr: the database is named as ``user@host:port/dbname``.

Stores use only the public methods: :meth:`~PostgresDatabase.transaction` for every change,
:meth:`~PostgresDatabase.query` / :meth:`~PostgresDatabase.query_one` for reads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from portal_core.store.database import Migration

__all__ = ["DEFAULT_POOL_SIZE", "Connection", "PostgresDatabase", "describe_dsn"]

# Connections one store keeps at most, unless told (``portal-core serve`` sizes each pool to
# its blocking threads); a thread holds one only for the length of a call.
DEFAULT_POOL_SIZE = 10


class Connection(psycopg.Connection[Any]):
    """A psycopg connection that also takes the stores' portable SQL, written once for both
    engines with SQLite's ``?`` placeholders: each ``?`` is sent as ``%s`` (no statement of
    the stores holds a literal ``?``). Rows are dicts (psycopg's ``dict_row``), read by column
    name like ``sqlite3.Row``; typed Any so the SQLite row converters take them as well."""

    def execute(  # type: ignore[override]
        self, query: str, params: Sequence[Any] | None = None, **kwargs: Any
    ) -> psycopg.Cursor[Any]:
        return super().execute(query.replace("?", "%s"), params, **kwargs)


def describe_dsn(dsn: str) -> str:
    """The database ``dsn`` names, as ``user@host:port/dbname`` (the parts it gives), never
    with its password: how messages and reprs name it.

    Raises:
        ValueError: ``dsn`` is not a connection string or URL libpq reads (the message
            does not quote it: it may hold a password).
    """
    if not isinstance(dsn, str):
        raise TypeError("the database must be given as a connection string or URL")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ValueError("not a PostgreSQL connection string or URL") from None
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"{user}{params.get('host') or ''}{port}/{params.get('dbname') or ''}"


def _primary(e: psycopg.Error) -> str:
    """The error's primary message, without the DETAIL line (which quotes the key values
    a constraint refused)."""
    diag = getattr(e, "diag", None)
    text = getattr(diag, "message_primary", None) or str(e).split("\n", 1)[0]
    return str(text)


class PostgresDatabase:
    """The pool, transactions and migrations of one store in one PostgreSQL database.

    Subclasses name themselves (``what``, for messages), their version table and the
    exception they raise (``error``), and reach the database only through the public
    methods below.
    """

    what = "store"
    version_table = "schema_version"
    error: type[Exception] = RuntimeError
    # Appended to the SELECT of a read-then-write: locks the row that orders the change
    # (the weaker lock when the row's key is not changed: rows referencing it stay free).
    for_update = " FOR UPDATE"
    for_no_key_update = " FOR NO KEY UPDATE"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int,
        timeout: float,
        migrations: Sequence[Migration],
    ) -> None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError("pool_size must be an integer >= 1")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("timeout must be a number > 0")
        self.where = describe_dsn(dsn)
        self._dsn = dsn
        self._password = str(conninfo_to_dict(dsn).get("password") or "")
        self.pool_size = pool_size
        self.timeout = float(timeout)
        self._migrations = tuple(migrations)
        self._closed = False
        self._pool_lock = threading.Lock()
        self._pool: ConnectionPool[Connection] | None = None
        self._pid = os.getpid()
        self._migrate()
        self._open_pool()

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _fail(self, doing: str, e: psycopg.Error) -> Exception:
        return self.error(f"{self.what} {doing} failed ({self.where}): {self._scrub(_primary(e))}")

    def _settings(self) -> dict[str, Any]:
        # libpq takes whole seconds to connect; every lock wait is bounded as well.
        return {
            "connect_timeout": max(1, round(self.timeout)),
            "options": f"-c lock_timeout={round(self.timeout * 1000)}",
        }

    @staticmethod
    def _configure(conn: Connection) -> None:
        # JSON as text, as SQLite holds it: the same converters read both engines' rows.
        conn.adapters.register_loader("jsonb", TextLoader)

    def _open_pool(self) -> None:
        pool: ConnectionPool[Connection] = ConnectionPool(
            self._dsn,
            connection_class=Connection,
            kwargs={"autocommit": True, "row_factory": dict_row, **self._settings()},
            min_size=1,
            max_size=self.pool_size,
            configure=self._configure,
            timeout=self.timeout,
            name=f"portal-core {self.what}",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout:
            pool.close()
            raise self.error(
                f"cannot connect to the {self.what} ({self.where}) within {self.timeout:g} s"
            ) from None
        self._pool = pool

    def _connection_pool(self) -> ConnectionPool[Connection]:
        if self._closed:
            raise self.error(f"the {self.what} is closed")
        if os.getpid() != self._pid:
            # A forked child: the parent's connections are the parent's (psycopg never
            # closes a connection another process opened). This process opens its own.
            with self._pool_lock:
                if os.getpid() != self._pid:
                    self._pid = os.getpid()
                    self._open_pool()
        assert self._pool is not None
        return self._pool

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._connection_pool().connection() as conn:
                yield conn
        except PoolTimeout:
            raise self.error(
                f"no {self.what} connection free within {self.timeout:g} s "
                f"({self.pool_size} in the pool, all busy)"
            ) from None

    # -- what the stores use ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction on a pooled connection: committed if the block returns, rolled
        back if it raises (a simulated crash, a ``BaseException``, included).

        Raises:
            error: the transaction cannot start or commit, or a database error escapes
                the block (after the rollback).
        """
        try:
            with self._connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as e:
            raise self._fail("transaction", e) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read statement, outside any explicit transaction (``params``
        are bound, never interpolated).

        Raises:
            error: the statement failed.
        """
        try:
            with self._connection() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise self._fail("read", e) from None

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of :meth:`query`, or None when there is none."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # -- schema -----------------------------------------------------------------------------

    @property
    def _lock_key(self) -> int:
        """The advisory lock of this schema history: 64 bits named after its version table."""
        name = f"portal-core {self.version_table}".encode()
        return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)

    def _migrate(self) -> None:
        """Applies the pending migrations, each in its own transaction holding the schema's
        advisory lock: a process starting meanwhile waits, then finds the version moved on."""
        table = self.version_table
        try:
            conn = Connection.connect(self._dsn, autocommit=True, **self._settings())
        except psycopg.Error as e:
            raise self.error(
                f"cannot connect to the {self.what} ({self.where}): {self._scrub(_primary(e))}"
            ) from None
        with conn:
            while True:
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                        # Under the lock: two CREATE TABLE IF NOT EXISTS at once can fail.
                        conn.execute(
                            f"CREATE TABLE IF NOT EXISTS {table} ("
                            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                        )
                        (current,) = conn.execute(
                            f"SELECT COALESCE(MAX(version), 0) AS version FROM {table}"
                        ).fetchone() or (0,)
                        latest = self._migrations[-1].version
                        if current > latest:
                            raise self.error(
                                f"the {self.what} ({self.where}) has schema version {current}, "
                                f"newer than this build knows ({latest}): upgrade portal-core"
                            )
                        if current == latest:
                            return
                        migration = self._migrations[current]
                        for step in migration.steps:
                            conn.execute(step)
                        conn.execute(
                            f"INSERT INTO {table} (version, description) VALUES (%s, %s)",
                            (migration.version, migration.description),
                        )
                except psycopg.Error as e:
                    raise self._fail("migration", e) from None

    @property
    def schema_version(self) -> int:
        row = self.query_one(
            f"SELECT COALESCE(MAX(version), 0) AS version FROM {self.version_table}"
        )
        assert row is not None
        return int(row["version"])

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None and os.getpid() == self._pid:
            pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

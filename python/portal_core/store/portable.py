"""What the tables written once for both engines use of their database: the public methods
both :class:`~portal_core.store.database.SqliteDatabase` and
:class:`~portal_core.store.postgres.database.PostgresDatabase` have, and the dialect seam.

* SQL is written with SQLite's ``?`` placeholders; the PostgreSQL connection sends each as
  ``%s`` (:class:`~portal_core.store.postgres.database.Connection`).
* A read-then-write appends ``self.for_update`` (or ``self.for_no_key_update``, when the
  row's key stays as it is) to the SELECT that reads the row ordering the change: nothing on
  SQLite (``BEGIN IMMEDIATE`` already holds the whole database), ``FOR UPDATE`` (``FOR NO
  KEY UPDATE``) on PostgreSQL, whose writers run at once, at READ COMMITTED.

A store's shared tables subclass :class:`PortableTables`; each engine's class lists its
database first, then the shared tables (``class SqliteX(SqliteDatabase, XTables)``), and
overrides a method only where the engines' SQL truly differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

__all__ = ["Connection", "Cursor", "PortableTables"]


class Cursor(Protocol):
    """What the shared tables read of a statement's cursor (rows are read by column name)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection in a transaction: ``sqlite3.Connection`` or the PostgreSQL store's."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


class PortableTables:
    """The database methods shared tables call; the engine's database class provides them."""

    for_update: str
    for_no_key_update: str

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[Connection]: ...

        def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        def query_one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

"""The custodian store on SQLite (the standard library's ``sqlite3``): the embedded default.

* WAL journal, ``synchronous=FULL`` (a committed transaction survives power loss), foreign
  keys on, a busy timeout so that writers from other threads and processes wait their turn.
* One connection per thread, so the store can be shared by threads; every change runs in a
  ``BEGIN IMMEDIATE`` transaction (the write lock is taken first, so two read-check-write
  sequences cannot interleave).
* Schema migrations from :mod:`portal_core.store.custodian_migrations`, applied when the
  store opens; a new database file is created mode 0600.

The connections, transactions and file handling are :class:`~portal_core.store.database.
SqliteDatabase`'s; the custodian's SQL is :mod:`portal_core.store.custodian_tables`' (and
the tenants' and the request tables', shared with PostgreSQL).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from portal_core.store.custodian_interface import StoreError
from portal_core.store.custodian_migrations import MIGRATIONS
from portal_core.store.custodian_tables import CustodianTables
from portal_core.store.database import Migration
from portal_core.store.request_sqlite import SqliteRequestTables
from portal_core.store.tenant_sqlite import SqliteTenantTables

__all__ = ["SqliteStore"]


class SqliteStore(SqliteTenantTables, SqliteRequestTables, CustodianTables):
    """A :class:`~portal_core.store.custodian_interface.CustodianStore` in one SQLite file,
    and a :class:`~portal_core.store.tenant_interface.TenantStore` (tenants, API key hashes,
    the audit trail: :class:`~portal_core.store.tenant_sqlite.SqliteTenantTables`).

    ``path``: the database file (created if missing; its directory must exist).
    ``timeout``: seconds a writer waits for another's transaction before failing.
    ``checkpoint``: called with a step name between the statements of multi-statement
    transactions; tests use it to crash a transaction half-way and check it rolls back.
    ``migrations``: the schema history (tests pass a longer one to exercise an upgrade).

    Raises:
        StoreError: the file cannot be opened, or its schema is newer than this build.
    """

    what = "store"
    version_table = "schema_version"
    error = StoreError

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        checkpoint: Callable[[str], None] | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._checkpoint = checkpoint or (lambda _name: None)
        super().__init__(path, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, schema_version={self.schema_version})"

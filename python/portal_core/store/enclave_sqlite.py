"""The enclave store on SQLite (the standard library's ``sqlite3``): an
:class:`~portal_core.enclave.store.EnclaveStore` holding the records of
:mod:`portal_core.enclave.records`.

* WAL journal, ``synchronous=FULL`` (a committed transaction, a spent vault try among
  them, survives a crash or power loss), foreign keys on, ``secure_delete`` on (deleted
  content is overwritten with zeros, not left in free pages), a busy timeout so writers
  from other threads and processes wait their turn.
* One connection per thread. Every change runs in a ``BEGIN IMMEDIATE`` transaction: the
  write lock is taken before the first read, so read-check-write sequences (a challenge
  taken, a vault try spent) cannot interleave, across threads or processes.
* Its own tables, all named ``enclave_*``, and its own schema history
  (:mod:`portal_core.store.enclave_migrations`, recorded in ``enclave_schema_version``):
  it can share a database file with the custodian store without touching that store's
  tables or migrations. A new database file is created mode 0600.

The connections, transactions and file handling are :class:`~portal_core.store.database.
SqliteDatabase`'s; the enclave's SQL is :class:`~portal_core.store.enclave_tables.
EnclaveTables`', shared with PostgreSQL. Import :class:`SqliteEnclaveStore`
from :mod:`portal_core.enclave`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import suppress

from portal_core.enclave.errors import EnclaveStoreError
from portal_core.store.database import Migration, SqliteDatabase
from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS
from portal_core.store.enclave_tables import EnclaveTables

__all__ = ["SqliteEnclaveStore"]


class SqliteEnclaveStore(SqliteDatabase, EnclaveTables):
    """An :class:`~portal_core.enclave.store.EnclaveStore` in one SQLite file.

    ``path``: the database file (created if missing; it may be the custodian store's
    file). ``timeout``: seconds a writer waits for another's transaction before failing.
    ``migrations``: the schema history (tests pass a longer one to exercise an upgrade).

    Raises:
        EnclaveStoreError: the file cannot be opened, or its enclave schema is newer than
            this build.
    """

    what = "enclave store"
    version_table = "enclave_schema_version"
    error = EnclaveStoreError
    # Deleted content (a destroyed vault secret) is overwritten with zeros, not left in
    # free pages.
    pragmas = ("PRAGMA secure_delete = ON",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        migrations: Sequence[Migration] = ENCLAVE_MIGRATIONS,
    ) -> None:
        super().__init__(path, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"SqliteEnclaveStore({self.path!r})"

    def _scrub_journal(self) -> None:
        """Best effort, after a secret was deleted: copy the WAL into the database file and
        truncate the WAL, so the old page images that held the secret leave both files
        (``secure_delete`` already zeroed it in the new ones). Another connection reading
        at this moment can keep the WAL from being truncated; the next scrub gets it. The
        deletion is committed by then, so a failure here is not the caller's."""
        with suppress(EnclaveStoreError):
            self.truncate_wal()

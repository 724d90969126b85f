"""The enclave store on PostgreSQL: an :class:`~portal_core.enclave.store.EnclaveStore`
beside the custodian's tables in the same database, with its own schema history
(``enclave_schema_version``), as :class:`~portal_core.store.enclave_sqlite.SqliteEnclaveStore`
shares the custodian's file. Its methods, and how they keep the enclave's security on
PostgreSQL, are :class:`~portal_core.store.enclave_tables.EnclaveTables`'.

What SQLite's ``secure_delete`` and WAL truncation do for a destroyed secret has no
counterpart here: a deleted or overwritten row stays in the table's pages until VACUUM
reuses them, and in the write-ahead log and its archives until they are recycled. The
values are KMS-sealed blobs, useless without the HSM; the database's files, backups and
archives must be kept as private as the HSM's.
"""

from __future__ import annotations

from collections.abc import Sequence

from portal_core.enclave.errors import EnclaveStoreError
from portal_core.store.database import Migration
from portal_core.store.enclave_tables import EnclaveTables
from portal_core.store.postgres.database import DEFAULT_POOL_SIZE, PostgresDatabase
from portal_core.store.postgres.migrations import ENCLAVE_MIGRATIONS

__all__ = ["PostgresEnclaveStore"]


class PostgresEnclaveStore(PostgresDatabase, EnclaveTables):
    """An :class:`~portal_core.enclave.store.EnclaveStore` in one PostgreSQL database (it
    may be the custodian store's). ``dsn``, ``pool_size``, ``timeout``, ``migrations``: as
    :class:`~portal_core.store.postgres.PostgresStore`'s.

    Raises:
        EnclaveStoreError: the database cannot be reached, or its enclave schema is newer
            than this build.
    """

    what = "enclave store"
    version_table = "enclave_schema_version"
    error = EnclaveStoreError

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = 30.0,
        migrations: Sequence[Migration] = ENCLAVE_MIGRATIONS,
    ) -> None:
        super().__init__(dsn, pool_size=pool_size, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"PostgresEnclaveStore({self.where!r})"

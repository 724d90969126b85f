"""The custodian store on PostgreSQL (psycopg 3 and its connection pool): the store of a
service with several worker processes on several machines.

Its SQL, and the row locks that give its transactions SQLite's serial outcomes, are
:mod:`portal_core.store.custodian_tables`' (shared with the SQLite store;
:mod:`portal_core.store.postgres.database` says why and in which order the locks are taken).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from portal_core.store.custodian_interface import StoreError
from portal_core.store.custodian_tables import CustodianTables
from portal_core.store.database import Migration
from portal_core.store.postgres.database import DEFAULT_POOL_SIZE
from portal_core.store.postgres.migrations import MIGRATIONS
from portal_core.store.postgres.requests import PostgresRequestTables
from portal_core.store.postgres.tenants import PostgresTenantTables

__all__ = ["PostgresStore"]


class PostgresStore(PostgresTenantTables, PostgresRequestTables, CustodianTables):
    """A :class:`~portal_core.store.custodian_interface.CustodianStore` and a
    :class:`~portal_core.store.tenant_interface.TenantStore` in one PostgreSQL database,
    with the HTTP service's request tables: what :class:`~portal_core.store.SqliteStore`
    is, on PostgreSQL.

    ``dsn``: a libpq connection string or ``postgresql://`` URL (its password never appears
    in a message or repr; libpq also reads ``PGPASSWORD`` and ``~/.pgpass``).
    ``pool_size``: connections kept at most. ``timeout``: seconds to connect, to wait for a
    free connection and to wait for a row lock before failing. ``checkpoint``: called with
    a step name between the statements of multi-statement transactions (the SQLite store's
    names); tests use it to crash a transaction half-way. ``migrations``: the schema
    history (tests pass a longer one to exercise an upgrade).

    Raises:
        StoreError: the database cannot be reached, or its schema is newer than this build.
    """

    what = "store"
    version_table = "schema_version"
    error = StoreError
    _json_param = "?::jsonb"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = 30.0,
        checkpoint: Callable[[str], None] | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self._checkpoint = checkpoint or (lambda _name: None)
        super().__init__(dsn, pool_size=pool_size, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

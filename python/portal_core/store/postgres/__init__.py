"""The stores on PostgreSQL (psycopg 3 and ``psycopg_pool``): for a custodian whose service
runs several worker processes on several machines against one database. SQLite
(:class:`~portal_core.store.SqliteStore`) stays the embedded default.

    from portal_core.store.postgres import PostgresEnclaveStore, PostgresStore

    store = PostgresStore("postgresql://portal@db.internal/portal", pool_size=10)
    enclave_store = PostgresEnclaveStore("postgresql://portal@db.internal/portal")

Each implements the same interface as its SQLite twin (:class:`~portal_core.store.
CustodianStore` and :class:`~portal_core.store.TenantStore` with the request tables;
:class:`~portal_core.enclave.store.EnclaveStore`), with the same schema history
(``migrations.py``), applied on open under an advisory lock. How their transactions keep
SQLite's serial outcomes: ``database.py``. Needs the ``postgres`` extra
(``pip install 'portal-core-mpc[postgres]'``).

* ``database.py``: :class:`PostgresDatabase`, the pool, transactions and migrations, and
  its side of the dialect seam (``?`` placeholders sent as ``%s``, row locks:
  :mod:`portal_core.store.portable`);
* ``migrations.py``: the schemas, version for version the SQLite ones;
* ``custodian.py``, ``tenants.py``, ``requests.py``: :class:`PostgresStore`;
* ``enclave.py``: :class:`PostgresEnclaveStore`;

each of the last two a few lines over the SQL both engines share (``store/*_tables.py``).
"""

from __future__ import annotations

from portal_core import DISTRIBUTION

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ModuleNotFoundError as e:
    raise ImportError(
        f"{e}; the PostgreSQL stores need the postgres extra: "
        f"pip install '{DISTRIBUTION}[postgres]'"
    ) from None

from portal_core.store.postgres.custodian import PostgresStore
from portal_core.store.postgres.database import DEFAULT_POOL_SIZE, PostgresDatabase, describe_dsn
from portal_core.store.postgres.enclave import PostgresEnclaveStore

__all__ = [
    "DEFAULT_POOL_SIZE",
    "PostgresDatabase",
    "PostgresEnclaveStore",
    "PostgresStore",
    "describe_dsn",
]

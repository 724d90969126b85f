"""Persistence: every SQL statement of portal-core lives in this package.

The custodian's records sit behind one interface, :class:`CustodianStore`.
:class:`SqliteStore` (standard-library ``sqlite3``, WAL, versioned migrations) is the
embedded default; :class:`PostgresStore` implements the same interface on PostgreSQL, for
services on several machines (the ``postgres`` extra; loaded on first use). Records and the
schema: ``docs/backup.md``.

    from portal_core.store import SqliteStore
    store = SqliteStore("custodian.db")

The files, by layer and purpose:

* ``database.py``: :class:`SqliteDatabase`, the connections, transactions, migrations and
  private file modes both SQLite stores share; ``rows.py``: building records from rows;
  ``portable.py``: the dialect seam through which each store's SQL, in the ``*_tables.py``
  modules, is written once for SQLite and PostgreSQL.
* ``custodian_interface.py``, ``custodian_records.py``: the custodian's interface and
  records (protocol sessions included, so any worker process serves any request);
  ``custodian_tables.py``: its SQL; ``custodian_sqlite.py``, ``custodian_migrations.py``:
  its SQLite store and schema; ``request_tables.py``, ``request_sqlite.py``: the HTTP
  service's rate limits and idempotency keys, in the same file and schema.
* ``tenant_interface.py``, ``tenant_tables.py``, ``tenant_sqlite.py``: tenants, API key
  hashes, the audit trail and the tenants' webhooks (:class:`TenantStore`), in the
  custodian's file and schema; callers use :mod:`portal_core.tenants` (which also exports
  their errors) and :class:`portal_core.webhooks.TenantWebhooks`.
* ``enclave_tables.py``, ``enclave_sqlite.py``, ``enclave_migrations.py``: the SQL, the
  SQLite store and the schema of the enclave's
  :class:`~portal_core.enclave.store.EnclaveStore` (records in
  :mod:`portal_core.enclave.records`). Import :class:`SqliteEnclaveStore` from
  :mod:`portal_core.enclave`: it is not re-exported here, since the enclave store needs
  the enclave's records and errors, and this package loads before them.
* ``postgres/``: the same stores on PostgreSQL (:class:`PostgresStore`, and
  ``portal_core.store.postgres.PostgresEnclaveStore``), with the same schema versions and
  the same ``*_tables.py`` SQL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from portal_core.store.custodian_interface import CustodianStore, LockRef, StoreError
from portal_core.store.custodian_migrations import LATEST_VERSION, MIGRATIONS
from portal_core.store.custodian_records import (
    BACKUP_METHODS,
    CURVES,
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    BackupMode,
    BackupRecord,
    ClientRecord,
    EjectWindow,
    KeyKind,
    LockRecord,
    PairRecord,
    PairStatus,
    SessionRecord,
    SessionStage,
    SigningShareRecord,
    TenantRecord,
    WalletRecord,
)
from portal_core.store.custodian_sqlite import SqliteStore
from portal_core.store.database import Migration
from portal_core.store.tenant_interface import TenantStore, TenantWebhookRecord

if TYPE_CHECKING:
    from portal_core.store.postgres import PostgresStore

# The custodian's store file in a service's data directory (``portal-core serve`` and
# ``portal-core tenants create --data-dir``).
STORE_FILE = "custodian.db"

__all__ = [
    "BACKUP_METHODS",
    "CURVES",
    "LATEST_VERSION",
    "MIGRATIONS",
    "STORE_FILE",
    "ApiKeyRecord",
    "AuditEntry",
    "AuditEvent",
    "BackupMode",
    "BackupRecord",
    "ClientRecord",
    "CustodianStore",
    "EjectWindow",
    "KeyKind",
    "LockRecord",
    "LockRef",
    "Migration",
    "PairRecord",
    "PairStatus",
    "PostgresStore",
    "SessionRecord",
    "SessionStage",
    "SigningShareRecord",
    "SqliteStore",
    "StoreError",
    "TenantRecord",
    "TenantStore",
    "TenantWebhookRecord",
    "WalletRecord",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: it needs psycopg (the postgres extra), which SQLite users lack.
    if name == "PostgresStore":
        return importlib.import_module("portal_core.store.postgres").PostgresStore
    raise AttributeError(f"module 'portal_core.store' has no attribute {name!r}")

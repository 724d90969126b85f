"""Durable custodian records behind one interface, :class:`CustodianStore`.

:class:`SqliteStore` (standard-library ``sqlite3``, WAL, versioned migrations) is the embedded
default; a PostgreSQL store will implement the same interface. Records and the schema:
``docs/backup.md``.

    from portal_core.store import SqliteStore
    store = SqliteStore("custodian.db")
"""

from __future__ import annotations

from portal_core.store.base import CustodianStore, LockRef, StoreError
from portal_core.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from portal_core.store.records import (
    BACKUP_METHODS,
    CURVES,
    BackupMode,
    BackupRecord,
    ClientRecord,
    EjectWindow,
    LockRecord,
    PairRecord,
    PairStatus,
    SigningShareRecord,
    WalletRecord,
)
from portal_core.store.sqlite import SqliteStore

__all__ = [
    "BACKUP_METHODS",
    "CURVES",
    "LATEST_VERSION",
    "MIGRATIONS",
    "BackupMode",
    "BackupRecord",
    "ClientRecord",
    "CustodianStore",
    "EjectWindow",
    "LockRecord",
    "LockRef",
    "Migration",
    "PairRecord",
    "PairStatus",
    "SigningShareRecord",
    "SqliteStore",
    "StoreError",
    "WalletRecord",
]

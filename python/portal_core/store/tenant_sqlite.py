"""The tenant tables on SQLite: the methods of :mod:`portal_core.store.tenant_tables` over
:class:`~portal_core.store.database.SqliteDatabase`.
"""

from __future__ import annotations

from portal_core.store.database import SqliteDatabase
from portal_core.store.tenant_tables import MAX_AUDIT_LIMIT, TenantTables

__all__ = ["MAX_AUDIT_LIMIT", "SqliteTenantTables"]


class SqliteTenantTables(SqliteDatabase, TenantTables):
    """The :class:`~portal_core.store.tenant_interface.TenantStore` methods on SQLite."""

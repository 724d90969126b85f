"""The tenant tables on PostgreSQL: the methods of :mod:`portal_core.store.tenant_tables` over
:class:`~portal_core.store.postgres.database.PostgresDatabase`; tenant names are unique by an
expression index (``TENANT_NAME_KEY``) where SQLite's column folds case itself.
"""

from __future__ import annotations

from portal_core.store.postgres.database import PostgresDatabase
from portal_core.store.postgres.migrations import TENANT_NAME_KEY
from portal_core.store.tenant_tables import TenantTables

__all__ = ["PostgresTenantTables"]


class PostgresTenantTables(PostgresDatabase, TenantTables):
    """The :class:`~portal_core.store.tenant_interface.TenantStore` methods on PostgreSQL."""

    name_key = f"({TENANT_NAME_KEY})"
    name_param = 'lower(?::text COLLATE "C")'

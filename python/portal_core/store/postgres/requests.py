"""The HTTP service's shared request state on PostgreSQL: the tables of
:mod:`portal_core.store.request_tables` over
:class:`~portal_core.store.postgres.database.PostgresDatabase`.
"""

from __future__ import annotations

from portal_core.store.postgres.database import PostgresDatabase
from portal_core.store.request_tables import RequestTables

__all__ = ["PostgresRequestTables"]


class PostgresRequestTables(PostgresDatabase, RequestTables):
    """Rate limits and idempotency keys on PostgreSQL (see
    :mod:`portal_core.store.request_tables`)."""

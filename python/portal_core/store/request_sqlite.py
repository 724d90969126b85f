"""The HTTP service's shared request state on SQLite: the tables of
:mod:`portal_core.store.request_tables` over :class:`~portal_core.store.database.SqliteDatabase`.
"""

from __future__ import annotations

from portal_core.store.database import SqliteDatabase
from portal_core.store.request_tables import IdempotentReplay, RateDecision, RequestTables

__all__ = ["IdempotentReplay", "RateDecision", "SqliteRequestTables"]


class SqliteRequestTables(SqliteDatabase, RequestTables):
    """Rate limits and idempotency keys on SQLite (see :mod:`portal_core.store.request_tables`)."""

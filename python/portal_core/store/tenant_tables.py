"""The tenant tables, written once for both engines: tenants, API key hashes, the audit trail
and the tenants' webhooks.

A base class of :class:`~portal_core.store.custodian_sqlite.SqliteStore` and of
:class:`~portal_core.store.postgres.PostgresStore` (through ``SqliteTenantTables`` and
``PostgresTenantTables``; the tables live in the custodian's schema, version 2 and 3 of
:mod:`portal_core.store.custodian_migrations` and of :mod:`portal_core.store.postgres.
migrations`), kept apart so the custodian's SQL and the tenants' each stay readable.

Where SQLite's serial transactions keep a rule, a row lock keeps it on PostgreSQL
(``self.for_no_key_update``, see :mod:`portal_core.store.portable`): a rotation locks its
client's row (two rotations at once leave one live key, the later one), a revocation its
tenant's row (two revocations at once cannot both see another live admin key). A taken
tenant name or client id is found by the unique index itself (``INSERT ... ON CONFLICT``),
so two tenants of one name created at once are one tenant and one refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from portal_core.store.custodian_interface import StoreError
from portal_core.store.custodian_records import (
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    ClientRecord,
    KeyKind,
    TenantRecord,
)
from portal_core.store.portable import Connection, PortableTables
from portal_core.store.rows import record_from_row
from portal_core.store.tenant_interface import (
    LastAdminKey,
    TenantExists,
    TenantWebhookRecord,
    UnknownClient,
    UnknownKey,
    UnknownTenant,
)

__all__ = ["MAX_AUDIT_LIMIT", "TenantTables"]

# The most events one read returns: a caller pages with ``since``.
MAX_AUDIT_LIMIT = 1000

# Only these constant column lists (and the class constants of the dialect) are
# interpolated into the SQL below; values are always bound.
_KEY_COLUMNS = "key_id, tenant_id, client_id, kind, secret_hash, created_at, revoked_at"
_EVENT_COLUMNS = "event_id, tenant_id, at, kind, subject, detail"
_WEBHOOK_COLUMNS = "tenant_id, base_url, sealed_secret, updated_at"


def _key(row: Any) -> ApiKeyRecord:
    return record_from_row(ApiKeyRecord, row, kind=KeyKind)


def _event(row: Any) -> AuditEvent:
    return record_from_row(AuditEvent, row, detail=json.loads)


def _detail(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))


def _check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_AUDIT_LIMIT}")
    return limit


class TenantTables(PortableTables):
    """The :class:`~portal_core.store.tenant_interface.TenantStore` methods."""

    # The unique key of tenant names (ASCII case folded) and a name to look up by it: the
    # column itself on SQLite, whose NOCASE collation folds (PostgreSQL: an expression).
    name_key = "name"
    name_param = "?"

    @staticmethod
    def _append(conn: Connection, entry: AuditEntry) -> int:
        row = conn.execute(
            "INSERT INTO audit_events (tenant_id, at, kind, subject, detail) "
            "VALUES (?, ?, ?, ?, ?) RETURNING event_id",
            (entry.tenant_id, entry.at, entry.kind, entry.subject, _detail(entry.detail)),
        ).fetchone()
        assert row is not None
        return int(row["event_id"])

    @staticmethod
    def _insert_key(conn: Connection, key: ApiKeyRecord) -> None:
        conn.execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key.key_id,
                key.tenant_id,
                key.client_id,
                str(key.kind),
                key.secret_hash,
                key.created_at,
                key.revoked_at,
            ),
        )

    @staticmethod
    def _require_tenant(conn: Connection, tenant_id: str) -> None:
        if not conn.execute("SELECT 1 FROM tenants WHERE tenant_id = ?", (tenant_id,)).fetchone():
            raise UnknownTenant("no tenant has that id")

    # -- tenants ---------------------------------------------------------------------------

    def add_tenant(
        self, tenant: TenantRecord, admin_key: ApiKeyRecord, audit: Sequence[AuditEntry]
    ) -> None:
        if admin_key.kind is not KeyKind.ADMIN or admin_key.tenant_id != tenant.tenant_id:
            raise ValueError("a tenant's first key must be an admin key of that tenant")
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES (?, ?, ?) "
                f"ON CONFLICT ({self.name_key}) DO NOTHING",
                (tenant.tenant_id, tenant.name, tenant.created_at),
            )
            if cur.rowcount != 1:
                raise TenantExists(f"a tenant named {tenant.name!r} already exists")
            self._insert_key(conn, admin_key)
            for entry in audit:
                self._append(conn, entry)

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        row = self.query_one("SELECT * FROM tenants WHERE tenant_id = ?", (tenant_id,))
        return None if row is None else record_from_row(TenantRecord, row)

    def tenant_by_name(self, name: str) -> TenantRecord | None:
        row = self.query_one(
            f"SELECT * FROM tenants WHERE {self.name_key} = {self.name_param}", (name,)
        )
        return None if row is None else record_from_row(TenantRecord, row)

    # -- keys and clients ------------------------------------------------------------------

    def add_api_key(self, key: ApiKeyRecord, audit: Sequence[AuditEntry]) -> None:
        if key.kind is not KeyKind.ADMIN:
            raise ValueError("client keys are recorded with their client, or by a rotation")
        with self.transaction() as conn:
            self._require_tenant(conn, key.tenant_id)
            self._insert_key(conn, key)
            for entry in audit:
                self._append(conn, entry)

    def add_tenant_client(
        self, client: ClientRecord, key: ApiKeyRecord, audit: Sequence[AuditEntry]
    ) -> None:
        if (
            client.tenant_id is None
            or key.kind is not KeyKind.CLIENT
            or (key.tenant_id, key.client_id) != (client.tenant_id, client.client_id)
        ):
            raise ValueError("a tenant's client needs a client key of that client and tenant")
        with self.transaction() as conn:
            self._require_tenant(conn, client.tenant_id)
            cur = conn.execute(
                "INSERT INTO clients (client_id, created_at, tenant_id) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id) DO NOTHING",
                (client.client_id, client.created_at, client.tenant_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"client {client.client_id!r} already exists")
            self._insert_key(conn, key)
            for entry in audit:
                self._append(conn, entry)

    def replace_client_key(
        self, key: ApiKeyRecord, now: float, audit: Sequence[AuditEntry]
    ) -> list[str]:
        if key.kind is not KeyKind.CLIENT or key.client_id is None:
            raise ValueError("only a client key replaces a client key")
        with self.transaction() as conn:
            if not conn.execute(
                "SELECT 1 FROM clients WHERE client_id = ? AND tenant_id = ?"
                + self.for_no_key_update,
                (key.client_id, key.tenant_id),
            ).fetchone():
                raise UnknownClient("the tenant has no client of that id")
            old = [
                r["key_id"]
                for r in conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE client_id = ? "
                    "AND kind = 'client' AND revoked_at IS NULL RETURNING key_id",
                    (now, key.client_id),
                )
            ]
            self._insert_key(conn, key)
            for entry in audit:
                self._append(conn, entry)
        return old

    def revoke_api_key(
        self,
        tenant_id: str,
        key_id: str,
        now: float,
        audit: Callable[[ApiKeyRecord], AuditEntry],
    ) -> bool:
        with self.transaction() as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM tenants WHERE tenant_id = ?" + self.for_no_key_update,
                    (tenant_id,),
                ).fetchone()
                is None
            ):
                raise UnknownKey("the tenant has no API key of that id")
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant_id = ?",
                (key_id, tenant_id),
            ).fetchone()
            if row is None:
                raise UnknownKey("the tenant has no API key of that id")
            key = _key(row)
            if key.revoked_at is not None:
                return False
            if key.kind is KeyKind.ADMIN:
                others = conn.execute(
                    "SELECT COUNT(*) AS n FROM api_keys WHERE tenant_id = ? AND kind = 'admin' "
                    "AND revoked_at IS NULL AND key_id != ?",
                    (tenant_id, key_id),
                ).fetchone()
                if others["n"] == 0:
                    raise LastAdminKey(
                        "this is the tenant's last live admin key: create another before "
                        "revoking it"
                    )
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id))
            self._append(conn, audit(key))
        return True

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?"
        row = self.query_one(sql, (key_id,))
        return None if row is None else _key(row)

    def tenant_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        rows = self.query(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id",
            (tenant_id,),
        )
        return [_key(r) for r in rows]

    # -- webhooks --------------------------------------------------------------------------

    def set_tenant_webhook(self, webhook: TenantWebhookRecord, audit: Sequence[AuditEntry]) -> None:
        with self.transaction() as conn:
            self._require_tenant(conn, webhook.tenant_id)
            conn.execute(
                f"INSERT INTO tenant_webhooks ({_WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant_id) DO UPDATE SET base_url = excluded.base_url, "
                "sealed_secret = excluded.sealed_secret, updated_at = excluded.updated_at",
                (webhook.tenant_id, webhook.base_url, webhook.sealed_secret, webhook.updated_at),
            )
            for entry in audit:
                self._append(conn, entry)

    def tenant_webhook(self, tenant_id: str) -> TenantWebhookRecord | None:
        sql = f"SELECT {_WEBHOOK_COLUMNS} FROM tenant_webhooks WHERE tenant_id = ?"
        row = self.query_one(sql, (tenant_id,))
        return None if row is None else record_from_row(TenantWebhookRecord, row)

    def delete_tenant_webhook(self, tenant_id: str, audit: Sequence[AuditEntry]) -> bool:
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM tenant_webhooks WHERE tenant_id = ?", (tenant_id,))
            if cur.rowcount == 0:
                return False
            for entry in audit:
                self._append(conn, entry)
        return True

    # -- audit -----------------------------------------------------------------------------

    def append_audit(self, entry: AuditEntry) -> int:
        with self.transaction() as conn:
            return self._append(conn, entry)

    def audit_events(
        self, tenant_id: str, *, since: float | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        if not isinstance(tenant_id, str):
            # None would read the unattributed events: that is a method of its own.
            raise TypeError("tenant_id must be a string")
        rows = self.query(
            f"SELECT {_EVENT_COLUMNS} FROM audit_events WHERE tenant_id = ? AND at >= ? "
            "ORDER BY at, event_id LIMIT ?",
            (tenant_id, float("-inf") if since is None else since, _check_limit(limit)),
        )
        return [_event(r) for r in rows]

    def unattributed_audit_events(
        self, *, since: float | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        rows = self.query(
            f"SELECT {_EVENT_COLUMNS} FROM audit_events WHERE tenant_id IS NULL AND at >= ? "
            "ORDER BY at, event_id LIMIT ?",
            (float("-inf") if since is None else since, _check_limit(limit)),
        )
        return [_event(r) for r in rows]

"""The interface of the tenant tables every custodian store implements: tenants, API keys
(their hashes), the audit trail and each tenant's webhook (self-managed mode).

Each method that changes state also appends its audit events, in the same transaction: a
change is never recorded without its event, nor an event without its change. The errors
below are re-exported by :mod:`portal_core.tenants`, the module callers use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from portal_core.store.custodian_interface import StoreError
from portal_core.store.custodian_records import (
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    ClientRecord,
    TenantRecord,
)

__all__ = [
    "LastAdminKey",
    "TenantExists",
    "TenantStore",
    "TenantWebhookRecord",
    "UnknownClient",
    "UnknownKey",
    "UnknownTenant",
]


class TenantExists(StoreError):
    """A tenant of that name already exists (names compare without ASCII case)."""


class UnknownTenant(StoreError):
    """No tenant has that id."""


class UnknownClient(StoreError):
    """The tenant has no client of that id (it may exist under another tenant)."""


class UnknownKey(StoreError):
    """The tenant has no API key of that id (it may exist under another tenant)."""


class LastAdminKey(StoreError):
    """Revoking the key would leave its tenant without a live admin key."""


@dataclass(frozen=True)
class TenantWebhookRecord:
    """A tenant's webhook: where the custodian sends its backup shares in self-managed
    mode, and the secret that authenticates its requests, sealed under the custodian's KMS
    (:class:`portal_core.webhooks.TenantWebhooks` seals and opens it; kept out of ``repr``)."""

    tenant_id: str
    base_url: str
    sealed_secret: bytes = field(repr=False)
    updated_at: float


@runtime_checkable
class TenantStore(Protocol):
    """Durable tenants, API key hashes and audit events.

    Raises (every method): :class:`StoreError` when the database fails.
    """

    def add_tenant(
        self, tenant: TenantRecord, admin_key: ApiKeyRecord, audit: Sequence[AuditEntry]
    ) -> None:
        """Records a tenant with its first admin key.

        Raises:
            TenantExists: the name is taken.
        """
        ...

    def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    def tenant_by_name(self, name: str) -> TenantRecord | None: ...

    def get_client(self, client_id: str) -> ClientRecord | None:
        """The client, with its tenant (None for a client recorded without one)."""
        ...

    def add_api_key(self, key: ApiKeyRecord, audit: Sequence[AuditEntry]) -> None:
        """Records an admin key (client keys come with :meth:`add_tenant_client` and
        :meth:`replace_client_key`).

        Raises:
            UnknownTenant: no such tenant.
        """
        ...

    def add_tenant_client(
        self, client: ClientRecord, key: ApiKeyRecord, audit: Sequence[AuditEntry]
    ) -> None:
        """Records a client of ``client.tenant_id`` with its client key.

        Raises:
            UnknownTenant: no such tenant.
            StoreError: the client id exists.
        """
        ...

    def replace_client_key(
        self, key: ApiKeyRecord, now: float, audit: Sequence[AuditEntry]
    ) -> list[str]:
        """Revokes the client's live key(s) at ``now`` and records ``key`` in their place;
        returns the ids revoked.

        Raises:
            UnknownClient: ``key.client_id`` is not a client of ``key.tenant_id``.
        """
        ...

    def revoke_api_key(
        self,
        tenant_id: str,
        key_id: str,
        now: float,
        audit: Callable[[ApiKeyRecord], AuditEntry],
    ) -> bool:
        """Revokes one of the tenant's keys and appends ``audit(key)``; False (and no event)
        if it was revoked already.

        Raises:
            UnknownKey: the tenant has no such key.
            LastAdminKey: it is the tenant's last live admin key.
        """
        ...

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key of that id, revoked or not (the authentication path: a primary key
        lookup)."""
        ...

    def tenant_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        """The tenant's keys, revoked ones included, oldest first."""
        ...

    def append_audit(self, entry: AuditEntry) -> int:
        """Appends one event; returns its id."""
        ...

    def audit_events(
        self, tenant_id: str, *, since: float | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The tenant's events at or after ``since``, oldest first, at most ``limit``."""
        ...

    def unattributed_audit_events(
        self, *, since: float | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The events no tenant could be named for (authentication failures with an unknown
        or unreadable key id): for the operator, never for a tenant."""
        ...

    def set_tenant_webhook(self, webhook: TenantWebhookRecord, audit: Sequence[AuditEntry]) -> None:
        """Records the tenant's webhook, replacing the one it had.

        Raises:
            UnknownTenant: no such tenant.
        """
        ...

    def tenant_webhook(self, tenant_id: str) -> TenantWebhookRecord | None:
        """The tenant's webhook; None when it has none."""
        ...

    def delete_tenant_webhook(self, tenant_id: str, audit: Sequence[AuditEntry]) -> bool:
        """Removes the tenant's webhook and appends ``audit``; False (and no event) when it
        had none."""
        ...

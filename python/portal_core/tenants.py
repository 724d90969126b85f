"""Tenants, their API keys and the audit trail: creating, rotating, revoking and checking
keys, with no HTTP in sight (the server calls this module).

A tenant is one custodian customer (an integrator). It holds **admin keys** (create
clients, authorise ejects, configure webhooks, manage keys) and each of its clients gets a
**client key**, which reaches that client's wallet only. A key is a bearer token::

    pc_adm_<key id>_<secret>     an admin key
    pc_cli_<key id>_<secret>     a client key

* ``key id``: 16 random bytes as 32 lowercase hex digits. Public: it names the key in the
  store, in audit events and in revocations, and is the lookup of every authentication.
  Hex, so the id never contains the ``_`` separator.
* ``secret``: 32 random bytes (256 bits) in unpadded base64url, 43 characters.

The store keeps ``SHA-256("portal-core api key v1" 0 kind 0 key id 0 secret)`` and never
the secret. A plain hash rather than a slow one (Argon2, bcrypt) or a peppered HMAC: the
secret is 256 random bits, not a password, so a stolen table cannot be searched for it
and a work factor or a pepper would add cost (a slow hash on every request) or a secret to
manage for no gain. Binding the kind and id into the hash means a stored hash is worth
nothing under another key id or kind.

:meth:`Tenants.authenticate` parses the key, looks its id up, hashes the secret and
compares with :func:`hmac.compare_digest`; a key id with no row is compared against a
dummy hash, so the work done does not depend on whether the id exists. Every failure
(malformed, unknown id, wrong secret or kind, revoked) raises the same
:class:`AuthenticationFailed` with the same message, and appends an audit event naming the
key id if one could be read, never the secret. The plaintext key exists only in the
:class:`IssuedKey` returned when it is made, and is kept out of its ``repr``.

Clients recorded before tenants existed, or by :meth:`SqliteStore.add_client` (the
library's LocalCustodian), have no tenant: no API key reaches them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from portal_core.exceptions import PortalError
from portal_core.store.custodian_interface import StoreError
from portal_core.store.custodian_records import (
    ApiKeyRecord,
    AuditEntry,
    AuditEvent,
    ClientRecord,
    KeyKind,
    TenantRecord,
)
from portal_core.store.tenant_interface import (
    LastAdminKey,
    TenantExists,
    TenantStore,
    UnknownClient,
    UnknownKey,
    UnknownTenant,
)

__all__ = [
    "AuditKind",
    "AuthenticationFailed",
    "ClientCreated",
    "IssuedKey",
    "KeyKind",
    "LastAdminKey",
    "NotAuthorized",
    "Principal",
    "TenantCreated",
    "TenantExists",
    "Tenants",
    "UnknownClient",
    "UnknownKey",
    "UnknownTenant",
    "hash_secret",
    "require_admin",
    "require_client",
]


class AuthenticationFailed(PortalError):
    """The API key was not accepted. Says nothing of why, on purpose: malformed, unknown,
    revoked and wrong keys all look the same to the caller (the audit trail tells the
    tenant's operator)."""


class NotAuthorized(PortalError):
    """The key is genuine but may not act on that tenant or client."""


class AuditKind(StrEnum):
    """The kinds of audit event this module (and :mod:`portal_core.webhooks`) appends."""

    TENANT_CREATED = "tenant.created"
    ADMIN_KEY_CREATED = "admin_key.created"
    ADMIN_KEY_REVOKED = "admin_key.revoked"
    CLIENT_CREATED = "client.created"
    CLIENT_KEY_ROTATED = "client_key.rotated"
    CLIENT_KEY_REVOKED = "client_key.revoked"
    AUTHENTICATION_FAILED = "auth.failed"
    # Appended by portal_core.webhooks.TenantWebhooks (detail: the base URL, never the secret).
    WEBHOOK_CONFIGURED = "webhook.configured"
    WEBHOOK_REMOVED = "webhook.removed"


_PREFIX = "pc"
_VERSION_TAG = b"portal-core api key v1"
_TAGS = {KeyKind.ADMIN: "adm", KeyKind.CLIENT: "cli"}
_KINDS = {tag: kind for kind, tag in _TAGS.items()}
_KEY_ID_BYTES = 16
_SECRET_BYTES = 32
# The whole key, and (for the audit trail) its readable head when the secret is damaged.
_KEY = re.compile(r"pc_(adm|cli)_([0-9a-f]{32})_([A-Za-z0-9_-]{43})", re.ASCII)
_HEAD = re.compile(r"pc_(adm|cli)_([0-9a-f]{32})(?:_|\Z)", re.ASCII)
# Longer input is not looked at (a well-formed key is 82 characters).
_MAX_KEY_CHARS = 256
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


def hash_secret(kind: KeyKind, key_id: str, secret: str) -> bytes:
    """The stored form of a key: SHA-256 of the secret, bound to the key's kind and id."""
    return hashlib.sha256(
        b"\0".join((_VERSION_TAG, str(kind).encode(), key_id.encode(), secret.encode("ascii")))
    ).digest()


# What a key id with no row is compared against: the hash of a secret nobody knows.
_DUMMY_KEY_ID = "0" * (2 * _KEY_ID_BYTES)
_DUMMY_HASH = hash_secret(
    KeyKind.CLIENT,
    _DUMMY_KEY_ID,
    base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode(),
)


@dataclass(frozen=True)
class IssuedKey:
    """A key just made. ``api_key`` is the only copy of the secret anywhere: hand it to its
    holder once; it is not in ``repr`` or ``str``."""

    key_id: str
    kind: KeyKind
    tenant_id: str
    client_id: str | None
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class TenantCreated:
    tenant_id: str
    name: str
    admin_key: IssuedKey


@dataclass(frozen=True)
class ClientCreated:
    tenant_id: str
    client_id: str
    client_key: IssuedKey


@dataclass(frozen=True)
class Principal:
    """Who a genuine key speaks for."""

    tenant_id: str
    kind: KeyKind
    # The client a client key reaches; None for an admin key.
    client_id: str | None
    key_id: str


def require_admin(principal: Principal, tenant_id: str) -> None:
    """Refuses unless ``principal`` is an admin key of ``tenant_id``.

    Raises:
        NotAuthorized: a client key, or another tenant's admin key.
    """
    if principal.kind is not KeyKind.ADMIN or not hmac.compare_digest(
        principal.tenant_id.encode(), tenant_id.encode()
    ):
        raise NotAuthorized("this API key may not manage that tenant")


def require_client(principal: Principal, client_id: str) -> None:
    """Refuses unless ``principal`` is the client key of ``client_id`` itself.

    Raises:
        NotAuthorized: an admin key, or another client's key.
    """
    if (
        principal.kind is not KeyKind.CLIENT
        or principal.client_id is None
        or not hmac.compare_digest(principal.client_id.encode(), client_id.encode())
    ):
        raise NotAuthorized("this API key may not act for that client")


def _parse(api_key: object) -> tuple[KeyKind, str, str] | None:
    if not isinstance(api_key, str) or len(api_key) > _MAX_KEY_CHARS:
        return None
    m = _KEY.fullmatch(api_key)
    return None if m is None else (_KINDS[m[1]], m[2], m[3])


def _readable_key_id(api_key: object) -> str | None:
    """The key id of a key whose secret is damaged (truncated, say), for the audit trail."""
    if not isinstance(api_key, str) or len(api_key) > _MAX_KEY_CHARS:
        return None
    m = _HEAD.match(api_key)
    return None if m is None else m[2]


class Tenants:
    """Tenant, key and audit operations over a :class:`~portal_core.store.TenantStore`
    (a :class:`~portal_core.store.SqliteStore`).

    ``clock``: seconds since the epoch, for record and event times (tests move it).

    Operations that act for someone take ``by``, the :class:`Principal` of the admin key
    used: it is checked with :func:`require_admin` and its key id goes into the audit
    event. ``by=None`` is the operator (the command line), trusted.
    """

    def __init__(self, store: TenantStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def __repr__(self) -> str:
        return f"Tenants({self.store!r})"

    # -- making keys -----------------------------------------------------------------------

    @staticmethod
    def _new_key(
        kind: KeyKind, tenant_id: str, client_id: str | None, now: float
    ) -> tuple[IssuedKey, ApiKeyRecord]:
        key_id = secrets.token_hex(_KEY_ID_BYTES)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=")
        text = secret.decode("ascii")
        issued = IssuedKey(
            key_id, kind, tenant_id, client_id, f"{_PREFIX}_{_TAGS[kind]}_{key_id}_{text}"
        )
        record = ApiKeyRecord(
            key_id=key_id,
            tenant_id=tenant_id,
            client_id=client_id,
            kind=kind,
            secret_hash=hash_secret(kind, key_id, text),
            created_at=now,
        )
        return issued, record

    @staticmethod
    def _by(by: Principal | None, tenant_id: str) -> dict[str, str]:
        if by is None:
            return {"by": "operator"}
        require_admin(by, tenant_id)
        return {"by": by.key_id}

    def create_tenant(self, name: str) -> TenantCreated:
        """A new tenant and its first admin key (shown once, in the result).

        Raises:
            ValueError: the name is empty, longer than 100 characters, has control
                characters or surrounding spaces.
            TenantExists: the name is taken (compared without ASCII case).
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name != name.strip():
            raise ValueError(
                "a tenant name must be 1 to 100 characters, with no control characters and "
                "no leading or trailing spaces"
            )
        now = self.clock()
        tenant_id = str(uuid.uuid4())
        issued, record = self._new_key(KeyKind.ADMIN, tenant_id, None, now)
        self.store.add_tenant(
            TenantRecord(tenant_id, name, now),
            record,
            [
                AuditEntry(tenant_id, now, AuditKind.TENANT_CREATED, tenant_id, {"name": name}),
                AuditEntry(
                    tenant_id, now, AuditKind.ADMIN_KEY_CREATED, issued.key_id, {"by": "operator"}
                ),
            ],
        )
        return TenantCreated(tenant_id, name, issued)

    def create_admin_key(self, tenant_id: str, *, by: Principal | None = None) -> IssuedKey:
        """Another admin key of the tenant (shown once, in the result).

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            UnknownTenant: no such tenant.
        """
        detail = self._by(by, tenant_id)
        now = self.clock()
        issued, record = self._new_key(KeyKind.ADMIN, tenant_id, None, now)
        self.store.add_api_key(
            record,
            [AuditEntry(tenant_id, now, AuditKind.ADMIN_KEY_CREATED, issued.key_id, detail)],
        )
        return issued

    def create_client(self, tenant_id: str, *, by: Principal | None = None) -> ClientCreated:
        """A new client of the tenant and its client key (shown once, in the result).

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            UnknownTenant: no such tenant.
        """
        detail = self._by(by, tenant_id)
        now = self.clock()
        client_id = str(uuid.uuid4())
        issued, record = self._new_key(KeyKind.CLIENT, tenant_id, client_id, now)
        self.store.add_tenant_client(
            ClientRecord(client_id, now, tenant_id),
            record,
            [
                AuditEntry(
                    tenant_id,
                    now,
                    AuditKind.CLIENT_CREATED,
                    client_id,
                    {**detail, "key_id": issued.key_id},
                )
            ],
        )
        return ClientCreated(tenant_id, client_id, issued)

    def rotate_client_key(
        self, tenant_id: str, client_id: str, *, by: Principal | None = None
    ) -> IssuedKey:
        """A new key for the client; its previous key is revoked in the same transaction.

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            UnknownClient: the tenant has no such client.
        """
        detail = self._by(by, tenant_id)
        now = self.clock()
        issued, record = self._new_key(KeyKind.CLIENT, tenant_id, client_id, now)

        # The revoked ids are known only inside the transaction; the event names the new key.
        self.store.replace_client_key(
            record,
            now,
            [
                AuditEntry(
                    tenant_id,
                    now,
                    AuditKind.CLIENT_KEY_ROTATED,
                    client_id,
                    {**detail, "key_id": issued.key_id},
                )
            ],
        )
        return issued

    def revoke_key(self, tenant_id: str, key_id: str, *, by: Principal | None = None) -> bool:
        """Revokes one of the tenant's keys; False if it was revoked already.

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            UnknownKey: the tenant has no key of that id.
            LastAdminKey: it is the tenant's last live admin key.
        """
        detail = self._by(by, tenant_id)
        now = self.clock()

        def event(key: ApiKeyRecord) -> AuditEntry:
            if key.kind is KeyKind.ADMIN:
                return AuditEntry(tenant_id, now, AuditKind.ADMIN_KEY_REVOKED, key.key_id, detail)
            return AuditEntry(
                tenant_id,
                now,
                AuditKind.CLIENT_KEY_REVOKED,
                key.key_id,
                {**detail, "client_id": key.client_id},
            )

        return self.store.revoke_api_key(tenant_id, key_id, now, event)

    # -- checking keys ---------------------------------------------------------------------

    def authenticate(self, api_key: str) -> Principal:
        """Who ``api_key`` speaks for.

        Raises:
            AuthenticationFailed: the key is malformed, unknown, revoked or wrong (which of
                these is told to the audit trail only).
        """
        parsed = _parse(api_key)
        kind, key_id, secret = parsed if parsed else (KeyKind.CLIENT, _DUMMY_KEY_ID, "")
        # Always one lookup, one hash and one comparison, whatever failed first.
        record = self.store.api_key(key_id)
        expected = record.secret_hash if record is not None else _DUMMY_HASH
        matches = hmac.compare_digest(expected, hash_secret(kind, key_id, secret))
        if parsed is None:
            reason = "malformed"
        elif record is None:
            reason = "unknown key"
        elif not matches or record.kind is not kind:
            reason = "wrong secret"
        elif record.revoked_at is not None:
            reason = "revoked"
        else:
            return Principal(record.tenant_id, record.kind, record.client_id, record.key_id)
        self._record_failure(record, key_id if parsed else _readable_key_id(api_key), reason)
        raise AuthenticationFailed("the API key was not accepted")

    def _record_failure(
        self, record: ApiKeyRecord | None, head_id: str | None, reason: str
    ) -> None:
        now = self.clock()
        if record is not None:
            entry = AuditEntry(
                record.tenant_id,
                now,
                AuditKind.AUTHENTICATION_FAILED,
                record.key_id,
                {"reason": reason, "kind": str(record.kind)},
            )
        else:
            # No tenant to tell: an unknown id, or none readable. A damaged key whose id is
            # readable is filed under that id's tenant when the id exists.
            owner = self.store.api_key(head_id) if head_id is not None else None
            entry = AuditEntry(
                owner.tenant_id if owner is not None else None,
                now,
                AuditKind.AUTHENTICATION_FAILED,
                head_id,
                {"reason": reason},
            )
        try:
            self.store.append_audit(entry)
        except StoreError:
            # The caller is refused either way; a failed audit write must not turn the
            # refusal into a different error an attacker could tell apart.
            pass

    # -- reading the trail -----------------------------------------------------------------

    def audit_events(
        self,
        tenant_id: str,
        *,
        since: float | None = None,
        limit: int = 100,
        by: Principal | None = None,
    ) -> list[AuditEvent]:
        """The tenant's audit events at or after ``since``, oldest first (never another
        tenant's).

        Raises:
            NotAuthorized: ``by`` is not an admin key of the tenant.
            ValueError: ``limit`` is not from 1 to 1000.
        """
        if by is not None:
            require_admin(by, tenant_id)
        return self.store.audit_events(tenant_id, since=since, limit=limit)

    def require_tenant_client(self, principal: Principal, client_id: str) -> None:
        """Refuses unless ``principal`` is the client's own key or an admin key of the
        client's tenant.

        Raises:
            NotAuthorized: otherwise (also when the client does not exist, so the answer
                does not tell other tenants which client ids exist).
        """
        if principal.kind is KeyKind.CLIENT:
            require_client(principal, client_id)
            return
        client_tenant = self._client_tenant(client_id)
        if client_tenant is None:
            raise NotAuthorized("this API key may not act for that client")
        require_admin(principal, client_tenant)

    def _client_tenant(self, client_id: str) -> str | None:
        client = self.store.get_client(client_id)
        return None if client is None else client.tenant_id

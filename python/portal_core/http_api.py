"""The custodian's HTTP API as data: one :class:`Endpoint` per operation, shared by the
server (:mod:`portal_core.server.routes` binds a handler to each), the client SDK
(:mod:`portal_core.client`) and the OpenAPI document (:mod:`portal_core.server.openapi`),
so the three cannot disagree on a method, a path or a body.

Bodies are the frozen dataclasses below and those of :mod:`portal_core.backup.api`, in their
JSON form (:mod:`portal_core.wire`). Who may call an endpoint is its ``auth``: a client key
(``/v1/clients/me/...``, ``/v1/sessions/...``, ``/v1/enclave/...``: the caller's own
wallet, sessions and enclave records only) or an admin key (``/v1/custodians/me/...``: the
tenant's own clients only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal_core.backup.api import PairInfo, SessionOffer, WalletInfo
from portal_core.store import KeyKind

__all__ = [
    "ENDPOINTS",
    "AbortResult",
    "AdminKeyCreated",
    "AuditEventInfo",
    "AuditEvents",
    "BackupRequest",
    "CipherText",
    "ClientCreatedInfo",
    "ClientInfo",
    "ClientKeyRotated",
    "CredentialResult",
    "EjectAuthorized",
    "EjectRequest",
    "EjectShares",
    "Endpoint",
    "HasCredentials",
    "KeyRead",
    "KeygenRequest",
    "KeysDeleted",
    "LoginRequest",
    "LoginWrite",
    "Messages",
    "Pairs",
    "RecoveryRequest",
    "Removed",
    "Revoked",
    "StatusUpdate",
    "VaultEnroll",
    "VaultRelease",
    "VaultSecret",
    "VaultStatusInfo",
    "WebAuthnResponse",
    "WebhookInfo",
    "WebhookSettings",
    "endpoint",
]


# -- bodies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    """Who a client key speaks for."""

    client_id: str
    tenant_id: str


@dataclass(frozen=True)
class KeygenRequest:
    curves: list[str]


@dataclass(frozen=True)
class BackupRequest:
    method: str


@dataclass(frozen=True)
class RecoveryRequest:
    backup_id: str


@dataclass(frozen=True)
class Messages:
    """Protocol messages (commitments or reveals), one per curve."""

    messages: dict[str, bytes]


@dataclass(frozen=True)
class AbortResult:
    discarded: bool


@dataclass(frozen=True)
class StatusUpdate:
    status: str


@dataclass(frozen=True)
class CipherText:
    cipher_text: bytes


@dataclass(frozen=True)
class Pairs:
    pairs: list[PairInfo]


@dataclass(frozen=True)
class EjectRequest:
    backup_id: str


@dataclass(frozen=True)
class EjectShares:
    """The custodian's backup shares, one per curve (secret: only an authorised eject)."""

    shares: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class ClientCreatedInfo:
    """A new client and its key, shown once."""

    client_id: str
    key_id: str
    client_api_key: str = field(repr=False)


@dataclass(frozen=True)
class ClientKeyRotated:
    key_id: str
    client_api_key: str = field(repr=False)


@dataclass(frozen=True)
class AdminKeyCreated:
    key_id: str
    admin_api_key: str = field(repr=False)


@dataclass(frozen=True)
class Revoked:
    revoked: bool


@dataclass(frozen=True)
class EjectAuthorized:
    client_id: str
    expires_at: float


@dataclass(frozen=True)
class WebhookSettings:
    """The integrator's webhooks (self-managed mode): where, and the shared secret."""

    base_url: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class WebhookInfo:
    base_url: str


@dataclass(frozen=True)
class Removed:
    removed: bool


@dataclass(frozen=True)
class AuditEventInfo:
    event_id: int
    at: float
    kind: str
    subject: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditEvents:
    events: list[AuditEventInfo]


@dataclass(frozen=True)
class VaultEnroll:
    access_key: bytes = field(repr=False)
    max_tries: int | None = None
    params: bytes = b""


@dataclass(frozen=True)
class VaultRelease:
    access_key: bytes = field(repr=False)


@dataclass(frozen=True)
class VaultSecret:
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class VaultStatusInfo:
    slot: str
    tries_left: int
    max_tries: int
    destroyed: bool
    params: bytes


@dataclass(frozen=True)
class WebAuthnResponse:
    """A credential's ``toJSON()`` form (WebAuthn L3 §5.1), as the browser made it."""

    response: dict[str, Any]


@dataclass(frozen=True)
class LoginRequest:
    operation: str
    slot: str = "default"


@dataclass(frozen=True)
class LoginWrite:
    response: dict[str, Any]
    key: bytes = field(repr=False)
    mode: str = "server"


@dataclass(frozen=True)
class KeyRead:
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class CredentialResult:
    credential_id: bytes
    alg: int
    fmt: str
    aaguid: str
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    prf_enabled: bool


@dataclass(frozen=True)
class HasCredentials:
    has_credentials: bool


@dataclass(frozen=True)
class KeysDeleted:
    deleted: int


# -- endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One operation. ``request``/``response``: the body classes (``None``: no body;
    ``dict``: free-form JSON, the WebAuthn options). ``status``: the success status.
    ``idempotent``: a retry of the same request cannot do the work twice. ``replayable``:
    a write whose answer holds no secret, so the service keeps the answer under the
    request's ``Idempotency-Key`` and a retry with that key gets it again instead of doing
    the work twice. The client SDK retries these two kinds only."""

    name: str
    method: str
    path: str
    auth: KeyKind
    summary: str
    request: type | None = None
    response: type | None = None
    status: int = 200
    idempotent: bool = False
    replayable: bool = False


_C, _A = KeyKind.CLIENT, KeyKind.ADMIN

ENDPOINTS: tuple[Endpoint, ...] = (
    # -- the client's API (CustodianApi) -------------------------------------------------
    Endpoint("get_client", "GET", "/v1/clients/me", _C,
             "The client and tenant the key speaks for.", None, ClientInfo, idempotent=True),
    Endpoint("get_wallet", "GET", "/v1/clients/me/wallet", _C,
             "The wallet's public keys, addresses and keepers.", None, WalletInfo,
             idempotent=True),
    Endpoint("begin_keygen", "POST", "/v1/clients/me/wallet", _C,
             "Starts key generation of the client's wallet.", KeygenRequest, SessionOffer, 201,
             replayable=True),
    Endpoint("begin_backup", "POST", "/v1/clients/me/backups", _C,
             "Starts a backup (a reshare into backup shares).", BackupRequest, SessionOffer, 201,
             replayable=True),
    Endpoint("begin_recovery", "POST", "/v1/clients/me/recoveries", _C,
             "Starts a recovery from a completed backup.", RecoveryRequest, SessionOffer, 201,
             replayable=True),
    Endpoint("exchange_commitments", "POST", "/v1/sessions/{session_id}/commitments", _C,
             "The client's commitments in, the custodian's out.", Messages, Messages,
             replayable=True),
    Endpoint("exchange_reveals", "POST", "/v1/sessions/{session_id}/reveals", _C,
             "The client's reveals in, the custodian's out; the session ends.",
             Messages, Messages, replayable=True),
    Endpoint("abort", "DELETE", "/v1/sessions/{session_id}", _C,
             "Ends a session the client cannot finish.", None, AbortResult, idempotent=True),
    Endpoint("update_backup_status", "PATCH", "/v1/clients/me/backups/{backup_id}", _C,
             "Moves a backup to its next status.", StatusUpdate, None, 204, replayable=True),
    Endpoint("store_cipher_text", "PUT", "/v1/clients/me/backups/{backup_id}/cipher-text", _C,
             "Stores the client's cipher text (custodian-managed mode).", CipherText, None, 204,
             idempotent=True),
    Endpoint("get_cipher_text", "GET", "/v1/clients/me/backups/{backup_id}/cipher-text", _C,
             "The client's cipher text (custodian-managed mode).", None, CipherText,
             idempotent=True),
    Endpoint("list_backup_pairs", "GET", "/v1/clients/me/backup-share-pairs", _C,
             "Every backup share pair, every status.", None, Pairs, idempotent=True),
    Endpoint("discard_backup", "DELETE", "/v1/clients/me/backups/{backup_id}", _C,
             "Drops a backup that is not completed.", None, None, 204, idempotent=True),
    Endpoint("check_backup", "POST", "/v1/clients/me/backups/{backup_id}/check", _C,
             "The custodian opens and checks its backup shares.", None, None, 204,
             idempotent=True),
    Endpoint("release_eject_shares", "POST", "/v1/clients/me/eject", _C,
             "Inside an eject window: the custodian's backup shares.", EjectRequest, EjectShares),
    # -- the integrator's backend (CustodianAdmin, keys, audit) ---------------------------
    Endpoint("create_client", "POST", "/v1/custodians/me/clients", _A,
             "A new client and its client API key (shown once).", None, ClientCreatedInfo, 201),
    Endpoint("authorize_eject", "POST", "/v1/custodians/me/clients/{client_id}/prepare-eject",
             _A, "Opens the client's eject window.", None, EjectAuthorized, replayable=True),
    Endpoint("rotate_client_key", "POST", "/v1/custodians/me/clients/{client_id}/api-keys", _A,
             "A new client key; the previous one is revoked.", None, ClientKeyRotated, 201),
    Endpoint("create_admin_key", "POST", "/v1/custodians/me/api-keys", _A,
             "A new admin key of the tenant (shown once).", None, AdminKeyCreated, 201),
    Endpoint("revoke_key", "DELETE", "/v1/custodians/me/api-keys/{key_id}", _A,
             "Revokes one of the tenant's keys.", None, Revoked, idempotent=True),
    Endpoint("set_webhooks", "PUT", "/v1/custodians/me/webhooks", _A,
             "Self-managed mode: the integrator's webhooks (replacing any).", WebhookSettings,
             None, 204, idempotent=True),
    Endpoint("get_webhooks", "GET", "/v1/custodians/me/webhooks", _A,
             "The integrator's webhooks (never the secret).", None, WebhookInfo,
             idempotent=True),
    Endpoint("remove_webhooks", "DELETE", "/v1/custodians/me/webhooks", _A,
             "Back to custodian-managed mode for new backups.", None, Removed, idempotent=True),
    Endpoint("audit_events", "GET", "/v1/custodians/me/audit-events", _A,
             "The tenant's audit trail (query: since, limit).", None, AuditEvents,
             idempotent=True),
    # -- the enclave: guess-limited vault -------------------------------------------------
    Endpoint("vault_enroll", "POST", "/v1/enclave/vault/{slot}", _C,
             "Creates the slot's secret, released for the access key.", VaultEnroll,
             VaultSecret, 201),
    Endpoint("vault_release", "POST", "/v1/enclave/vault/{slot}/release", _C,
             "The slot's secret for the right access key (spends a try first).",
             VaultRelease, VaultSecret),
    Endpoint("vault_status", "GET", "/v1/enclave/vault/{slot}", _C,
             "Tries left and the enrolment's public parameters.", None, VaultStatusInfo,
             idempotent=True),
    Endpoint("vault_delete", "DELETE", "/v1/enclave/vault/{slot}", _C,
             "Destroys the slot's secret.", None, None, 204, idempotent=True),
    # -- the enclave: passkeys ------------------------------------------------------------
    Endpoint("passkey_begin_registration", "POST", "/v1/enclave/passkeys/registration", _C,
             "Creation options for a new passkey.", None, dict),
    Endpoint("passkey_finish_registration", "PUT", "/v1/enclave/passkeys/registration", _C,
             "Registers the new passkey.", WebAuthnResponse, CredentialResult),
    Endpoint("passkey_has_credentials", "GET", "/v1/enclave/passkeys", _C,
             "Whether the client has a passkey.", None, HasCredentials, idempotent=True),
    Endpoint("passkey_begin_login", "POST", "/v1/enclave/passkeys/login", _C,
             "Request options for one login, for one operation on one slot.", LoginRequest,
             dict),
    Endpoint("passkey_finish_read", "POST", "/v1/enclave/keys/{slot}/read", _C,
             "The key stored in the slot, for a login assertion.", WebAuthnResponse, KeyRead),
    Endpoint("passkey_finish_write", "PUT", "/v1/enclave/keys/{slot}", _C,
             "Stores a key in the slot, for a login assertion.", LoginWrite, None, 204),
    Endpoint("passkey_delete_key", "DELETE", "/v1/enclave/keys/{slot}", _C,
             "Deletes the slot's keys.", None, KeysDeleted, idempotent=True),
)  # fmt: skip

_BY_NAME = {e.name: e for e in ENDPOINTS}


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name``."""
    return _BY_NAME[name]

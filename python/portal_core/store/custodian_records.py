"""The custodian's records: plain frozen dataclasses shared by every custodian store.

Sealed blobs (custodian shares sealed under the KMS, client cipher texts) are kept out of
``repr``: they are not plaintext, but nothing gains from printing them. Field names are the
column names of the records' tables: the stores build records from rows by name
(:func:`portal_core.store.rows.record_from_row`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "BACKUP_METHODS",
    "CURVES",
    "ApiKeyRecord",
    "AuditEntry",
    "AuditEvent",
    "BackupMode",
    "BackupRecord",
    "ClientRecord",
    "EjectWindow",
    "KeyKind",
    "LockRecord",
    "PairRecord",
    "PairStatus",
    "SessionRecord",
    "SessionStage",
    "SigningShareRecord",
    "TenantRecord",
    "WalletRecord",
]

# The names used on the wire, as the seed system spells them.
CURVES: tuple[str, ...] = ("SECP256K1", "ED25519")
BACKUP_METHODS: tuple[str, ...] = ("PASSWORD", "PASSKEY", "GDRIVE", "ICLOUD", "CUSTOM")


class PairStatus(StrEnum):
    """A backup share pair's status; it only moves forward, in this order."""

    # The custodian holds its backup share; the client has not yet stored its key.
    INCOMPLETE = "incomplete"
    STORED_CLIENT_BACKUP_SHARE_KEY = "STORED_CLIENT_BACKUP_SHARE_KEY"
    STORED_CLIENT_BACKUP_SHARE = "STORED_CLIENT_BACKUP_SHARE"
    COMPLETED = "completed"


class BackupMode(StrEnum):
    """Who keeps the cipher text and the custodian's backup share."""

    # Portal-managed: the custodian keeps both (the cipher text opens only with the user's key).
    CUSTODIAN = "custodian"
    # Self-managed: the integrator keeps the cipher text and, through its webhook, the
    # custodian's backup share (still sealed under the custodian's KMS).
    SELF = "self"


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    created_at: float
    # The tenant the client belongs to; None for a client recorded without one (before
    # tenants existed, or by LocalCustodian): no API key reaches such a client.
    tenant_id: str | None = None


@dataclass(frozen=True)
class WalletRecord:
    wallet_id: str
    client_id: str
    created_at: float
    ejected_at: float | None = None


@dataclass(frozen=True)
class SigningShareRecord:
    """The custodian's signing share of one curve, and the public points of the pairing."""

    wallet_id: str
    curve: str
    # A fresh id per share, bound in the KMS context: an older sealed share of the same
    # wallet and curve can then not be put back in place of the current one.
    share_id: str
    public_key: bytes
    client_public_share: bytes
    custodian_public_share: bytes
    sealed_share: bytes = field(repr=False)
    generation: int
    updated_at: float


@dataclass(frozen=True)
class BackupRecord:
    """One backup: a pair per curve, one client cipher text, one method."""

    backup_id: str
    wallet_id: str
    method: str
    mode: BackupMode
    created_at: float


@dataclass(frozen=True)
class PairRecord:
    """One curve's backup share pair."""

    pair_id: str
    backup_id: str
    wallet_id: str
    method: str
    curve: str
    status: PairStatus
    public_key: bytes
    client_public_share: bytes
    custodian_public_share: bytes
    # None in self-managed mode: the integrator keeps it.
    sealed_custodian_share: bytes | None = field(repr=False)
    created_at: float
    completed_at: float | None = None


@dataclass(frozen=True)
class LockRecord:
    """A backup, recovery or key generation in progress for one client's wallet."""

    client_id: str
    owner: str
    operation: str
    acquired_at: float
    expires_at: float


class SessionStage(StrEnum):
    """Where a protocol session stands; it only moves forward, in this order, each move a
    compare-and-set in the store (so one request, on whichever worker, makes it)."""

    # Opened: waiting for the client's commitments.
    COMMIT = "commit"
    # The client's commitments are recorded: waiting for its reveals.
    REVEAL = "reveal"
    # A worker claimed the reveal step and is running it; the session ends when that
    # worker records its result (or fails, or the session expires).
    FINISHING = "finishing"


@dataclass(frozen=True)
class SessionRecord:
    """A protocol session (key generation, backup or recovery) between two requests, so that
    any worker can serve its next step.

    ``sealed_states``: per curve, the custodian's party suspended before its commitment
    (``shares.KeyGen.suspend()`` / ``Reshare.suspend()``: share scalar, nonce, seed) and
    sealed under the KMS with a context naming the session, client, wallet and curve.
    ``client_commitments``: per curve, the client's commitment message (public), recorded
    when the session moves to ``reveal``; empty before. ``share_ids``: the new shares' ids
    per curve (the wallet id, or the new pair ids of a backup). ``generations``: a recovery's
    signing share generations when it started. ``method``: the backup method (None for a
    key generation). ``expires_at``: the wallet lock's expiry, taken in the same call.
    """

    session_id: str
    client_id: str
    wallet_id: str
    operation: str
    method: str | None
    stage: SessionStage
    share_ids: Mapping[str, str]
    generations: Mapping[str, int]
    sealed_states: Mapping[str, bytes] = field(repr=False)
    client_commitments: Mapping[str, bytes] = field(repr=False)
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class EjectWindow:
    wallet_id: str
    authorized_at: float
    expires_at: float


# -- tenants, API keys, audit ----------------------------------------------------------------


class KeyKind(StrEnum):
    """What an API key may do: an admin key acts for its whole tenant, a client key for its
    one client's wallet."""

    ADMIN = "admin"
    CLIENT = "client"


@dataclass(frozen=True)
class TenantRecord:
    """A custodian's customer (an integrator), owning clients and API keys."""

    tenant_id: str
    name: str
    created_at: float


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: its public id and the hash of its secret, never the secret."""

    key_id: str
    tenant_id: str
    # None for an admin key; the one client a client key reaches.
    client_id: str | None
    kind: KeyKind
    # Not a secret (the secret cannot be recovered from it), but nothing gains from
    # printing it either.
    secret_hash: bytes = field(repr=False)
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class AuditEntry:
    """An audit event to record. ``detail`` is serialised to JSON and must hold no secret."""

    tenant_id: str | None
    at: float
    kind: str
    subject: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """A recorded audit event; ``event_id`` grows with every event appended."""

    event_id: int
    tenant_id: str | None
    at: float
    kind: str
    subject: str | None
    detail: Mapping[str, Any]

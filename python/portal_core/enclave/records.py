"""The enclave's durable records: plain frozen dataclasses, free of any storage engine.

Sealed values (``sealed``) are KMS blobs (docs/kms.md): opaque without the HSM. They stay
out of every repr all the same. Field names are the column names of the records' tables: the
SQLite store (:mod:`portal_core.store.enclave_sqlite`) builds records from rows by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Ceremony",
    "ChallengeRecord",
    "CredentialRecord",
    "KeyMode",
    "KeyRecord",
    "LoginOperation",
    "UserRecord",
    "VaultRecord",
]


class Ceremony(StrEnum):
    """What a challenge was issued for (WebAuthn L3 §7.1 and §7.2)."""

    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


class LoginOperation(StrEnum):
    """What a login challenge was issued to authorise (docs/passkey.md): reading the key
    of one slot, or writing it. The finish checks it, so an assertion obtained for one
    operation cannot be spent on the other, nor on another slot."""

    READ = "read"
    WRITE = "write"


class KeyMode(StrEnum):
    """How a passkey-gated key is held (docs/passkey.md).

    ``SERVER``: the enclave holds the key itself, sealed under an HSM KEK. ``PRF``: the
    device wraps the key under a key derived from the passkey's PRF output, and the
    enclave holds only that wrapped value (sealed under the HSM KEK as well).
    """

    SERVER = "server"
    PRF = "prf"


@dataclass(frozen=True)
class UserRecord:
    """A user of the enclave. ``user_handle``: random bytes, the WebAuthn ``user.id``
    (WebAuthn L3 §14.6.1: no personal data in it)."""

    user_id: str
    user_handle: bytes
    created_at: float


@dataclass(frozen=True)
class CredentialRecord:
    """A registered passkey (WebAuthn L3 §7.1: the credential record the RP stores).

    ``public_key``: the COSE_Key from the attested credential data. ``sign_count``: the
    highest signature counter seen (0: the authenticator keeps none). ``prf_salt``: the
    input the enclave asks the device to evaluate the PRF on (public, random per
    credential). ``prf_enabled``: the client reported ``prf.enabled`` at registration.
    """

    credential_id: bytes
    user_id: str
    public_key: bytes
    alg: int
    sign_count: int
    aaguid: str
    fmt: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool
    prf_salt: bytes
    prf_enabled: bool
    created_at: float
    last_used_at: float | None = None


@dataclass(frozen=True)
class ChallengeRecord:
    """An outstanding challenge, stored under SHA-256 of its value: single-use, expiring.

    ``operation`` and ``slot``: what a login challenge authorises (None for a registration
    challenge, and for login challenges stored before schema version 2, which no finish
    accepts).
    """

    challenge_hash: bytes
    user_id: str
    ceremony: Ceremony
    created_at: float
    expires_at: float
    operation: LoginOperation | None = None
    slot: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    """A passkey-gated key: one per user, credential and slot, sealed under the KMS with
    all three bound as context."""

    user_id: str
    credential_id: bytes
    slot: str
    mode: KeyMode
    sealed: bytes = field(repr=False)
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class VaultRecord:
    """A guess-limited vault record (docs/vault.md).

    ``owner``: the caller the slot belongs to, bound into the blob's context; ``""`` for a
    record written before schema version 2, not yet claimed (its blob has no owner in its
    context). ``sealed``: the KMS blob holding the secret and the access key's verifier,
    or None once the secret is destroyed. ``tries_left``: tries before destruction (each
    try is counted before it is evaluated). ``generation``: bumped when the record is
    replaced or claimed; bound into the blob's context and compared on every update.
    ``params``: an opaque public value (0 to 256 bytes) the client stored at enrolment,
    kept in clear beside the blob.
    """

    slot: str
    owner: str
    sealed: bytes | None = field(repr=False)
    tries_left: int
    max_tries: int
    generation: int
    created_at: float
    updated_at: float
    destroyed_at: float | None = None
    params: bytes = b""

    @property
    def destroyed(self) -> bool:
        return self.sealed is None

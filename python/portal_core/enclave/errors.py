"""Errors of :mod:`portal_core.enclave`. Messages never hold a key, a PIN, an access key, a
challenge or a PRF output; they name users, credential ids (public values) and slots.

Every class derives from :class:`portal_core.exceptions.PortalError` through
:class:`EnclaveError`. Those that the backup flows must understand also derive from the
flows' own errors: a missing key or a destroyed vault secret is a
:class:`~portal_core.exceptions.NoValidBackup`, a wrong PIN a
:class:`~portal_core.exceptions.DecryptFailed`, a record that does not open an
:class:`~portal_core.exceptions.InvalidTag`.
"""

from __future__ import annotations

from portal_core.backup.errors import DecryptFailed, NoValidBackup
from portal_core.exceptions import InvalidTag, PortalError

__all__ = [
    "ChallengeRejected",
    "CredentialAlreadyRegistered",
    "CredentialNotOwned",
    "EnclaveError",
    "EnclaveStoreError",
    "KeyNotStored",
    "MalformedResponse",
    "NoCredentials",
    "OriginMismatch",
    "PrfOutputExposed",
    "PrfUnavailable",
    "RpIdMismatch",
    "SealedRecordInvalid",
    "SecretDestroyed",
    "SignCountNotIncreasing",
    "UnknownCredential",
    "UserPresenceMissing",
    "UserVerificationMissing",
    "VaultError",
    "VaultSlotExists",
    "VaultSlotNotFound",
    "VerificationFailed",
    "WrongAccessKey",
]


class EnclaveError(PortalError):
    """Base class of the errors the enclave raises."""


class EnclaveStoreError(EnclaveError):
    """The enclave's store cannot serve the call: a schema newer than this build, or a
    database failure."""


# -- passkeys ------------------------------------------------------------------------------


class MalformedResponse(EnclaveError):
    """The WebAuthn response does not parse (not JSON, a missing field, bad base64url or
    CBOR, too large)."""


class ChallengeRejected(EnclaveError):
    """The response answers no challenge this enclave has outstanding for this user and
    ceremony: unknown, already used, expired, issued to another user, or issued for the
    other ceremony. Challenges are single-use: any finish, failed or not, spends one."""


class VerificationFailed(EnclaveError):
    """The response does not verify (WebAuthn L3 §7.1 registration, §7.2 authentication);
    the subclasses name the check that failed."""


class OriginMismatch(VerificationFailed):
    """``clientDataJSON.origin`` is not one of the configured origins, or the ceremony ran
    in a cross-origin frame (WebAuthn L3 §7.2, §5.8.1)."""


class RpIdMismatch(VerificationFailed):
    """``rpIdHash`` in the authenticator data is not SHA-256 of the configured RP id
    (WebAuthn L3 §7.2)."""


class UserPresenceMissing(VerificationFailed):
    """The authenticator data lacks the UP (user present) flag (WebAuthn L3 §7.2)."""


class UserVerificationMissing(VerificationFailed):
    """User verification is required and the UV flag is not set (WebAuthn L3 §7.2)."""


class SignCountNotIncreasing(VerificationFailed):
    """The authenticator keeps a signature counter and this assertion's is not above the
    stored one: a cloned authenticator or a replayed assertion (WebAuthn L3 §6.1.1,
    §7.2)."""


class PrfOutputExposed(VerificationFailed):
    """The response sent to the enclave carries a PRF output
    (``clientExtensionResults.prf.results``). It must stay on the device: with it the
    server could unwrap a PRF-mode key by itself. The enclave refuses it and stores none
    of it."""


class UnknownCredential(EnclaveError):
    """The response names a credential id this enclave has not registered."""


class CredentialNotOwned(EnclaveError):
    """The credential is registered to another user, or the response's user handle is not
    this user's (WebAuthn L3 §7.2)."""


class CredentialAlreadyRegistered(EnclaveError):
    """A registration returned a credential id that is already registered (WebAuthn L3
    §7.1: a credential id is registered once)."""


class NoCredentials(EnclaveError, NoValidBackup):
    """The user has no registered passkey, so no login can start."""


class KeyNotStored(EnclaveError, NoValidBackup):
    """No key is stored for this user, credential and slot (never written, deleted, or
    written with another of the user's passkeys)."""


class SealedRecordInvalid(EnclaveError, InvalidTag):
    """A sealed key or vault record does not open under its KMS key with its context: it
    was altered, or moved to another user, credential or slot."""


class PrfUnavailable(EnclaveError):
    """PRF mode was asked for, and the authenticator returned no PRF output (it lacks the
    ``prf`` / ``hmac-secret`` extension, or the client did not ask for it)."""


# -- the PIN vault -------------------------------------------------------------------------


class VaultError(EnclaveError):
    """Base class of the PIN vault's errors."""


class VaultSlotNotFound(VaultError, NoValidBackup):
    """No vault record has this slot (never enrolled, or deleted)."""


class VaultSlotExists(VaultError):
    """``enroll`` of a slot that already has a record: a record is never overwritten
    without its old access key (use ``replace``), nor after its secret was destroyed."""


class WrongAccessKey(VaultError, DecryptFailed):
    """Wrong PIN or password (the access key did not match); one try was used.

    ``tries_left``: how many tries remain before the secret is destroyed.
    """

    def __init__(self, slot: str, tries_left: int) -> None:
        plural = "try" if tries_left == 1 else "tries"
        super().__init__(
            f"wrong PIN or password for vault slot {slot!r}: {tries_left} {plural} left "
            "before the secret is destroyed for good"
        )
        self.slot = slot
        self.tries_left = tries_left

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        return type(self), (self.slot, self.tries_left)


class SecretDestroyed(VaultError, NoValidBackup):
    """The vault's secret for this slot is destroyed: every try was used (it can never be
    released again, and whatever it protected cannot be recovered).

    ``last_try``: True when this very call's wrong guess was the last try and destroyed it.
    """

    def __init__(self, message: str, last_try: bool = False) -> None:
        super().__init__(message)
        self.last_try = last_try

    def __reduce__(self) -> tuple[type, tuple[str, bool]]:
        return type(self), (str(self), self.last_try)

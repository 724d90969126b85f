"""Exceptions raised by portal_core.

Messages never contain key material, plaintext, PINs or shares.
Wrong types raise ``TypeError`` and wrong lengths or values ``ValueError``,
as the standard library and ``cryptography`` do.
"""

from __future__ import annotations

__all__ = [
    "CustodianMismatch",
    "DecryptFailed",
    "EjectNotAuthorized",
    "InvalidEnvelope",
    "InvalidShare",
    "InvalidTag",
    "KdfParametersRefused",
    "NoValidBackup",
    "PasswordRequired",
    "PortalError",
    "ShareVerificationFailed",
    "UnsupportedBackupMethod",
    "VaultNotIndependent",
    "WalletAlreadyExists",
    "WalletModificationInProgress",
    "WalletNotFound",
    "WeakPassword",
]


class PortalError(Exception):
    """Base class of every portal_core error."""


class InvalidTag(PortalError):
    """Authentication failed: wrong key, nonce, associated data or context, or tampering.

    Carries no detail about why, on purpose (batch calls name the failing item's index).
    """


class InvalidEnvelope(PortalError):
    """A sealed envelope is malformed, truncated, or of an unsupported version or suite."""


class InvalidShare(PortalError):
    """A key share, or a share-protocol message, failed verification.

    Malformed, truncated, of an unknown version or curve, a scalar that is not
    canonical, a public share that does not match its scalar or does not pair
    with the other party's, a commitment that does not open, a proof that fails.
    The message names the check; it never holds a scalar.
    """


# Errors of the backup, recovery and eject flows (portal_core.backup, portal_core.store).
# Each message names the cause (a method, a wallet or pair id, a status); none names a
# password, key or share.


class PasswordRequired(PortalError):
    """A ``PASSWORD`` backup, recovery or eject was asked for without a password."""


class WeakPassword(PortalError):
    """The backup password fails the password policy (too short, common, or a numeric PIN
    without a guess-limited vault); the message says which rule and why."""


class UnsupportedBackupMethod(PortalError):
    """The backup method is unknown, or not configured on this client (no key storage)."""


class NoValidBackup(PortalError):
    """No completed backup can serve the request: none was made with that method, it was
    replaced by a newer one, or its cipher text or key is missing."""


class DecryptFailed(PortalError):
    """The backup cipher text did not open: wrong password or key, altered cipher text, or a
    cipher text of another wallet or method. Says which when that is knowable without the key."""


class ShareVerificationFailed(PortalError):
    """A decrypted share does not match its recorded public share, does not pair with the
    other party's, or a share-protocol message failed verification."""


class CustodianMismatch(ShareVerificationFailed):
    """A value the custodian sent does not match what the device can check for itself (a
    public key against its own shares, an address against the public key it derives from,
    a backup pair's public shares against the wallet key): never shown, always refused."""


class VaultNotIndependent(WeakPassword):
    """The password is acceptable only behind a guess-limited vault, and the vault's operator
    also keeps the backup's cipher text or the custodian's backup share (or one of those
    operators is not named), so that operator could test every guess offline."""


class KdfParametersRefused(DecryptFailed):
    """A cipher text names Argon2id costs below this client's floor, or a salt and costs that
    its vault did not record at enrolment: its header was altered. Nothing was derived from
    the password, nothing was sent, no vault try was spent."""


class EjectNotAuthorized(PortalError):
    """Eject was asked for outside a custodian's authorisation window (never authorised,
    expired, or already used)."""


class WalletModificationInProgress(PortalError):
    """Another backup, recovery or key generation of this wallet is running."""


class WalletNotFound(PortalError):
    """The client has no wallet (or no wallet with that id) at the custodian or on the device."""


class WalletAlreadyExists(PortalError):
    """Key generation was asked for a client that already has a wallet."""

"""The errors of the backup, recovery and eject flows (the primitives' own errors are in
:mod:`portal_core.exceptions`, which re-exports these under their old names).

The layers the flows stand on raise some of them too, as the flows' contracts say: the
custodian's store (a wallet locked, a backup not in the expected state), the PIN vault and
the passkey enclave (their refusals derive from :class:`NoValidBackup` and
:class:`DecryptFailed`). Messages never hold a key, a password, a PIN or a share.
"""

from __future__ import annotations

from portal_core.exceptions import PortalError

__all__: list[str] = [
    "CustodianMismatch",
    "DecryptFailed",
    "DeviceReplaced",
    "DeviceStoreError",
    "EjectNotAuthorized",
    "KdfParametersRefused",
    "NoValidBackup",
    "PasswordRequired",
    "ShareVerificationFailed",
    "UnsupportedBackupMethod",
    "VaultNotIndependent",
    "WalletAlreadyExists",
    "WalletModificationInProgress",
    "WalletNotFound",
    "WeakPassword",
]


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


class DeviceReplaced(WalletNotFound):
    """This device's signing share was replaced by a recovery on another device: the
    custodian pairs with that one now. Recover the wallet on this device to use it here."""


class WalletAlreadyExists(PortalError):
    """Key generation was asked for a client that already has a wallet."""


class DeviceStoreError(PortalError):
    """The device's share file is unreadable or not one (its content is never quoted)."""

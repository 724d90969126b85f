"""Exceptions raised by portal_core.

Messages never contain key material, plaintext, PINs or shares.
Wrong types raise ``TypeError`` and wrong lengths or values ``ValueError``,
as the standard library and ``cryptography`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cryptography.exceptions

if TYPE_CHECKING:  # the names as the type checker sees them; at run time see __getattr__
    pass

# The backup flows' errors live in portal_core.backup.errors; they are still importable from
# here, by the names code has always used (resolved on first use, see __getattr__).
_FLOW_ERRORS = (
    "CustodianMismatch",
    "DecryptFailed",
    "DeviceReplaced",
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
)

__all__ = ["InvalidEnvelope", "InvalidShare", "InvalidTag", "PortalError", *_FLOW_ERRORS]


class PortalError(Exception):
    """Base class of every portal_core error."""


class InvalidTag(PortalError, cryptography.exceptions.InvalidTag):
    """Authentication failed: wrong key, nonce, associated data or context, or tampering.

    Carries no detail about why, on purpose (batch calls name the failing item's index).
    Also a ``cryptography.exceptions.InvalidTag``: code moved over from ``cryptography``'s
    AEADs (``except InvalidTag:``) catches it unchanged.
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


def __getattr__(name: str) -> Any:
    if name in _FLOW_ERRORS:
        from portal_core.backup import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'portal_core.exceptions' has no attribute {name!r}")

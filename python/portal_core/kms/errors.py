"""Errors of :mod:`portal_core.kms`. Messages never contain a PIN, a key or a plaintext.

Every class derives from :class:`portal_core.exceptions.PortalError`. A blob that fails
authentication raises :class:`portal_core.exceptions.InvalidTag` itself (re-exported here), or
one of two subclasses that say more while still being caught by ``except InvalidTag``.
"""

from __future__ import annotations

from portal_core.exceptions import InvalidEnvelope, InvalidTag, PortalError

__all__ = [
    "BlobKeyNotFound",
    "HsmAuthError",
    "HsmConfigError",
    "HsmUnavailable",
    "InvalidTag",
    "KeyAlreadyExists",
    "KeyNotFound",
    "KeyVersionRetired",
    "KmsError",
    "MalformedBlob",
]


class KmsError(PortalError):
    """Base class of the errors the KMS layer raises (besides :class:`InvalidTag` itself)."""


class KeyNotFound(KmsError):
    """No key-encryption key (or no such version of it) exists in the token."""


class KeyAlreadyExists(KmsError):
    """``create_key`` was asked for a name that already has versions in the token."""


class KeyVersionRetired(KmsError):
    """The blob's key version is below the key's minimum decryption version.

    Attributes ``key_name``, ``version`` and ``min_decryption_version`` say which.
    """

    def __init__(self, key_name: str, version: int, min_decryption_version: int) -> None:
        super().__init__(
            f"key {key_name!r} version {version} is retired: versions below "
            f"{min_decryption_version} no longer decrypt"
        )
        self.key_name = key_name
        self.version = version
        self.min_decryption_version = min_decryption_version


class HsmUnavailable(KmsError):
    """The HSM could not serve the call: device or session failure, or no session free in time."""


class HsmAuthError(KmsError):
    """The token refused the PIN (wrong, locked, expired or not initialised)."""


class HsmConfigError(KmsError):
    """The module, token or profile is wrong: missing library, unknown token label,
    a mechanism the HSM does not offer, or HSM behaviour the profile did not expect."""


class MalformedBlob(InvalidTag, InvalidEnvelope, KmsError):
    """A KMS blob that does not parse (wrong magic, unknown version, truncated).

    It cannot be authenticated, so it is an :class:`InvalidTag`; it is also malformed, so it
    is an :class:`~portal_core.exceptions.InvalidEnvelope`.
    """


class BlobKeyNotFound(KeyNotFound, InvalidTag):
    """A blob names a key or key version that this token does not hold.

    Either the blob was tampered with or it belongs to another token: it cannot be
    authenticated (an :class:`InvalidTag`), and the key is missing (a :class:`KeyNotFound`).
    """

"""The client's side of the PIN vault: stretching a PIN, and deriving the key it protects.

As in SVR2 (docs/vault.md): Argon2id (RFC 9106) stretches the PIN with a per-backup salt
into 64 bytes, split into an *encryption key* (first 32), which never leaves the device,
and an *access key* (last 32), the only thing the vault sees. The key that seals the
backup is HKDF-SHA256 (RFC 5869) of the encryption key and the vault's secret: neither
the vault (without the PIN) nor the holder of the cipher text (without the vault) has it.

The backup flows' ``PASSWORD`` method (:mod:`portal_core.backup.password`) uses these two
functions for its vault-guarded PINs, as any other client of the vault should.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from portal_core import kdf

__all__ = ["PinParts", "derive_key", "stretch_pin"]

_KEY_INFO = b"portal-core enclave v1: key from PIN encryption key and vault secret"
_MIN_SALT = 16


@dataclass(frozen=True)
class PinParts:
    """The two halves of a stretched PIN; neither appears in the repr."""

    encryption_key: bytes = field(repr=False)
    access_key: bytes = field(repr=False)


def stretch_pin(
    pin: str,
    salt: bytes,
    *,
    time_cost: int = 2,
    memory_cost: int = 19 * 1024,
    parallelism: int = 1,
) -> PinParts:
    """Argon2id of the PIN (NFC-normalised UTF-8), split into encryption and access keys.
    Defaults: OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1).

    Raises:
        TypeError: a PIN that is not a str. ValueError: an empty PIN, a salt shorter than
        16 bytes, or parameters Argon2id refuses.
    """
    if not isinstance(pin, str):
        raise TypeError("the PIN must be a str")
    if not pin:
        raise ValueError("the PIN is empty")
    if len(salt) < _MIN_SALT:
        raise ValueError(f"the salt must be at least {_MIN_SALT} bytes")
    out = kdf.argon2id(
        unicodedata.normalize("NFC", pin).encode("utf-8"),
        salt,
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        length=64,
    )
    return PinParts(encryption_key=out[:32], access_key=out[32:])


def derive_key(encryption_key: bytes, vault_secret: bytes, *, salt: bytes) -> bytes:
    """The 32-byte key protected by the PIN and the vault together."""
    if len(encryption_key) != 32 or len(vault_secret) != 32:
        raise ValueError("the encryption key and the vault secret are 32 bytes each")
    return kdf.hkdf_sha256(bytes(encryption_key) + bytes(vault_secret), salt=salt, info=_KEY_INFO)

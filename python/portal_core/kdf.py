"""Key derivation: HKDF-SHA256, PBKDF2-HMAC-SHA256 and Argon2id.

Byte-identical to ``cryptography``'s HKDF, ``hashlib.pbkdf2_hmac("sha256", ...)``
and argon2-cffi's ``hash_secret_raw(type=Type.ID)``. PBKDF2 and Argon2id
release the GIL; Argon2id runs its lanes on threads.
"""

from __future__ import annotations

from portal_core._rust import kdf as _kdf

hkdf_sha256 = _kdf.hkdf_sha256
pbkdf2_hmac_sha256 = _kdf.pbkdf2_hmac_sha256
argon2id = _kdf.argon2id

__all__ = ["argon2id", "hkdf_sha256", "pbkdf2_hmac_sha256"]

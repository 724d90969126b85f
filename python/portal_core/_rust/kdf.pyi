"""Key derivation functions."""

from typing_extensions import Buffer

__all__ = ["argon2id", "hkdf_sha256", "pbkdf2_hmac_sha256"]

# ``None`` stands for the default of an optional argument, as the core takes it: ``info=None``
# is empty info, ``length=None`` is 32 bytes.

def hkdf_sha256(
    ikm: Buffer,
    *,
    salt: Buffer | None = None,
    info: Buffer | None = None,
    length: int | None = None,
) -> bytes:
    """HKDF-SHA256 (RFC 5869), 32 bytes unless ``length``; ``salt=None`` means 32 zero bytes.

    Raises:
        ValueError: ``length`` outside 1..8160.
        TypeError: an argument of the wrong type.
    """

def pbkdf2_hmac_sha256(
    password: Buffer, salt: Buffer, iterations: int, length: int | None = None
) -> bytes:
    """PBKDF2-HMAC-SHA256 (RFC 8018), as ``hashlib.pbkdf2_hmac("sha256", ...)``, 32 bytes
    unless ``length``; GIL released.

    Raises:
        ValueError: ``iterations`` or ``length`` below 1.
        TypeError: an argument of the wrong type (a ``str`` password included).
    """

def argon2id(
    password: Buffer,
    salt: Buffer,
    *,
    time_cost: int,
    memory_cost: int,
    parallelism: int,
    length: int | None = None,
) -> bytes:
    """Argon2id v1.3 (RFC 9106), memory in KiB, 32 bytes unless ``length``; lanes on threads,
    GIL released.

    Byte-identical to argon2-cffi's ``hash_secret_raw(..., type=Type.ID)``.

    Raises:
        ValueError: parameters RFC 9106 does not allow (e.g. memory below 8 KiB per lane,
            a salt shorter than 8 bytes).
        TypeError: an argument of the wrong type.
    """

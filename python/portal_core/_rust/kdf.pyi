"""Key derivation functions."""

from typing_extensions import Buffer

def hkdf_sha256(
    ikm: Buffer, *, salt: Buffer | None = None, info: Buffer | None = b"", length: int = 32
) -> bytes:
    """HKDF-SHA256 (RFC 5869); ``salt=None`` means 32 zero bytes.

    Raises:
        ValueError: ``length`` outside 1..8160.
        TypeError: an argument of the wrong type.
    """

def pbkdf2_hmac_sha256(password: Buffer, salt: Buffer, iterations: int, length: int = 32) -> bytes:
    """PBKDF2-HMAC-SHA256 (RFC 8018), as ``hashlib.pbkdf2_hmac("sha256", ...)``; GIL released.

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
    length: int = 32,
) -> bytes:
    """Argon2id v1.3 (RFC 9106), memory in KiB; lanes on threads, GIL released.

    Byte-identical to argon2-cffi's ``hash_secret_raw(..., type=Type.ID)``.

    Raises:
        ValueError: parameters RFC 9106 does not allow (e.g. memory below 8 KiB per lane,
            a salt shorter than 8 bytes).
        TypeError: an argument of the wrong type.
    """

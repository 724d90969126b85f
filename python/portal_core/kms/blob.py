"""The KMS blob, version 1: which KEK, the HSM-wrapped intermediate key, then a core envelope.

Layout (integers big-endian; full description with an example in docs/kms.md)::

    "PK" | version u8 = 1 | wrap u8 | name_len u8 | key name | key version u32
    | wrapped_len u16 | wrapped intermediate key | core envelope (docs/envelope.md)

Everything up to and including the key version is the *prefix*. It is the associated data
when the HSM wraps the intermediate key with AES-GCM, and it is mixed into the derivation of
the envelope key in every case, so a wrapped key cannot be moved under another name, version
or mechanism. The header (prefix, length and wrapped key) identifies the intermediate key:
the in-memory cache is keyed by it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal_core import envelope, kdf
from portal_core.exceptions import InvalidEnvelope
from portal_core.kms.errors import MalformedBlob

if TYPE_CHECKING:  # collections.abc.Buffer is new in 3.12; typing_extensions is no dependency
    from typing_extensions import Buffer

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "WRAP_AES_GCM",
    "WRAP_AES_KWP",
    "BlobInfo",
    "Header",
    "check_name",
    "inspect",
]

MAGIC = b"PK"
FORMAT_VERSION = 1
WRAP_AES_GCM = 1
WRAP_AES_KWP = 2
WRAP_NAMES = {WRAP_AES_GCM: "aes-gcm", WRAP_AES_KWP: "aes-kwp"}
INTERMEDIATE_KEY_LEN = 32
GCM_TAG_LEN = 16
KWP_WRAPPED_LEN = 40  # RFC 5649 of a 32-byte key: 8-byte integrity block + 32 bytes
MAX_VERSION = 2**32 - 1
# HKDF info prefix for the envelope key derived from an intermediate key.
ENVELOPE_KEY_INFO = b"portal-core kms v1: envelope key from intermediate key | "

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: object) -> str:
    """Returns ``name`` if it is a valid key name (1-64 of ``A-Z a-z 0-9 . _ -``).

    Raises:
        TypeError: not a str.
        ValueError: not a valid name.
    """
    if not isinstance(name, str):
        raise TypeError(f"key name must be a str, not {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid key name {name!r}: use 1 to 64 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return name


def key_id(name: str, version: int) -> str:
    """The key id written into the core envelope: ``name/vN``."""
    return f"{name}/v{version}"


def make_prefix(name: str, version: int, wrap: int) -> bytes:
    raw = name.encode("ascii")
    return MAGIC + bytes((FORMAT_VERSION, wrap, len(raw))) + raw + version.to_bytes(4, "big")


def make_header(prefix: bytes, wrapped: bytes) -> bytes:
    return prefix + len(wrapped).to_bytes(2, "big") + wrapped


def envelope_key(intermediate: bytes, prefix: bytes) -> bytes:
    """The core-envelope key of an intermediate key: HKDF-SHA256 bound to the blob prefix."""
    return kdf.hkdf_sha256(intermediate, info=ENVELOPE_KEY_INFO + prefix)


def header_len(blob: bytes | bytearray | memoryview) -> int:
    """Length of the KMS header at the start of ``blob`` (checks only what it reads).

    Raises:
        MalformedBlob: wrong magic, unknown version, or truncated.
    """
    if len(blob) < 5 or blob[0:2] != MAGIC:
        raise MalformedBlob("not a portal-core KMS blob (bad magic)")
    if blob[2] != FORMAT_VERSION:
        raise MalformedBlob(f"unsupported KMS blob version {blob[2]}")
    at = 5 + blob[4] + 4
    if len(blob) < at + 2:
        raise MalformedBlob("truncated KMS blob header")
    end = at + 2 + int.from_bytes(blob[at : at + 2], "big")
    if len(blob) <= end:
        raise MalformedBlob("truncated KMS blob")
    return end


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed KMS header (no key needed)."""

    key_name: str
    key_version: int
    wrap: int
    prefix: bytes
    wrapped: bytes
    raw: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.key_name, self.key_version)

    @classmethod
    def parse(cls, raw: bytes) -> Header:
        """Parses the header bytes returned by :func:`header_len`'s slice.

        Raises:
            MalformedBlob: a field out of range.
        """
        name_len = raw[4]
        try:
            name = check_name(raw[5 : 5 + name_len].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise MalformedBlob("KMS blob names an invalid key") from None
        at = 5 + name_len
        version = int.from_bytes(raw[at : at + 4], "big")
        if version < 1:
            raise MalformedBlob("KMS blob names key version 0")
        wrap = raw[3]
        wrapped = raw[at + 6 :]
        if wrap == WRAP_AES_GCM:
            if not wrapped or len(wrapped) != 1 + wrapped[0] + INTERMEDIATE_KEY_LEN + GCM_TAG_LEN:
                raise MalformedBlob("KMS blob has a malformed wrapped key")
        elif wrap == WRAP_AES_KWP:
            if len(wrapped) != KWP_WRAPPED_LEN:
                raise MalformedBlob("KMS blob has a malformed wrapped key")
        else:
            raise MalformedBlob(f"KMS blob uses unknown wrap mechanism {wrap}")
        return cls(name, version, wrap, raw[: at + 4], wrapped, raw)


def gcm_wrapped(iv: bytes, ciphertext_and_tag: bytes) -> bytes:
    return bytes((len(iv),)) + iv + ciphertext_and_tag


def gcm_unwrapped(wrapped: bytes) -> tuple[bytes, bytes]:
    """``(iv, ciphertext || tag)`` of a GCM-wrapped intermediate key."""
    iv_len = wrapped[0]
    return wrapped[1 : 1 + iv_len], wrapped[1 + iv_len :]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a KMS blob says about itself, read without any key."""

    format_version: int
    wrap: str
    key_name: str
    key_version: int
    key_id: str
    context: dict[str, str]
    plaintext_length: int
    sealed_length: int


def inspect(blob: Buffer) -> BlobInfo:
    """The header of a KMS blob and of the envelope inside it; no key or HSM needed.

    Raises:
        MalformedBlob: not a well-formed KMS blob.
    """
    view = memoryview(blob).cast("B")
    end = header_len(view)
    header = Header.parse(bytes(view[:end]))
    try:
        env = envelope.inspect(view[end:])
    except InvalidEnvelope as e:
        raise MalformedBlob(f"KMS blob holds a malformed envelope: {e}") from None
    return BlobInfo(
        format_version=FORMAT_VERSION,
        wrap=WRAP_NAMES[header.wrap],
        key_name=header.key_name,
        key_version=header.key_version,
        key_id=env["key_id"],
        context=dict(env["context"]),
        plaintext_length=env["plaintext_length"],
        sealed_length=len(view),
    )

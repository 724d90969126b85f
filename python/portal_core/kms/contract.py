"""What callers may rely on from a KMS: the Protocols the rest of portal-core types against.

:class:`SealingKms` is sealing and opening under a named key with a context bound (the
passkey enclave, the PIN vault and the custodian use only that). :class:`KeyAdmin` is the
administration of named, versioned keys (the ``portal-core keys`` commands, operators).
:class:`KeyedSealingKms` is a :class:`SealingKms` that can also make sure the key it seals
under exists (the custodian creates its key on first start).

``portal_core.kms.Pkcs11Kms`` provides all three. This module imports neither python-pkcs11
nor anything that does, so code that only types against a KMS works without the ``hsm``
extra installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # collections.abc.Buffer is new in 3.12; typing_extensions is no dependency
    from typing_extensions import Buffer

__all__ = ["Context", "DataKey", "KeyAdmin", "KeyInfo", "KeyedSealingKms", "SealingKms"]

# The authenticated, stored-in-clear context of a sealed blob (e.g. wallet id, party).
Context = Mapping[str, str] | None


@dataclass(frozen=True)
class KeyInfo:
    """A KEK's versions as the token holds them."""

    name: str
    versions: tuple[int, ...]
    newest: int
    min_decryption_version: int


class DataKey:
    """A fresh 32-byte data key and the same key sealed under a KEK.

    Store ``wrapped``; use ``plaintext`` and drop it. The repr never shows the key.
    """

    __slots__ = ("key_name", "key_version", "plaintext", "wrapped")

    def __init__(self, plaintext: bytes, wrapped: bytes, key_name: str, key_version: int) -> None:
        self.plaintext = plaintext
        self.wrapped = wrapped
        self.key_name = key_name
        self.key_version = key_version

    def __repr__(self) -> str:
        return (
            f"DataKey(key_name={self.key_name!r}, key_version={self.key_version}, "
            f"plaintext=<{len(self.plaintext)} bytes redacted>, "
            f"wrapped=<{len(self.wrapped)} bytes>)"
        )


@runtime_checkable
class SealingKms(Protocol):
    """Sealing under a named key with a context bound, and opening with the same context."""

    def seal(self, name: str, plaintext: Buffer, *, context: Context) -> bytes:
        """A blob holding ``plaintext`` under the newest version of key ``name``, ``context``
        bound (stored in clear, authenticated)."""
        ...

    def open(self, sealed: Buffer, *, context: Context) -> bytes:
        """The plaintext of a blob from :meth:`seal`; raises
        :class:`portal_core.exceptions.InvalidTag` when it was altered or ``context`` differs."""
        ...


@runtime_checkable
class KeyAdmin(Protocol):
    """Administration of named, versioned key-encryption keys."""

    def create_key(self, name: str) -> int:
        """Creates version 1 of a new key; raises ``KeyAlreadyExists`` if it exists."""
        ...

    def ensure_key(self, name: str) -> KeyInfo:
        """The key ``name``, created first if it does not exist yet. Safe when another
        process creates it at the same moment."""
        ...

    def rotate(self, name: str) -> int:
        """Adds the next version (used by new seals); returns its number."""
        ...

    def versions(self, name: str) -> list[int]:
        """The versions held, oldest first."""
        ...

    def describe(self, name: str) -> KeyInfo:
        """Versions, newest version and minimum decryption version; raises ``KeyNotFound``."""
        ...

    def list_keys(self) -> list[KeyInfo]:
        """Every key, by name."""
        ...

    def set_min_decryption_version(self, name: str, version: int) -> None:
        """Versions below ``version`` stop decrypting."""
        ...

    def destroy_version(self, name: str, version: int) -> None:
        """Destroys a retired version for good."""
        ...


@runtime_checkable
class KeyedSealingKms(SealingKms, Protocol):
    """A :class:`SealingKms` that can make sure the key it seals under exists."""

    def ensure_key(self, name: str) -> KeyInfo:
        """The key ``name``, created first if it does not exist yet (see :class:`KeyAdmin`)."""
        ...

"""AEAD classes, call-compatible with ``cryptography.hazmat.primitives.ciphers.aead``."""

from collections.abc import Sequence
from typing import Self, final

from typing_extensions import Buffer

__all__ = [
    "AESCCM",
    "AESGCM",
    "AESGCMSIV",
    "AESOCB3",
    "AESSIV",
    "ChaCha20Poly1305",
    "XChaCha20Poly1305",
]

# Each class is a Rust type, @final: it cannot be subclassed (which also makes it a disjoint
# base). Its constructor is __new__ (PyO3's #[new]), not __init__.

class _Aead:
    def __new__(cls, key: Buffer) -> Self:
        """Expands ``key``.

        Raises:
            ValueError: the key length does not fit the algorithm.
            TypeError: ``key`` is not a bytes-like object.
        """
    def encrypt(self, nonce: Buffer, data: Buffer, associated_data: Buffer | None) -> bytes:
        """Returns ``ciphertext || tag`` (16-byte tag; AESCCM: its ``tag_length``).

        Raises:
            ValueError: wrong nonce length.
            TypeError: an argument is not a bytes-like object.
        """
    def decrypt(self, nonce: Buffer, data: Buffer, associated_data: Buffer | None) -> bytes:
        """Authenticates and decrypts ``ciphertext || tag``.

        Raises:
            portal_core.exceptions.InvalidTag: authentication failed (no plaintext is returned).
            ValueError: wrong nonce length.
            TypeError: an argument is not a bytes-like object.
        """
    def encrypt_into(
        self, nonce: Buffer, data: Buffer, associated_data: Buffer | None, buf: Buffer
    ) -> int:
        """Writes ``ciphertext || tag`` into ``buf`` (exactly ``len(data)`` + the tag length).

        Returns the number of bytes written. ``buf`` may be ``data`` itself.

        Raises:
            ValueError: wrong nonce length or buffer size.
            TypeError: ``buf`` is read-only, or an argument is not a bytes-like object.
        """
    def decrypt_into(
        self, nonce: Buffer, data: Buffer, associated_data: Buffer | None, buf: Buffer
    ) -> int:
        """Writes the plaintext into ``buf`` (exactly ``len(data)`` - the tag length).

        On a failed tag ``buf`` is zeroed: no unauthenticated plaintext is left in it.

        Raises:
            portal_core.exceptions.InvalidTag: authentication failed.
            ValueError: wrong nonce length or buffer size.
            TypeError: ``buf`` is read-only, or an argument is not a bytes-like object.
        """

class _AesAead(_Aead):
    @staticmethod
    def generate_key(bit_length: int) -> bytes:
        """A random key of 128, 192 or 256 bits.

        Raises:
            ValueError: another bit length.
            TypeError: ``bit_length`` is not an integer.
        """

@final
class AESGCM(_AesAead):
    """AES-GCM (SP 800-38D), 128/192/256-bit keys, nonces of 8 to 128 bytes."""

@final
class AESGCMSIV(_AesAead):
    """AES-GCM-SIV (RFC 8452), 128/192/256-bit keys, 12-byte nonces."""

@final
class ChaCha20Poly1305(_Aead):
    """ChaCha20-Poly1305 (RFC 8439), 32-byte key, 12-byte nonce."""

    @staticmethod
    def generate_key() -> bytes:
        """A random 32-byte key."""

@final
class XChaCha20Poly1305(_Aead):
    """XChaCha20-Poly1305, 32-byte key, 24-byte nonce (safe to draw at random)."""

    @staticmethod
    def generate_key() -> bytes:
        """A random 32-byte key."""

@final
class AESCCM(_AesAead):
    """AES-CCM (RFC 3610), 128/192/256-bit keys, nonces of 7 to 13 bytes.

    Messages are limited to ``2 ** (8 * (15 - len(nonce))) - 1`` bytes: encrypting a longer one
    raises ``ValueError``, decrypting one raises ``InvalidTag`` (as ``cryptography`` does).
    """

    def __new__(cls, key: Buffer, tag_length: int | None = None) -> Self:
        """Expands ``key``; tags are ``tag_length`` bytes (4 to 16, even; ``None`` means 16).

        Raises:
            ValueError: the key or tag length does not fit AES-CCM.
            TypeError: ``key`` is not a bytes-like object or ``tag_length`` not an integer.
        """

@final
class AESOCB3(_AesAead):
    """AES-OCB3 (RFC 7253), 128/192/256-bit keys, nonces of 12 to 15 bytes, 16-byte tags."""

@final
class AESSIV:
    """AES-SIV (RFC 5297), 256/384/512-bit keys; deterministic, no nonce argument.

    ``associated_data`` is ``None`` or a list of at most 126 bytes-like items (a nonce, if
    any, goes last). Output is ``SIV || ciphertext``, the 16-byte synthetic IV first.

    The stubs type ``associated_data`` as a ``Sequence``, as ``cryptography``'s do, so that a
    ``list[bytes]`` is accepted (a ``list[Buffer]`` parameter would refuse it, lists being
    invariant); at run time it must be a ``list``, anything else raises ``TypeError``.
    """

    def __new__(cls, key: Buffer) -> Self:
        """Keeps ``key`` (wiped when the object is freed).

        Raises:
            ValueError: the key is not 32, 48 or 64 bytes.
            TypeError: ``key`` is not a bytes-like object.
        """
    @staticmethod
    def generate_key(bit_length: int) -> bytes:
        """A random key of 256, 384 or 512 bits.

        Raises:
            ValueError: another bit length.
            TypeError: ``bit_length`` is not an integer.
        """
    def encrypt(self, data: Buffer, associated_data: Sequence[Buffer] | None) -> bytes:
        """Returns ``SIV || ciphertext``.

        Raises:
            ValueError: more than 126 associated data items.
            TypeError: ``associated_data`` is not a list, or an item or ``data`` is not a
                bytes-like object.
        """
    def decrypt(self, data: Buffer, associated_data: Sequence[Buffer] | None) -> bytes:
        """Authenticates and decrypts ``SIV || ciphertext``.

        Raises:
            portal_core.exceptions.InvalidTag: authentication failed (no plaintext is returned).
            ValueError: more than 126 associated data items.
            TypeError: as for ``encrypt``.
        """
    def encrypt_into(
        self, data: Buffer, associated_data: Sequence[Buffer] | None, buf: Buffer
    ) -> int:
        """Writes ``SIV || ciphertext`` into ``buf`` (exactly ``len(data) + 16`` bytes).

        Returns the number of bytes written. ``buf`` may share memory with the inputs.

        Raises:
            ValueError: wrong buffer size, or more than 126 associated data items.
            TypeError: ``buf`` is read-only, or an argument is of the wrong type.
        """
    def decrypt_into(
        self, data: Buffer, associated_data: Sequence[Buffer] | None, buf: Buffer
    ) -> int:
        """Writes the plaintext into ``buf`` (exactly ``len(data) - 16`` bytes).

        On a failed tag ``buf`` is zeroed: no unauthenticated plaintext is left in it.

        Raises:
            portal_core.exceptions.InvalidTag: authentication failed.
            ValueError: wrong buffer size, or more than 126 associated data items.
            TypeError: ``buf`` is read-only, or an argument is of the wrong type.
        """

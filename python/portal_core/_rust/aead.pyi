"""AEAD classes, call-compatible with ``cryptography.hazmat.primitives.ciphers.aead``."""

from collections.abc import Buffer

class _Aead:
    def __init__(self, key: Buffer) -> None:
        """Expands ``key``.

        Raises:
            ValueError: the key length does not fit the algorithm.
            TypeError: ``key`` is not a bytes-like object.
        """
    def encrypt(self, nonce: Buffer, data: Buffer, associated_data: Buffer | None) -> bytes:
        """Returns ``ciphertext || tag`` (16-byte tag).

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
        """Writes ``ciphertext || tag`` into ``buf`` (exactly ``len(data) + 16`` bytes).

        Returns the number of bytes written. ``buf`` may be ``data`` itself.

        Raises:
            ValueError: wrong nonce length or buffer size.
            TypeError: ``buf`` is read-only, or an argument is not a bytes-like object.
        """
    def decrypt_into(
        self, nonce: Buffer, data: Buffer, associated_data: Buffer | None, buf: Buffer
    ) -> int:
        """Writes the plaintext into ``buf`` (exactly ``len(data) - 16`` bytes).

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

class AESGCM(_AesAead):
    """AES-GCM (SP 800-38D), 128/192/256-bit keys, nonces of 8 to 128 bytes."""

class AESGCMSIV(_AesAead):
    """AES-GCM-SIV (RFC 8452), 128/192/256-bit keys, 12-byte nonces."""

class ChaCha20Poly1305(_Aead):
    """ChaCha20-Poly1305 (RFC 8439), 32-byte key, 12-byte nonce."""

    @staticmethod
    def generate_key() -> bytes:
        """A random 32-byte key."""

class XChaCha20Poly1305(_Aead):
    """XChaCha20-Poly1305, 32-byte key, 24-byte nonce (safe to draw at random)."""

    @staticmethod
    def generate_key() -> bytes:
        """A random 32-byte key."""

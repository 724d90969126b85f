"""Authenticated encryption, call-compatible with ``cryptography.hazmat.primitives.ciphers.aead``.

Same constructors, ``generate_key``, ``encrypt(nonce, data, associated_data)``,
``decrypt(...)``, ``encrypt_into`` / ``decrypt_into``, byte-identical output.
``AESCCM(key, tag_length=16)`` takes tags of 4 to 16 bytes (even) and nonces of 7 to
13 bytes; ``AESOCB3`` nonces of 12 to 15 bytes. ``AESSIV`` takes no nonce:
``encrypt(data, associated_data)`` with ``associated_data`` a list of bytes-like items
(or ``None``; pass a nonce as the last item), output ``SIV || ciphertext``.
Every argument accepts any bytes-like object (bytes, bytearray, memoryview,
numpy uint8). A failed tag raises :class:`portal_core.exceptions.InvalidTag`.
"""

from __future__ import annotations

from portal_core._rust import aead as _aead

AESGCM = _aead.AESGCM
AESGCMSIV = _aead.AESGCMSIV
ChaCha20Poly1305 = _aead.ChaCha20Poly1305
XChaCha20Poly1305 = _aead.XChaCha20Poly1305
AESCCM = _aead.AESCCM
AESOCB3 = _aead.AESOCB3
AESSIV = _aead.AESSIV

__all__ = [
    "AESCCM",
    "AESGCM",
    "AESGCMSIV",
    "AESOCB3",
    "AESSIV",
    "ChaCha20Poly1305",
    "XChaCha20Poly1305",
]

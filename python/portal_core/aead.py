"""Authenticated encryption, call-compatible with ``cryptography.hazmat.primitives.ciphers.aead``.

Same constructors, ``generate_key``, ``encrypt(nonce, data, associated_data)``,
``decrypt(...)``, ``encrypt_into`` / ``decrypt_into``, byte-identical output.
Every argument accepts any bytes-like object (bytes, bytearray, memoryview,
numpy uint8). A failed tag raises :class:`portal_core.exceptions.InvalidTag`.
"""

from __future__ import annotations

from portal_core._rust import aead as _aead

AESGCM = _aead.AESGCM
AESGCMSIV = _aead.AESGCMSIV
ChaCha20Poly1305 = _aead.ChaCha20Poly1305
XChaCha20Poly1305 = _aead.XChaCha20Poly1305

__all__ = ["AESGCM", "AESGCMSIV", "ChaCha20Poly1305", "XChaCha20Poly1305"]

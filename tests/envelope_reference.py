"""An independent implementation of the envelope format, from docs/envelope.md alone.

Written on `cryptography` (HKDF, AESGCM), not on portal_core, so the tests can
check the Rust core against the document. Running this file prints the
published vectors (tests/vectors/envelope_v1.json) from fixed keys and salts.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"PC"
VERSION = 1
SUITE = 1
INFO = b"portal-core envelope v1 suite 1: data key || commitment"


def encode_context(context: dict[str, str]) -> bytes:
    out = struct.pack(">H", len(context))
    for key in sorted(context, key=lambda k: k.encode()):
        for s in (key.encode(), context[key].encode()):
            out += struct.pack(">H", len(s)) + s
    return out


def seal(
    key: bytes, plaintext: bytes, context: dict[str, str], key_id: str, salt: bytes, index: int = 0
) -> bytes:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=INFO).derive(key)
    data_key, commitment = okm[:32], okm[32:]
    kid, ctx = key_id.encode(), encode_context(context)
    header = (
        MAGIC
        + bytes([VERSION, SUITE, len(kid)])
        + kid
        + struct.pack(">H", len(ctx))
        + ctx
        + salt
        + commitment
        + struct.pack(">I", index)
    )
    nonce = bytes(8) + struct.pack(">I", index)
    return header + AESGCM(data_key).encrypt(nonce, plaintext, header)


def open_(key: bytes, sealed: bytes) -> tuple[dict[str, str], str, bytes]:
    """Parses and opens an envelope: (context, key_id, plaintext)."""
    if sealed[:2] != MAGIC or sealed[2] != VERSION or sealed[3] != SUITE:
        raise ValueError("not a v1 suite 1 envelope")
    pos = 4
    kid_len = sealed[pos]
    key_id = sealed[pos + 1 : pos + 1 + kid_len].decode()
    pos += 1 + kid_len
    (ctx_len,) = struct.unpack_from(">H", sealed, pos)
    ctx_raw = sealed[pos + 2 : pos + 2 + ctx_len]
    pos += 2 + ctx_len
    salt, commitment = sealed[pos : pos + 32], sealed[pos + 32 : pos + 64]
    nonce = bytes(8) + sealed[pos + 64 : pos + 68]
    pos += 68
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=INFO).derive(key)
    if okm[32:] != commitment:
        raise ValueError("key commitment mismatch")
    plaintext = AESGCM(okm[:32]).decrypt(nonce, sealed[pos:], sealed[:pos])
    (count,), p, context = struct.unpack_from(">H", ctx_raw), 2, {}
    for _ in range(count):
        items = []
        for _ in range(2):
            (n,) = struct.unpack_from(">H", ctx_raw, p)
            items.append(ctx_raw[p + 2 : p + 2 + n].decode())
            p += 2 + n
        context[items[0]] = items[1]
    return context, key_id, plaintext


def _fixed(label: str, n: int) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


CASES = [
    ("empty", _fixed("key 1", 32), b"", {}, "", _fixed("salt 1", 32), 0),
    (
        "share",
        _fixed("key 2", 32),
        _fixed("share 2", 32),
        {"wallet": "wallet-7f3a", "curve": "SECP256K1", "party": "custodian"},
        "custodian-kek/v1",
        _fixed("salt 2", 32),
        0,
    ),
    (
        "unicode-1KiB",
        _fixed("key 3", 32),
        b"".join(_fixed(f"block {i}", 32) for i in range(32)),
        {"méthode": "mot de passe", "🔑": "✓"},
        "clé-3",
        _fixed("salt 3", 32),
        0,
    ),
    (
        "batch-item-7",
        _fixed("key 2", 32),
        _fixed("share 4", 32),
        {"wallet": "wallet-7f3a", "curve": "ED25519", "party": "custodian"},
        "custodian-kek/v1",
        _fixed("salt 2", 32),
        7,
    ),
]


def vectors() -> dict[str, Any]:
    return {
        "format": "portal-core envelope v1, suite 1 (docs/envelope.md)",
        "vectors": [
            {
                "name": name,
                "key": key.hex(),
                "plaintext": pt.hex(),
                "context": ctx,
                "key_id": kid,
                "salt": salt.hex(),
                "index": index,
                "sealed": seal(key, pt, ctx, kid, salt, index).hex(),
            }
            for name, key, pt, ctx, kid, salt, index in CASES
        ],
    }


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

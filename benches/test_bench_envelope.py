"""portal_core.envelope against the peer design: a Python loop over cryptography's AESGCM.

The peer seals each share with ``AESGCM(key).encrypt(os.urandom(12), share, aad)``,
building the cipher object per share as that design does, with the encoded
context as associated data. Portal seals the whole batch in one call. The
formats differ (portal's envelope is key-committing, with a fresh data key per
item), so the check before timing is that what portal sealed opens to the same
shares, and that the peer's output decrypts.
"""

from __future__ import annotations

import json
import os

import cryptography
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal_core import envelope

COUNT = 100_000
SHARE_LEN = 1024
CONTEXT = {"wallet": "wallet-0001", "curve": "SECP256K1", "party": "client"}
# The peer binds the same context as associated data, encoded once (~60 bytes).
AAD = json.dumps(CONTEXT, sort_keys=True, separators=(",", ":")).encode()
PEER_NAME = f"cryptography {cryptography.__version__} AESGCM, Python loop"
# A peer round over 100k shares takes about a second: a few rounds suffice.
ROUNDS = 11


@pytest.fixture(scope="module")
def key() -> bytes:
    return os.urandom(envelope.KEY_LEN)


@pytest.fixture(scope="module")
def shares() -> list[bytes]:
    return [os.urandom(SHARE_LEN) for _ in range(COUNT)]


def peer_seal_many(key: bytes, shares, aad: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for share in shares:
        nonce = os.urandom(12)
        out.append((nonce, AESGCM(key).encrypt(nonce, share, aad)))
    return out


def peer_open_many(key: bytes, sealed: list[tuple[bytes, bytes]], aad: bytes) -> list[bytes]:
    return [AESGCM(key).decrypt(nonce, ct, aad) for nonce, ct in sealed]


def run(benchmark, fn, *args) -> object:
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="envelope-seal_many-100k-1KiB")
def test_seal_many(benchmark, side, tag, key, shares):
    tag(PEER_NAME, 6.0)
    if side == "portal":
        sealed = envelope.seal_many(key, shares, context=CONTEXT)
        assert envelope.open_many(key, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.seal_many(key, shares, context=CONTEXT))
    else:
        sealed = peer_seal_many(key, shares[:100], AAD)
        assert peer_open_many(key, sealed, AAD) == shares[:100]
        run(benchmark, peer_seal_many, key, shares, AAD)


@pytest.mark.benchmark(group="envelope-open_many-100k-1KiB")
def test_open_many(benchmark, side, tag, key, shares):
    tag(PEER_NAME)
    if side == "portal":
        sealed = envelope.seal_many(key, shares, context=CONTEXT)
        assert envelope.open_many(key, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.open_many(key, sealed, context=CONTEXT))
    else:
        sealed = peer_seal_many(key, shares, AAD)
        assert peer_open_many(key, sealed[:100], AAD) == shares[:100]
        run(benchmark, peer_open_many, key, sealed, AAD)


@pytest.mark.benchmark(group="envelope-seal_many-numpy-100k-1KiB")
def test_seal_many_numpy(benchmark, side, tag, key, shares):
    rows = np.frombuffer(b"".join(shares), dtype=np.uint8).reshape(COUNT, SHARE_LEN)
    tag(PEER_NAME)
    if side == "portal":
        sealed = envelope.seal_many(key, rows, context=CONTEXT)
        assert envelope.open_many(key, sealed, context=CONTEXT) == shares
        run(benchmark, lambda: envelope.seal_many(key, rows, context=CONTEXT))
    else:
        sealed = peer_seal_many(key, rows[:100], AAD)
        assert peer_open_many(key, sealed, AAD) == shares[:100]
        run(benchmark, peer_seal_many, key, rows, AAD)


@pytest.mark.benchmark(group="envelope-seal-1KiB")
def test_seal(benchmark, side, tag, key, shares):
    share = shares[0]
    tag(PEER_NAME.removesuffix(", Python loop"))
    if side == "portal":
        sealed = envelope.seal(key, share, context=CONTEXT)
        assert envelope.open(key, sealed, context=CONTEXT) == share
        benchmark(lambda: envelope.seal(key, share, context=CONTEXT))
    else:
        [(nonce, ct)] = peer_seal_many(key, [share], AAD)
        assert AESGCM(key).decrypt(nonce, ct, AAD) == share
        benchmark(lambda: AESGCM(key).encrypt(os.urandom(12), share, AAD))

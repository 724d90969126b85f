"""portal_core.aead against cryptography's AEAD classes, one call at a time.

Both sides get a 256-bit key, a 12-byte nonce and no associated data; cipher
objects and inputs are built outside the timed part. Before timing, the portal
side checks that its output is byte-identical to the peer's.
"""

from __future__ import annotations

import os

import cryptography
import pytest
from cryptography.hazmat.primitives.ciphers import aead as peer_aead

from portal_core import aead

KEY = os.urandom(32)
NONCE = os.urandom(12)
KIB, MIB = 1024, 1024 * 1024
# The 64 MiB cases run a fixed, small number of rounds to keep `make bench` short.
BIG_ROUNDS = 30

CLASSES = {
    "AESGCM": (aead.AESGCM, peer_aead.AESGCM),
    "AESGCMSIV": (aead.AESGCMSIV, peer_aead.AESGCMSIV),
    "ChaCha20Poly1305": (aead.ChaCha20Poly1305, peer_aead.ChaCha20Poly1305),
    "AESCCM": (aead.AESCCM, peer_aead.AESCCM),
    "AESOCB3": (aead.AESOCB3, peer_aead.AESOCB3),
}


def ciphers(alg: str) -> tuple[object, object]:
    """A (portal, peer) pair of cipher objects of class ``alg`` under ``KEY``."""
    ours, theirs = CLASSES[alg]
    return ours(KEY), theirs(KEY)


def peer_name(alg: str) -> str:
    return f"cryptography {cryptography.__version__} {alg}, built once"


def case(group: str, alg: str, size: int, target: float | None):
    return pytest.param(alg, size, target, marks=pytest.mark.benchmark(group=group), id=group)


@pytest.fixture(scope="module")
def data_64mib() -> bytes:
    return os.urandom(64 * MIB)


@pytest.mark.parametrize(
    ("alg", "size", "target"),
    [
        case("aesgcm-encrypt-64B", "AESGCM", 64, 3.0),
        case("aesgcm-encrypt-1KiB", "AESGCM", KIB, 2.0),
        case("aesgcm-encrypt-16KiB", "AESGCM", 16 * KIB, None),
        case("aesgcm-encrypt-1MiB", "AESGCM", MIB, 1.0),
        case("aesgcmsiv-encrypt-1KiB", "AESGCMSIV", KIB, None),
        case("chacha20poly1305-encrypt-1KiB", "ChaCha20Poly1305", KIB, None),
        case("aesccm-encrypt-1KiB", "AESCCM", KIB, None),
        case("aesocb3-encrypt-1KiB", "AESOCB3", KIB, None),
    ],
)
def test_encrypt(benchmark, side, tag, alg, size, target):
    data = os.urandom(size)
    ours, theirs = ciphers(alg)
    if side == "portal":
        assert ours.encrypt(NONCE, data, None) == theirs.encrypt(NONCE, data, None)
    cipher = ours if side == "portal" else theirs
    tag(peer_name(alg), target)
    benchmark(cipher.encrypt, NONCE, data, None)


@pytest.mark.benchmark(group="aesgcm-decrypt-1KiB")
def test_decrypt_1kib(benchmark, side, tag):
    data = os.urandom(KIB)
    ours, theirs = ciphers("AESGCM")
    sealed = theirs.encrypt(NONCE, data, None)
    if side == "portal":
        assert ours.decrypt(NONCE, sealed, None) == data
    cipher = ours if side == "portal" else theirs
    tag(peer_name("AESGCM"))
    benchmark(cipher.decrypt, NONCE, sealed, None)


@pytest.mark.benchmark(group="aessiv-encrypt-1KiB")
def test_aessiv_encrypt_1kib(benchmark, side, tag):
    """AES-SIV takes no nonce: a 512-bit key and one associated data item (a nonce's place)."""
    key, data, ad = os.urandom(64), os.urandom(KIB), [NONCE]
    ours, theirs = aead.AESSIV(key), peer_aead.AESSIV(key)
    if side == "portal":
        assert ours.encrypt(data, ad) == theirs.encrypt(data, ad)
    cipher = ours if side == "portal" else theirs
    tag(peer_name("AESSIV"))
    benchmark(cipher.encrypt, data, ad)


@pytest.mark.benchmark(group="aesgcm-encrypt-64MiB")
def test_encrypt_64mib(benchmark, side, tag, data_64mib):
    ours, theirs = ciphers("AESGCM")
    if side == "portal":
        assert ours.encrypt(NONCE, data_64mib, None) == theirs.encrypt(NONCE, data_64mib, None)
    cipher = ours if side == "portal" else theirs
    tag(peer_name("AESGCM"))
    benchmark.pedantic(
        cipher.encrypt,
        args=(NONCE, data_64mib, None),
        rounds=BIG_ROUNDS,
        iterations=1,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group="aesgcm-encrypt_into-64MiB")
def test_encrypt_into_64mib(benchmark, side, tag, data_64mib):
    ours, theirs = ciphers("AESGCM")
    buf = bytearray(len(data_64mib) + 16)
    if side == "portal":
        other = bytearray(len(buf))
        ours.encrypt_into(NONCE, data_64mib, None, buf)
        theirs.encrypt_into(NONCE, data_64mib, None, other)
        assert buf == other
    cipher = ours if side == "portal" else theirs
    tag(peer_name("AESGCM"), 1.0)
    benchmark.pedantic(
        cipher.encrypt_into,
        args=(NONCE, data_64mib, None, buf),
        rounds=BIG_ROUNDS,
        iterations=1,
        warmup_rounds=1,
    )

"""portal_core.kdf against the key derivation its users would otherwise call.

HKDF and PBKDF2 are compared with ``cryptography`` (OpenSSL), constructing the
KDF object inside the timed call as users must; PBKDF2 also against ``hashlib``
for reference. Argon2id is compared with argon2-cffi's ``hash_secret_raw`` (the
reference C implementation) at the OWASP setting and at a 64 MiB, 4-lane one.
Before timing, the portal side checks that its output is byte-identical to the
peer's. The slow KDFs run a fixed number of rounds to keep the file near a minute.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Callable
from importlib.metadata import version

import cryptography
import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from portal_core import kdf

IKM = os.urandom(32)
SALT = os.urandom(32)
INFO = b"portal-core kdf bench"
PASSWORD = b"correct horse battery staple"
PBKDF2_ITERATIONS = 600_000
PBKDF2_ROUNDS = 7
ARGON2_ROUNDS = {1: 15, 4: 9}

CRYPTOGRAPHY = f"cryptography {cryptography.__version__}"
ARGON2_CFFI = f"argon2-cffi {version('argon2-cffi')} hash_secret_raw"


def slow(benchmark, fn: Callable[[], bytes], rounds: int) -> None:
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# Both sides are one Python function of the same shape, so neither pays a call
# frame the other does not.
def portal_hkdf() -> bytes:
    return kdf.hkdf_sha256(IKM, salt=SALT, info=INFO)


def peer_hkdf() -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=INFO).derive(IKM)


@pytest.mark.benchmark(group="hkdf-sha256-32B")
def test_hkdf(benchmark, side, tag):
    if side == "portal":
        assert portal_hkdf() == peer_hkdf()
    tag(f"{CRYPTOGRAPHY} HKDF(SHA256), a new object per derive (single-use)", 5.0)
    benchmark(portal_hkdf if side == "portal" else peer_hkdf)


def portal_pbkdf2() -> bytes:
    return kdf.pbkdf2_hmac_sha256(PASSWORD, SALT, PBKDF2_ITERATIONS)


def peer_pbkdf2() -> bytes:
    pbkdf2 = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=PBKDF2_ITERATIONS
    )
    return pbkdf2.derive(PASSWORD)


def hashlib_pbkdf2() -> bytes:
    return hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, PBKDF2_ITERATIONS)


@pytest.mark.benchmark(group="pbkdf2-sha256-600k")
def test_pbkdf2(benchmark, side, tag):
    if side == "portal":
        assert portal_pbkdf2() == peer_pbkdf2()
    tag(f"{CRYPTOGRAPHY} PBKDF2HMAC(SHA256), a new object per derive (single-use)", 1.3)
    slow(benchmark, portal_pbkdf2 if side == "portal" else peer_pbkdf2, PBKDF2_ROUNDS)


@pytest.mark.benchmark(group="pbkdf2-sha256-600k-hashlib")
def test_pbkdf2_hashlib(benchmark, side, tag):
    if side == "portal":
        assert portal_pbkdf2() == hashlib_pbkdf2()
    tag(f"hashlib.pbkdf2_hmac ({ssl.OPENSSL_VERSION})")
    slow(benchmark, portal_pbkdf2 if side == "portal" else hashlib_pbkdf2, PBKDF2_ROUNDS)


def argon2_case(group: str, time_cost: int, memory_cost: int, parallelism: int):
    return pytest.param(
        time_cost, memory_cost, parallelism, marks=pytest.mark.benchmark(group=group), id=group
    )


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism"),
    [
        argon2_case("argon2id-t2-m19MiB-p1", 2, 19 * 1024, 1),
        argon2_case("argon2id-t3-m64MiB-p4", 3, 64 * 1024, 4),
    ],
)
def test_argon2id(benchmark, side, tag, time_cost, memory_cost, parallelism):
    costs = {"time_cost": time_cost, "memory_cost": memory_cost, "parallelism": parallelism}

    def portal() -> bytes:
        return kdf.argon2id(PASSWORD, SALT, **costs)

    def peer() -> bytes:
        return hash_secret_raw(PASSWORD, SALT, **costs, hash_len=32, type=Type.ID)

    if side == "portal":
        assert portal() == peer()
    tag(ARGON2_CFFI, 1.2)
    slow(benchmark, portal if side == "portal" else peer, ARGON2_ROUNDS[parallelism])

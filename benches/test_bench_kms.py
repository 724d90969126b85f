"""Pkcs11Kms against the naive HSM design, on a real SoftHSM2 token, in the same run.

The naive design gives every custodian share its own data key and asks the HSM for every
one: sealing wraps the share's data key in the HSM (C_Encrypt, AES-256-GCM under the KEK,
the share's context as AAD) and encrypts the share on the host with that key; opening
unwraps the data key in the HSM and decrypts on the host. That is one HSM call per share
and per direction, the cheapest per-share use of the HSM SoftHSM2 offers (AES-GCM: ~11k
calls/s on one thread; its RFC 5649 unwrap is ~2.5k/s). It runs on as many threads as the
machine has cores, each with its own session, as portal's batch calls use every core.

Portal seals through the key hierarchy (docs/kms.md): one HSM call per intermediate key,
then the core's envelope for every share. Checked before timing: what each side sealed
opens to the same shares.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams

from portal_core.kms import Pkcs11Kms

SHARES = 2_000
SHARE_LEN = 1024
REWRAP = 100_000
REWRAP_LIMIT = 10.0  # seconds, from the requirement
CONTEXT = {"wallet": "wallet-0001", "curve": "SECP256K1", "party": "custodian"}
AAD = b"wallet=wallet-0001;curve=SECP256K1;party=custodian"
THREADS = os.cpu_count() or 2
PEER_NAME = f"naive: one SoftHSM2 AES-GCM wrap/unwrap per share, {THREADS} threads"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def kms(hsm_env: dict[str, str]):
    with Pkcs11Kms.from_env(hsm_env, pool_size=2 * THREADS) as instance:
        instance.create_key("bench")
        yield instance


@pytest.fixture(scope="module")
def shares() -> list[bytes]:
    return [os.urandom(SHARE_LEN) for _ in range(SHARES)]


class Naive:
    """The naive design: an HSM call per share, one session per thread."""

    def __init__(self, kms: Pkcs11Kms) -> None:
        self.kms = kms

    def _kek(self, session):
        return session.get_key(object_class=ObjectClass.SECRET_KEY, label="portal-kek:bench:v1")

    def seal(self, kek, share: bytes) -> tuple[bytes, bytes, bytes]:
        data_key, iv, nonce = os.urandom(32), os.urandom(12), os.urandom(12)
        wrapped = kek.encrypt(
            data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, AAD)
        )
        return iv + wrapped, nonce, AESGCM(data_key).encrypt(nonce, share, AAD)

    def open(self, kek, sealed: tuple[bytes, bytes, bytes]) -> bytes:
        wrapped, nonce, ciphertext = sealed
        data_key = kek.decrypt(
            wrapped[12:], mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(wrapped[:12], AAD)
        )
        return AESGCM(data_key).decrypt(nonce, ciphertext, AAD)

    def _per_thread(self, work, items: list) -> list:
        """Runs ``work(kek, slice)`` on THREADS threads, each on its own pooled session."""
        size = -(-len(items) // THREADS)
        parts = [items[i : i + size] for i in range(0, len(items), size)]

        def run(part: list) -> list:
            with self.kms.session() as session:
                kek = self._kek(session)
                return work(kek, part)

        with ThreadPoolExecutor(THREADS) as pool:
            return [x for chunk in pool.map(run, parts) for x in chunk]

    def seal_open(self, shares: list[bytes]) -> list[bytes]:
        return self._per_thread(
            lambda kek, part: [self.open(kek, self.seal(kek, s)) for s in part], shares
        )

    def seal_many(self, shares: list[bytes]) -> list[tuple[bytes, bytes, bytes]]:
        return self._per_thread(lambda kek, part: [self.seal(kek, s) for s in part], shares)

    def rewrap(self, sealed: list[tuple[bytes, bytes, bytes]]) -> list[tuple[bytes, bytes, bytes]]:
        # Moving to a new key means unwrapping and wrapping each data key in the HSM.
        def move(kek, part):
            out = []
            for wrapped, nonce, ciphertext in part:
                data_key = kek.decrypt(
                    wrapped[12:],
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(wrapped[:12], AAD),
                )
                iv = os.urandom(12)
                new = kek.encrypt(
                    data_key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, AAD)
                )
                out.append((iv + new, nonce, ciphertext))
            return out

        return self._per_thread(move, sealed)


def _portal_seal_open(kms: Pkcs11Kms, shares: list[bytes]) -> list[bytes]:
    return kms.open_many(kms.seal_many("bench", shares, context=CONTEXT), context=CONTEXT)


def _per_second(benchmark, count: int) -> float:
    return count / benchmark.stats.stats.median


@pytest.mark.benchmark(group="kms-seal-open-1KiB")
def test_seal_open(benchmark, side, tag, kms, shares):
    tag(PEER_NAME, 20.0)
    naive = Naive(kms)
    if side == "portal":
        assert _portal_seal_open(kms, shares) == shares
        benchmark.pedantic(_portal_seal_open, args=(kms, shares), rounds=10, warmup_rounds=1)
    else:
        assert naive.seal_open(shares[:100]) == shares[:100]
        benchmark.pedantic(naive.seal_open, args=(shares,), rounds=5, warmup_rounds=1)
    rate = _per_second(benchmark, SHARES)
    benchmark.extra_info["shares_sealed_and_opened_per_second"] = rate
    print(f"\n{side}: {rate:,.0f} custodian shares (1 KiB) sealed+opened per second")


@pytest.mark.benchmark(group="kms-seal-open-1KiB-per-call")
def test_seal_open_one_share_per_call(benchmark, side, tag, kms, shares):
    # One share per call from one thread, on both sides: the API cost without batching.
    tag(PEER_NAME.replace(f"{THREADS} threads", "1 thread"))
    few = shares[:500]
    naive = Naive(kms)
    if side == "portal":

        def run():
            return [kms.open(kms.seal("bench", s, context=CONTEXT), context=CONTEXT) for s in few]

    else:

        def run():
            with kms.session() as session:
                kek = naive._kek(session)
                return [naive.open(kek, naive.seal(kek, s)) for s in few]

    assert run() == few
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    rate = _per_second(benchmark, len(few))
    benchmark.extra_info["shares_sealed_and_opened_per_second"] = rate
    print(f"\n{side}: {rate:,.0f} shares sealed+opened per second, one per call")


@pytest.fixture(scope="module")
def rewrap_input(kms) -> dict[str, list]:
    share = os.urandom(SHARE_LEN)
    naive = Naive(kms)
    return {
        "portal": kms.seal_many("bench", [share] * REWRAP, context=CONTEXT),
        "peer": naive.seal_many([share] * REWRAP),
        "share": [share],
    }


@pytest.mark.benchmark(group="kms-rewrap-100k")
def test_rewrap_100k(benchmark, side, tag, kms, rewrap_input):
    # Informative as a ratio (the naive side is bound by the HSM's speed); the requirement is
    # absolute: 100,000 blobs in under REWRAP_LIMIT seconds, checked below.
    tag(PEER_NAME.replace("wrap/unwrap per share", "unwrap + wrap per blob"))
    blobs = rewrap_input[side]
    if side == "portal":
        kms.rotate("bench")
        t0 = time.perf_counter()
        moved = kms.rewrap_many(blobs)
        seconds = time.perf_counter() - t0
        assert {kms.inspect(m).key_version for m in moved[:: REWRAP // 100]} == {
            kms.versions("bench")[-1]
        }
        assert kms.open_many(moved[:1000], context=CONTEXT) == rewrap_input["share"] * 1000
        benchmark.pedantic(kms.rewrap_many, args=(blobs,), rounds=3, warmup_rounds=0)
        median = benchmark.stats.stats.median
        benchmark.extra_info["rewrap_100k_seconds"] = median
        benchmark.extra_info["rewrap_100k_first_run_seconds"] = seconds
        benchmark.extra_info["rewrap_limit_seconds"] = REWRAP_LIMIT
        print(f"\nportal: rewrap of {REWRAP:,} blobs in {seconds:.2f} s (first run)")
        assert max(median, seconds) < REWRAP_LIMIT, f"rewrap of {REWRAP:,} blobs over the limit"
    else:
        naive = Naive(kms)
        moved = naive.rewrap(blobs[:100])
        with kms.session() as session:
            assert naive.open(naive._kek(session), moved[0]) == rewrap_input["share"][0]
        benchmark.pedantic(naive.rewrap, args=(blobs,), rounds=1, warmup_rounds=0)
    print(f"\n{side}: rewrap of {REWRAP:,} blobs: {benchmark.stats.stats.median:.2f} s")

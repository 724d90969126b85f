"""Many threads on one Pkcs11Kms, with the HSM called from several threads at once.

python-pkcs11's own initialisation (C_Initialize(NULL)) lets SoftHSM2 run without its
mutexes, and two threads on two sessions then crash the process (FACTS.md). The KMS
initialises the module with CKF_OS_LOCKING_OK; these tests prove it under load, and the last
one shows that the same load does fail without it, so the others could fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from portal_core.kms import Pkcs11Kms

THREADS = 4
SHARES = 5_000
SHARE_LEN = 1024


def _hammer(kms: Pkcs11Kms, names: list[str], chunk: int) -> list[BaseException]:
    """THREADS threads each seal and open SHARES shares, ``chunk`` at a time."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS, timeout=60)

    def work(t: int) -> None:
        try:
            start.wait()
            name = names[t % len(names)]
            for first in range(0, SHARES, chunk):
                shares = [os.urandom(SHARE_LEN) for _ in range(chunk)]
                context = {"wallet": f"w-{t}-{first}", "party": "custodian"}
                if chunk == 1:
                    sealed = [kms.seal(name, shares[0], context=context)]
                    opened = [kms.open(sealed[0], context=context)]
                else:
                    sealed = kms.seal_many(name, shares, context=context)
                    opened = kms.open_many(sealed, context=context)
                if opened != shares:
                    raise AssertionError(f"thread {t}: wrong plaintext at {first}")
        except BaseException as e:  # collected and reported by the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a thread is stuck"
    return errors


def _names(kms: Pkcs11Kms, count: int) -> list[str]:
    names = [f"conc-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    for name in names:
        kms.create_key(name)
    return names


def test_four_threads_with_every_share_through_the_hsm(hsm_env):
    # No cache and one intermediate key per seal: each share costs an HSM wrap and an HSM
    # unwrap, made from four threads on four sessions.
    with Pkcs11Kms.from_env(hsm_env, pool_size=THREADS, cache_size=0, key_max_uses=1) as kms:
        names = _names(kms, 2)
        errors = _hammer(kms, names, chunk=1)
        assert not errors, errors[:3]
        stats = kms.stats()
        assert stats["intermediate_keys_wrapped"] == THREADS * SHARES
        assert stats["intermediate_keys_unwrapped"] == THREADS * SHARES
        assert stats["hsm_max_in_flight"] >= 2  # several threads inside the HSM at once
        assert stats["sessions_opened"] >= 2


def test_four_threads_in_batches_with_a_tiny_cache(hsm_env):
    # Two cached keys for four threads on four key names, a new intermediate key every 25
    # seals: the cache thrashes and the threads keep wrapping and unwrapping in the HSM.
    with Pkcs11Kms.from_env(hsm_env, pool_size=THREADS, cache_size=2, key_max_uses=25) as kms:
        names = _names(kms, THREADS)
        errors = _hammer(kms, names, chunk=50)
        assert not errors, errors[:3]
        stats = kms.stats()
        assert stats["intermediate_keys_wrapped"] >= THREADS * SHARES // 25
        assert stats["intermediate_keys_unwrapped"] > 0
        assert stats["hsm_max_in_flight"] >= 2
        assert stats["cached_keys"] <= 2


_RAW_PKCS11_LOAD = """
import os, sys, threading
import pkcs11
from pkcs11 import KeyType, Mechanism
from pkcs11.mechanisms import GCMParams

lib = pkcs11.lib(os.environ["PKCS11_MODULE"])  # python-pkcs11's C_Initialize(NULL)
if sys.argv[1] == "os-locking":
    from portal_core.kms import _module
    _module.load(os.environ["PKCS11_MODULE"])
token = lib.get_token(token_label=os.environ["PKCS11_TOKEN_LABEL"])
anchor = token.open(rw=True, user_pin=os.environ["PKCS11_USER_PIN"])
anchor.generate_key(KeyType.AES, 256, label="race", store=False)
failures = []

def work():
    try:
        session = token.open(rw=True)
        key = session.get_key(label="race")
        for _ in range(3000):
            key.encrypt(bytes(32), mechanism=Mechanism.AES_GCM,
                        mechanism_param=GCMParams(os.urandom(12), b"aad"))
    except Exception as e:
        failures.append(type(e).__name__)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("failures:", failures)
sys.exit(1 if failures else 0)
"""


# Seconds one run may take: the fixed run finishes in about one; a run past this is hung.
_RUN_BOUND = 20.0


def _raw_load(hsm_env: dict[str, str], mode: str) -> str:
    """``"ok"``, ``"failed"`` (an error, or killed by a signal) or ``"hung"`` (a deadlock,
    killed after ``_RUN_BOUND`` seconds), with the output for the assertion message."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_RAW_PKCS11_LOAD), mode],
            env={**os.environ, **hsm_env},
            capture_output=True,
            text=True,
            timeout=_RUN_BOUND,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "hung"
    return "ok" if proc.returncode == 0 else f"failed: {proc.stdout.strip()} {proc.stderr[-300:]}"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the race needs two cores to show")
def test_the_same_load_fails_without_os_locking_and_passes_with_it(hsm_env):
    # Control: four threads on four sessions under python-pkcs11's own initialisation crash
    # (a signal), get CKR_GENERAL_ERROR, or deadlock (seen on a clean clone: a hang is the
    # control failing too, so it is bounded and counted). It is a race, so a few attempts
    # are allowed (stopping at the first failure); it failed every time when measured.
    outcomes: list[str] = []
    while len(outcomes) < 5 and all(o == "ok" for o in outcomes):
        outcomes.append(_raw_load(hsm_env, "default"))
    assert outcomes[-1] != "ok", outcomes
    # The fix, on the very same code: re-initialise with CKF_OS_LOCKING_OK.
    for _ in range(2):
        fixed = _raw_load(hsm_env, "os-locking")
        assert fixed == "ok", fixed

"""The enclave's throughput on a real SoftHSM2 token, on every core (threads).

* ``enclave login-read``: verify a WebAuthn assertion (py_webauthn: client data, flags,
  ES256 signature), spend its challenge and advance the counter (two SQLite commits,
  ``synchronous=FULL``), and open the key sealed under the HSM KEK.
* ``enclave vault check``: one right-PIN check: spend a try (a commit), open the record
  under the HSM KEK, compare, restore the tries (a commit).

Each round runs a batch of operations spread over ``THREADS`` threads (each with its own
user or slot, as concurrent users are); the assertions are made by the software
authenticator before the round, outside the timing. There is no peer: no other library
does this job, so each group has the portal side only, and no target. Operations per
second are in ``extra_info["ops_per_s"]`` and printed (``pytest -s``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portal_core.enclave import PasskeyEnclave, PinVault, SqliteEnclaveStore
from portal_core.enclave.prf import split_prf_output
from portal_core.kms import Pkcs11Kms

ROOT = Path(__file__).resolve().parent.parent
# The tests' software authenticator makes the assertions (tests/ is on the path: conftest.py).
from webauthn_authenticator import SoftAuthenticator  # noqa: E402

THREADS = os.cpu_count() or 2
BATCH = 256  # operations per round, split evenly between the threads
ROUNDS = 5
KEY = bytes(range(32))


@pytest.fixture(scope="module")
def kms(hsm_env: dict[str, str]):
    with Pkcs11Kms.from_env(hsm_env, pool_size=2 * THREADS) as instance:
        instance.create_key("enclave-bench")
        yield instance


@pytest.fixture
def store(tmp_path: Path):
    with SqliteEnclaveStore(tmp_path / "enclave.db") as s:
        yield s


def _run_threads(work: list[list[Callable[[], object]]]) -> None:
    def run(items: list[Callable[[], object]]) -> None:
        for item in items:
            item()

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        for future in [pool.submit(run, items) for items in work]:
            future.result()


def _report(benchmark, group: str) -> None:
    median = benchmark.stats.stats.median
    ops = BATCH / median
    benchmark.extra_info.update(
        {"side": "portal", "peer_name": "", "target": None, "ops_per_s": round(ops, 1)}
    )
    print(f"\n{group}: {ops:,.0f} ops/s on {THREADS} threads (batch of {BATCH})")


@pytest.mark.benchmark(group="enclave login-read (verify assertion + unseal key)")
def test_login_read(benchmark, kms, store) -> None:
    enclave = PasskeyEnclave(
        kms,
        store,
        rp_id="example.com",
        rp_name="Bench",
        origins=["https://example.com"],
        key_name="enclave-bench",
    )
    users = []
    for n in range(THREADS):
        user, device = f"user-{n}", SoftAuthenticator()
        options = enclave.begin_registration(user)
        enclave.finish_registration(user, split_prf_output(device.create(options))[0])
        options = enclave.begin_login(user, operation="write")
        response = split_prf_output(device.get(options))[0]
        enclave.finish_login_write(user, response, KEY)
        users.append((user, device))

    def prepare():
        # Per thread, its user's assertions in counter order, each on a fresh challenge.
        work = []
        for user, device in users:
            items = []
            for _ in range(BATCH // THREADS):
                options = enclave.begin_login(user, operation="read")
                response = split_prf_output(device.get(options))[0]
                items.append(lambda u=user, r=response: enclave.finish_login_read(u, r))
            work.append(items)
        return (work,), {}

    benchmark.pedantic(_run_threads, setup=prepare, rounds=ROUNDS, iterations=1)
    # Checked after timing: every login released the key.
    options = enclave.begin_login(users[0][0], operation="read")
    response = split_prf_output(users[0][1].get(options))[0]
    assert enclave.finish_login_read(users[0][0], response) == KEY
    _report(benchmark, "login-read")


@pytest.mark.benchmark(group="enclave vault check (right PIN)")
def test_vault_check(benchmark, kms, store) -> None:
    vault = PinVault(kms, store, operator="bench", key_name="enclave-bench")
    access_key = os.urandom(32)
    # Each slot is its own user's, as concurrent users are.
    owners = {f"slot-{n}": f"user-{n}" for n in range(THREADS)}
    secrets = {slot: vault.enroll(slot, access_key, owner=owners[slot]) for slot in owners}

    def prepare():
        work = [
            [lambda s=slot, o=owner: vault.release(s, access_key, owner=o)] * (BATCH // THREADS)
            for slot, owner in owners.items()
        ]
        return (work,), {}

    benchmark.pedantic(_run_threads, setup=prepare, rounds=ROUNDS, iterations=1)
    for slot, secret in secrets.items():
        assert vault.release(slot, access_key, owner=owners[slot]) == secret
        assert vault.status(slot, owner=owners[slot]).tries_left == vault.max_tries
    _report(benchmark, "vault check")

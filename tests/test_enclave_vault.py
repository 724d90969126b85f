"""PinVault (SVR2-style guess-limited secrets) on a real SoftHSM token: right and wrong
PINs, the limit, destruction, concurrency across threads and processes, and crashes
between the spent try and the answer."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from enclave_fixtures import (  # noqa: F401 - fixtures
    clock_fixture,
    crash_in_process,
    enclave_db_fixture,
    enclave_store_fixture,
    guess_in_process,
    vault_fixture,
)
from portal_core.enclave import (
    PinVault,
    SealedRecordInvalid,
    SecretDestroyed,
    VaultSlotExists,
    VaultSlotNotFound,
    WrongAccessKey,
    derive_key,
    stretch_pin,
)
from portal_core.exceptions import DecryptFailed, NoValidBackup

# Small Argon2id costs keep the suite fast; the split and the derivation are the same.
FAST = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}
SALT = bytes(range(16))
PIN = "493817"
RIGHT = stretch_pin(PIN, SALT, **FAST).access_key


def access(pin: str) -> bytes:
    return stretch_pin(pin, SALT, **FAST).access_key


WRONG = [access(f"{n:06d}") for n in range(40)]


class Crash(BaseException):
    """The process dying at a step (a BaseException: no ``except Exception`` cleanup)."""


def crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    return hook


# -- the basic contract -------------------------------------------------------------------------


def test_enroll_and_release(vault: PinVault) -> None:
    secret = vault.enroll("w1.b1", RIGHT)
    assert len(secret) == 32
    assert vault.release("w1.b1", RIGHT) == secret
    assert vault.release("w1.b1", bytearray(RIGHT)) == secret
    status = vault.status("w1.b1")
    assert (status.tries_left, status.max_tries, status.destroyed) == (10, 10, False)


def test_secrets_differ_per_slot(vault: PinVault) -> None:
    assert vault.enroll("a", RIGHT) != vault.enroll("b", RIGHT)


def test_right_pin_after_wrong_ones(vault: PinVault) -> None:
    secret = vault.enroll("w1.b1", RIGHT)
    for n, wrong in enumerate(WRONG[:9], start=1):
        with pytest.raises(WrongAccessKey) as info:
            vault.release("w1.b1", wrong)
        assert info.value.tries_left == 10 - n
        assert isinstance(info.value, DecryptFailed)
        assert f"{10 - n} tr" in str(info.value)
    assert vault.status("w1.b1").tries_left == 1
    # One try left, and it is right: the secret comes back and the counter is full again.
    assert vault.release("w1.b1", RIGHT) == secret
    assert vault.status("w1.b1").tries_left == 10


def test_tenth_wrong_try_destroys_the_secret(vault: PinVault, enclave_db: Path) -> None:
    vault.enroll("w1.b1", RIGHT, max_tries=10)
    sealed = vault._store.vault_get("w1.b1").sealed
    for wrong in WRONG[:9]:
        with pytest.raises(WrongAccessKey):
            vault.release("w1.b1", wrong)
    with pytest.raises(SecretDestroyed, match="last of 10 tries") as info:
        vault.release("w1.b1", WRONG[9])
    assert info.value.last_try
    assert isinstance(info.value, NoValidBackup)
    # The right PIN is now too late.
    with pytest.raises(SecretDestroyed, match="destroyed") as info:
        vault.release("w1.b1", RIGHT)
    assert not info.value.last_try
    status = vault.status("w1.b1")
    assert (status.tries_left, status.destroyed) == (0, True)
    # Really deleted: the sealed secret is gone from the row, the database file and its
    # journal, not merely flagged.
    record = vault._store.vault_get("w1.b1")
    assert record.sealed is None and record.destroyed_at is not None
    for path in (enclave_db, Path(f"{enclave_db}-wal")):
        if path.exists():
            assert sealed not in path.read_bytes(), path.name


def test_limit_of_one(vault: PinVault) -> None:
    vault.enroll("s", RIGHT, max_tries=1)
    with pytest.raises(SecretDestroyed, match="last of 1 tries"):
        vault.release("s", WRONG[0])


def test_unknown_slot(vault: PinVault) -> None:
    with pytest.raises(VaultSlotNotFound, match="no record") as info:
        vault.release("nope", RIGHT)
    assert isinstance(info.value, NoValidBackup)
    with pytest.raises(VaultSlotNotFound):
        vault.status("nope")


def test_delete(vault: PinVault) -> None:
    vault.enroll("s", RIGHT)
    vault.delete("s")
    vault.delete("s")  # already gone: no error
    with pytest.raises(VaultSlotNotFound):
        vault.release("s", RIGHT)


# -- no reset without the old access key --------------------------------------------------------


def test_enroll_again_is_refused(vault: PinVault) -> None:
    secret = vault.enroll("s", RIGHT)
    for wrong in WRONG[:3]:
        with pytest.raises(WrongAccessKey):
            vault.release("s", wrong)
    # Writing the record again (with a PIN the attacker knows) would reset the counter.
    with pytest.raises(VaultSlotExists, match="cannot be enrolled again"):
        vault.enroll("s", WRONG[0])
    with pytest.raises(VaultSlotExists):
        vault.enroll("s", RIGHT)
    assert vault.status("s").tries_left == 7
    assert vault.release("s", RIGHT) == secret


def test_enroll_again_after_destruction_is_refused(vault: PinVault) -> None:
    vault.enroll("s", RIGHT, max_tries=1)
    with pytest.raises(SecretDestroyed):
        vault.release("s", WRONG[0])
    with pytest.raises(VaultSlotExists):
        vault.enroll("s", RIGHT)


def test_replace_needs_the_old_access_key(vault: PinVault) -> None:
    old_secret = vault.enroll("s", RIGHT, max_tries=5)
    new_pin = access("111111")
    with pytest.raises(WrongAccessKey) as info:
        vault.replace("s", WRONG[0], new_pin)
    assert info.value.tries_left == 4  # the attempt spent a try like any other
    new_secret = vault.replace("s", RIGHT, new_pin, max_tries=3)
    assert new_secret != old_secret
    assert vault.status("s").max_tries == 3
    assert vault.release("s", new_pin) == new_secret
    with pytest.raises(WrongAccessKey):
        vault.release("s", RIGHT)


# -- the record at rest ---------------------------------------------------------------------------


def test_record_sealed_under_the_hsm(vault: PinVault, kms, enclave_db: Path) -> None:
    secret = vault.enroll("w1.b1", RIGHT)
    with sqlite3.connect(enclave_db) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM enclave_vault").fetchone()
    info = kms.inspect(sealed)
    assert info.key_name == vault.key_name
    assert info.context == {
        "purpose": "portal-core enclave pin vault",
        "slot": "w1.b1",
        "generation": "1",
    }
    data = enclave_db.read_bytes() + Path(f"{enclave_db}-wal").read_bytes()
    assert secret not in data
    assert RIGHT not in data


def test_moved_record_does_not_open(vault: PinVault, enclave_db: Path) -> None:
    vault.enroll("mine", access("000000"))
    vault.enroll("theirs", RIGHT)
    # With write access to the store, copy a record whose PIN is known over another one.
    with sqlite3.connect(enclave_db) as conn:
        conn.execute(
            "UPDATE enclave_vault SET sealed = (SELECT sealed FROM enclave_vault "
            "WHERE slot = 'mine') WHERE slot = 'theirs'"
        )
    with pytest.raises(SealedRecordInvalid):
        vault.release("theirs", access("000000"))
    assert vault.status("theirs").tries_left == 9  # and the try was spent


@pytest.mark.parametrize("bad", [b"", b"short", b"x" * 65, "493817"])
def test_bad_access_keys(vault: PinVault, bad) -> None:
    vault.enroll("s", RIGHT)
    with pytest.raises((ValueError, TypeError)):
        vault.release("s", bad)
    assert vault.status("s").tries_left == 10  # refused before a try was spent


def test_bad_arguments(vault: PinVault) -> None:
    with pytest.raises(ValueError):
        vault.enroll("s", RIGHT, max_tries=0)
    with pytest.raises(ValueError):
        vault.enroll("s", RIGHT, max_tries=256)
    with pytest.raises(TypeError):
        vault.enroll("s", RIGHT, max_tries=True)
    with pytest.raises(ValueError):
        vault.enroll("../etc", RIGHT)


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_wrong_guesses_threads(vault: PinVault, monkeypatch) -> None:
    vault.enroll("s", RIGHT, max_tries=5)
    evaluated = []
    evaluate = vault._evaluate

    def counting(record, key):
        evaluated.append(record.tries_left)
        time.sleep(0.002)  # widen the window between the spent try and the answer
        return evaluate(record, key)

    monkeypatch.setattr(vault, "_evaluate", counting)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def guess(wrong: bytes) -> None:
        barrier.wait()
        try:
            vault.release("s", wrong)
            result = "released"
        except WrongAccessKey:
            result = "wrong"
        except SecretDestroyed as e:
            result = "destroyed-last" if e.last_try else "destroyed"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=(w,)) for w in WRONG[:16]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly five guesses were ever evaluated, each against a distinct counter value.
    assert sorted(evaluated) == [0, 1, 2, 3, 4]
    assert outcomes.count("wrong") == 4
    assert outcomes.count("destroyed-last") == 1
    assert outcomes.count("destroyed") == 11
    assert vault.status("s").destroyed


def test_concurrent_wrong_guesses_processes(vault: PinVault, hsm_env, enclave_db: Path) -> None:
    vault.enroll("s", RIGHT, max_tries=10)
    start_at = time.time() + 3.0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        children = [
            pool.submit(
                guess_in_process,
                hsm_env,
                str(enclave_db),
                vault.key_name,
                "s",
                WRONG[i * 8 : i * 8 + 8],
                start_at,
            )
            for i in range(2)
        ]
        # And this process guesses at the same time, on two threads.
        local: list[str] = []
        lock = threading.Lock()

        def guess(keys: list[bytes]) -> None:
            time.sleep(max(0.0, start_at - time.time()))
            for key in keys:
                try:
                    vault.release("s", key)
                    result = "released"
                except WrongAccessKey:
                    result = "wrong"
                except SecretDestroyed as e:
                    result = "destroyed-last" if e.last_try else "destroyed"
                with lock:
                    local.append(result)

        threads = [
            threading.Thread(target=guess, args=(WRONG[16 + i * 8 : 24 + i * 8],)) for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = local + [o for child in children for o in child.result(timeout=300)]
    assert len(outcomes) == 32
    assert "released" not in outcomes
    # Ten tries in all, whoever made them: nine answered "wrong", the tenth destroyed it.
    assert outcomes.count("wrong") == 9
    assert outcomes.count("destroyed-last") == 1
    assert outcomes.count("destroyed") == 22


# -- crashes between the spent try and the answer -----------------------------------------------


@pytest.mark.parametrize("step", ["try-committed", "answer-ready"])
@pytest.mark.parametrize("right", [False, True], ids=["wrong-pin", "right-pin"])
def test_crash_still_counts_the_try(
    kms, key_name, enclave_store, clock, step: str, right: bool
) -> None:
    vault = PinVault(kms, enclave_store, key_name=key_name, checkpoint=crash_at(step))
    plain = PinVault(kms, enclave_store, key_name=key_name)
    secret = plain.enroll("s", RIGHT, max_tries=10)
    with pytest.raises(Crash):
        vault.release("s", RIGHT if right else WRONG[0])
    expected = 10 if (right and step == "answer-ready") else 9
    # A right PIN restores the counter only once it has been evaluated: a crash before that
    # costs the try, a crash after it (the answer lost on the way) does not matter.
    assert plain.status("s").tries_left == expected
    assert plain.release("s", RIGHT) == secret


def test_crashing_every_try_does_not_give_more_tries(kms, key_name, enclave_store) -> None:
    # Retry-until-lucky by crashing the server at every guess, before it can answer.
    crashing = PinVault(kms, enclave_store, key_name=key_name, checkpoint=crash_at("try-committed"))
    plain = PinVault(kms, enclave_store, key_name=key_name)
    plain.enroll("s", RIGHT, max_tries=10)
    for wrong in WRONG[:10]:
        with pytest.raises(Crash):
            crashing.release("s", wrong)
    # Ten tries are spent; none was ever evaluated; the next call finds none left and
    # destroys the secret, even for the right PIN.
    assert plain.status("s").tries_left == 0
    with pytest.raises(SecretDestroyed):
        plain.release("s", RIGHT)
    assert plain.status("s").destroyed


@pytest.mark.parametrize("step", ["try-committed", "answer-ready"])
def test_process_killed_after_the_commit(
    vault: PinVault, hsm_env, enclave_db: Path, step: str
) -> None:
    secret = vault.enroll("s", RIGHT, max_tries=10)
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=crash_in_process,
        args=(hsm_env, str(enclave_db), vault.key_name, "s", WRONG[0], step),
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == 17  # killed at the checkpoint, before any answer
    # The spent try survived the process: it was committed (and synced) before the check.
    assert vault.status("s").tries_left == 9
    assert vault.release("s", RIGHT) == secret


# -- the client's side --------------------------------------------------------------------------


def test_stretch_and_derive() -> None:
    parts = stretch_pin(PIN, SALT, **FAST)
    again = stretch_pin(PIN, SALT, **FAST)
    assert parts == again
    assert len(parts.encryption_key) == len(parts.access_key) == 32
    assert parts.encryption_key != parts.access_key
    assert stretch_pin("493818", SALT, **FAST).access_key != parts.access_key
    # NFC: the same PIN typed with composed or decomposed accents stretches the same.
    assert stretch_pin("caf\u00e9", SALT, **FAST) == stretch_pin("cafe\u0301", SALT, **FAST)
    secret = os.urandom(32)
    key = derive_key(parts.encryption_key, secret, salt=SALT)
    assert len(key) == 32
    assert key != derive_key(parts.encryption_key, os.urandom(32), salt=SALT)
    assert key != derive_key(again.access_key, secret, salt=SALT)
    with pytest.raises(ValueError):
        stretch_pin("", SALT, **FAST)
    with pytest.raises(ValueError):
        stretch_pin(PIN, b"short", **FAST)
    with pytest.raises(TypeError):
        stretch_pin(493817, SALT, **FAST)  # type: ignore[arg-type]


def test_pin_vault_round_trip(vault: PinVault) -> None:
    # The whole SVR2-style flow: enroll with the access key, derive, forget, recover.
    parts = stretch_pin(PIN, SALT, **FAST)
    key = derive_key(parts.encryption_key, vault.enroll("s", parts.access_key), salt=SALT)
    again = stretch_pin(PIN, SALT, **FAST)
    assert derive_key(again.encryption_key, vault.release("s", again.access_key), salt=SALT) == key


def test_vault_works_without_webauthn() -> None:
    # The vault half must not need the passkey half's dependency; the passkey half says
    # what to install.
    code = (
        "import sys; sys.modules['webauthn'] = None\n"
        "import portal_core.enclave as e\n"
        "assert e.PinVault and e.SqliteEnclaveStore\n"
        "try:\n"
        "    e.PasskeyEnclave\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "pip install 'portal-core[enclave]'" in out.stdout

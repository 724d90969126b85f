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
    OPERATOR,
    clock_fixture,
    crash_in_process,
    enclave_db_fixture,
    enclave_store_fixture,
    guess_in_process,
    vault_fixture,
)
from portal_core import kdf
from portal_core.enclave import (
    PinVault,
    SealedRecordInvalid,
    SecretDestroyed,
    SqliteEnclaveStore,
    VaultSlotExists,
    VaultSlotNotFound,
    WrongAccessKey,
    derive_key,
    stretch_pin,
)
from portal_core.exceptions import DecryptFailed, NoValidBackup
from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS
from present import present

# Small Argon2id costs keep the suite fast; the split and the derivation are the same.
FAST = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}
SALT = bytes(range(16))
PIN = "493817"
OWNER = "alice"
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
    secret = vault.enroll("w1.b1", RIGHT, owner=OWNER)
    assert len(secret) == 32
    assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret
    assert vault.release("w1.b1", bytearray(RIGHT), owner=OWNER) == secret
    status = vault.status("w1.b1", owner=OWNER)
    assert (status.tries_left, status.max_tries, status.destroyed) == (10, 10, False)


def test_secrets_differ_per_slot(vault: PinVault) -> None:
    assert vault.enroll("a", RIGHT, owner=OWNER) != vault.enroll("b", RIGHT, owner=OWNER)


def test_right_pin_after_wrong_ones(vault: PinVault) -> None:
    secret = vault.enroll("w1.b1", RIGHT, owner=OWNER)
    for n, wrong in enumerate(WRONG[:9], start=1):
        with pytest.raises(WrongAccessKey) as info:
            vault.release("w1.b1", wrong, owner=OWNER)
        assert info.value.tries_left == 10 - n
        assert isinstance(info.value, DecryptFailed)
        assert f"{10 - n} tr" in str(info.value)
    assert vault.status("w1.b1", owner=OWNER).tries_left == 1
    # One try left, and it is right: the secret comes back and the counter is full again.
    assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret
    assert vault.status("w1.b1", owner=OWNER).tries_left == 10


def test_tenth_wrong_try_destroys_the_secret(vault: PinVault, enclave_db: Path) -> None:
    vault.enroll("w1.b1", RIGHT, max_tries=10, owner=OWNER)
    sealed = present(present(vault._store.vault_get("w1.b1")).sealed)
    for wrong in WRONG[:9]:
        with pytest.raises(WrongAccessKey):
            vault.release("w1.b1", wrong, owner=OWNER)
    with pytest.raises(SecretDestroyed, match="last of 10 tries") as info:
        vault.release("w1.b1", WRONG[9], owner=OWNER)
    assert info.value.last_try
    assert isinstance(info.value, NoValidBackup)
    # The right PIN is now too late.
    with pytest.raises(SecretDestroyed, match="destroyed") as info:
        vault.release("w1.b1", RIGHT, owner=OWNER)
    assert not info.value.last_try
    status = vault.status("w1.b1", owner=OWNER)
    assert (status.tries_left, status.destroyed) == (0, True)
    # Really deleted: the sealed secret is gone from the row, the database file and its
    # journal, not merely flagged.
    record = present(vault._store.vault_get("w1.b1"))
    assert record.sealed is None and record.destroyed_at is not None
    for path in (enclave_db, Path(f"{enclave_db}-wal")):
        if path.exists():
            assert sealed not in path.read_bytes(), path.name


def test_limit_of_one(vault: PinVault) -> None:
    vault.enroll("s", RIGHT, max_tries=1, owner=OWNER)
    with pytest.raises(SecretDestroyed, match="last of 1 tries"):
        vault.release("s", WRONG[0], owner=OWNER)


def test_unknown_slot(vault: PinVault) -> None:
    with pytest.raises(VaultSlotNotFound, match="no record") as info:
        vault.release("nope", RIGHT, owner=OWNER)
    assert isinstance(info.value, NoValidBackup)
    with pytest.raises(VaultSlotNotFound):
        vault.status("nope", owner=OWNER)


def test_delete(vault: PinVault) -> None:
    vault.enroll("s", RIGHT, owner=OWNER)
    vault.delete("s", owner=OWNER)
    vault.delete("s", owner=OWNER)  # already gone: no error
    with pytest.raises(VaultSlotNotFound):
        vault.release("s", RIGHT, owner=OWNER)


# -- no reset without the old access key --------------------------------------------------------


def test_enroll_again_is_refused(vault: PinVault) -> None:
    secret = vault.enroll("s", RIGHT, owner=OWNER)
    for wrong in WRONG[:3]:
        with pytest.raises(WrongAccessKey):
            vault.release("s", wrong, owner=OWNER)
    # Writing the record again (with a PIN the attacker knows) would reset the counter.
    with pytest.raises(VaultSlotExists, match="cannot be enrolled again"):
        vault.enroll("s", WRONG[0], owner=OWNER)
    with pytest.raises(VaultSlotExists):
        vault.enroll("s", RIGHT, owner=OWNER)
    assert vault.status("s", owner=OWNER).tries_left == 7
    assert vault.release("s", RIGHT, owner=OWNER) == secret


def test_enroll_again_after_destruction_is_refused(vault: PinVault) -> None:
    vault.enroll("s", RIGHT, max_tries=1, owner=OWNER)
    with pytest.raises(SecretDestroyed):
        vault.release("s", WRONG[0], owner=OWNER)
    with pytest.raises(VaultSlotExists):
        vault.enroll("s", RIGHT, owner=OWNER)


def test_replace_needs_the_old_access_key(vault: PinVault) -> None:
    old_secret = vault.enroll("s", RIGHT, max_tries=5, owner=OWNER)
    new_pin = access("111111")
    with pytest.raises(WrongAccessKey) as info:
        vault.replace("s", WRONG[0], new_pin, owner=OWNER)
    assert info.value.tries_left == 4  # the attempt spent a try like any other
    new_secret = vault.replace("s", RIGHT, new_pin, max_tries=3, owner=OWNER)
    assert new_secret != old_secret
    assert vault.status("s", owner=OWNER).max_tries == 3
    assert vault.release("s", new_pin, owner=OWNER) == new_secret
    with pytest.raises(WrongAccessKey):
        vault.release("s", RIGHT, owner=OWNER)


# -- the record at rest ---------------------------------------------------------------------------


def test_record_sealed_under_the_hsm(vault: PinVault, kms, enclave_db: Path) -> None:
    secret = vault.enroll("w1.b1", RIGHT, owner=OWNER)
    with sqlite3.connect(enclave_db) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM enclave_vault").fetchone()
    info = kms.inspect(sealed)
    assert info.key_name == vault.key_name
    assert info.context == {
        "purpose": "portal-core enclave pin vault",
        "slot": "w1.b1",
        "generation": "1",
        "owner": OWNER,
    }
    data = enclave_db.read_bytes() + Path(f"{enclave_db}-wal").read_bytes()
    assert secret not in data
    assert RIGHT not in data


def test_moved_record_does_not_open(vault: PinVault, enclave_db: Path) -> None:
    vault.enroll("mine", access("000000"), owner=OWNER)
    vault.enroll("theirs", RIGHT, owner=OWNER)
    # With write access to the store, copy a record whose PIN is known over another one.
    with sqlite3.connect(enclave_db) as conn:
        conn.execute(
            "UPDATE enclave_vault SET sealed = (SELECT sealed FROM enclave_vault "
            "WHERE slot = 'mine') WHERE slot = 'theirs'"
        )
    with pytest.raises(SealedRecordInvalid):
        vault.release("theirs", access("000000"), owner=OWNER)
    assert vault.status("theirs", owner=OWNER).tries_left == 9  # and the try was spent


@pytest.mark.parametrize("bad", [b"", b"short", b"x" * 65, "493817"])
def test_bad_access_keys(vault: PinVault, bad) -> None:
    vault.enroll("s", RIGHT, owner=OWNER)
    with pytest.raises((ValueError, TypeError)):
        vault.release("s", bad, owner=OWNER)
    assert vault.status("s", owner=OWNER).tries_left == 10  # refused before a try was spent


def test_bad_arguments(vault: PinVault) -> None:
    with pytest.raises(ValueError):
        vault.enroll("s", RIGHT, max_tries=0, owner=OWNER)
    with pytest.raises(ValueError):
        vault.enroll("s", RIGHT, max_tries=256, owner=OWNER)
    with pytest.raises(TypeError):
        vault.enroll("s", RIGHT, max_tries=True, owner=OWNER)
    with pytest.raises(ValueError):
        vault.enroll("../etc", RIGHT, owner=OWNER)


# -- owners ---------------------------------------------------------------------------------------

MALLORY = "mallory"


def _same_text(error: Exception, slot: str) -> str:
    return str(error).replace(repr(slot), "<slot>")


def test_another_owner_cannot_touch_a_slot(vault: PinVault, clock) -> None:
    secret = vault.enroll("w1.b1", RIGHT, owner=OWNER, params=b"P" * 32)
    before = present(vault._store.vault_get("w1.b1"))
    clock.advance(60)  # any write from here on would show in updated_at
    # Mallory learned the slot (from a cipher text's header, or a log) and guesses away.
    refusals: list[VaultSlotNotFound] = []
    for wrong in WRONG[:20]:
        with pytest.raises(VaultSlotNotFound) as info:
            vault.release("w1.b1", wrong, owner=MALLORY)
        refusals.append(info.value)
    # Even with the right PIN: the slot is not Mallory's.
    with pytest.raises(VaultSlotNotFound) as info:
        vault.release("w1.b1", RIGHT, owner=MALLORY)
    refusals.append(info.value)
    with pytest.raises(VaultSlotNotFound) as info:
        vault.status("w1.b1", owner=MALLORY)
    refusals.append(info.value)
    with pytest.raises(VaultSlotNotFound) as info:
        vault.replace("w1.b1", RIGHT, WRONG[0], owner=MALLORY)
    refusals.append(info.value)
    # delete() of a missing slot is not an error; of another owner's slot neither: the
    # two look the same, and the record stays.
    vault.delete("w1.b1", owner=MALLORY)
    with pytest.raises(VaultSlotExists):
        vault.enroll("w1.b1", WRONG[0], owner=MALLORY)
    # Each refusal reads exactly as for a slot that does not exist.
    with pytest.raises(VaultSlotNotFound) as info:
        vault.release("nope", WRONG[0], owner=MALLORY)
    missing = _same_text(info.value, "nope")
    with pytest.raises(VaultSlotNotFound) as info:
        vault.status("nope", owner=MALLORY)
    assert _same_text(info.value, "nope") == missing
    assert {_same_text(e, "w1.b1") for e in refusals} == {missing}
    # Nothing changed: same row (tries, generation, blob, updated_at), all tries left.
    assert vault._store.vault_get("w1.b1") == before
    status = vault.status("w1.b1", owner=OWNER)
    assert (status.tries_left, status.destroyed, status.params) == (10, False, b"P" * 32)
    assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret
    assert present(vault._store.vault_get("w1.b1")).generation == before.generation == 1


def test_another_owner_cannot_destroy_an_exhausted_slot(vault: PinVault) -> None:
    # Tries at 0 (the last one spent, never evaluated): the next call of the owner destroys
    # the secret; a call of anyone else must not.
    secret = vault.enroll("s", RIGHT, owner=OWNER, max_tries=1)
    with pytest.raises(Crash):
        PinVault(
            vault._kms,
            vault._store,
            operator=OPERATOR,
            key_name=vault.key_name,
            checkpoint=crash_at("try-committed"),
        ).release("s", RIGHT, owner=OWNER)
    assert vault.status("s", owner=OWNER).tries_left == 0
    with pytest.raises(VaultSlotNotFound):
        vault.release("s", WRONG[0], owner=MALLORY)
    record = present(vault._store.vault_get("s"))
    assert not record.destroyed and record.tries_left == 0
    with pytest.raises(SecretDestroyed):
        vault.release("s", RIGHT, owner=OWNER)
    assert secret and vault.status("s", owner=OWNER).destroyed


@pytest.mark.parametrize("rewrite_to", [MALLORY, ""], ids=["attacker", "unclaimed"])
def test_rewritten_owner_column_does_not_hand_over_the_slot(
    vault: PinVault, enclave_db: Path, rewrite_to: str
) -> None:
    secret = vault.enroll("w1.b1", RIGHT, owner=OWNER)
    # With write access to the store, give the row to Mallory (or make it look like a
    # record from before owners, which any caller's right PIN would claim).
    with sqlite3.connect(enclave_db) as conn:
        conn.execute("UPDATE enclave_vault SET owner = ? WHERE slot = 'w1.b1'", (rewrite_to,))
    # Mallory knows the PIN too (the worst case): the blob was sealed with Alice bound, so
    # it does not open as Mallory's, nor as an unowned record.
    for key in (RIGHT, WRONG[0]):
        with pytest.raises(SealedRecordInvalid):
            vault.release("w1.b1", key, owner=MALLORY)
    record = present(vault._store.vault_get("w1.b1"))
    assert record.owner == rewrite_to and record.generation == 1  # not claimed, not re-sealed
    assert record.tries_left == 8  # the two tries were spent, nothing more
    # Put back, the record is Alice's again, and opens for her alone.
    with sqlite3.connect(enclave_db) as conn:
        conn.execute("UPDATE enclave_vault SET owner = ? WHERE slot = 'w1.b1'", (OWNER,))
    assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret


def _write_legacy_record(kms, key_name: str, db: Path, slot: str, access_key: bytes) -> bytes:
    """A vault record as the code before owners wrote it, in a version-1 database: sealed
    without an owner in its context, in a row without owner or params. Its secret."""
    secret = os.urandom(32)
    verifier = kdf.hkdf_sha256(
        access_key, salt=slot.encode(), info=b"portal-core enclave vault v1: access-key verifier"
    )
    sealed = kms.seal(
        key_name,
        b"\x01" + secret + verifier,
        context={"purpose": "portal-core enclave pin vault", "slot": slot, "generation": "1"},
    )
    with SqliteEnclaveStore(db, migrations=ENCLAVE_MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO enclave_vault (slot, sealed, tries_left, max_tries, generation, "
            "created_at, updated_at) VALUES (?, ?, 10, 10, 1, 0, 0)",
            (slot, sealed),
        )
    return secret


def test_legacy_record_is_claimed_by_the_first_right_access_key(
    kms, key_name: str, tmp_path: Path, clock
) -> None:
    db = tmp_path / "old.db"
    secret = _write_legacy_record(kms, key_name, db, "w1.b1", RIGHT)
    with SqliteEnclaveStore(db) as store:  # the upgrade to version 2
        assert store.schema_version == 2
        vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name, clock=clock)
        assert present(store.vault_get("w1.b1")).owner == ""
        # Unclaimed: anyone may look and spend a try, as before owners existed.
        assert vault.status("w1.b1", owner=MALLORY).params == b""
        with pytest.raises(WrongAccessKey) as info:
            vault.release("w1.b1", WRONG[0], owner=MALLORY)
        assert info.value.tries_left == 9
        # Alice's right access key returns the secret and makes the slot hers: re-sealed
        # with her bound, at the next generation, tries restored.
        assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret
        record = present(store.vault_get("w1.b1"))
        assert (record.owner, record.generation, record.tries_left) == (OWNER, 2, 10)
        assert kms.inspect(record.sealed).context == {
            "purpose": "portal-core enclave pin vault",
            "slot": "w1.b1",
            "generation": "2",
            "owner": OWNER,
        }
        # From now on it is Alice's alone, even for the right PIN.
        for call in (
            lambda: vault.release("w1.b1", RIGHT, owner=MALLORY),
            lambda: vault.status("w1.b1", owner=MALLORY),
            lambda: vault.replace("w1.b1", RIGHT, WRONG[0], owner=MALLORY),
        ):
            with pytest.raises(VaultSlotNotFound):
                call()
        vault.delete("w1.b1", owner=MALLORY)
        assert store.vault_get("w1.b1") == record
        assert vault.release("w1.b1", RIGHT, owner=OWNER) == secret
        assert present(store.vault_get("w1.b1")).generation == 2  # a plain release re-seals nothing


def test_legacy_record_wrong_key_claims_nothing(kms, key_name: str, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    secret = _write_legacy_record(kms, key_name, db, "s", RIGHT)
    with SqliteEnclaveStore(db) as store:
        vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name)
        for n, wrong in enumerate(WRONG[:3], start=1):
            with pytest.raises(WrongAccessKey):
                vault.release("s", wrong, owner=MALLORY if n % 2 else OWNER)
        record = present(store.vault_get("s"))
        assert (record.owner, record.generation, record.tries_left) == ("", 1, 7)
        # replace() claims first (the old key checked as release does), then replaces.
        new_key = access("111111")
        new_secret = vault.replace("s", RIGHT, new_key, owner=OWNER)
        assert new_secret != secret
        record = present(store.vault_get("s"))
        assert (record.owner, record.generation, record.tries_left) == (OWNER, 3, 10)
        assert vault.release("s", new_key, owner=OWNER) == new_secret
        with pytest.raises(VaultSlotNotFound):
            vault.release("s", new_key, owner=MALLORY)


def test_legacy_record_can_be_deleted_by_any_caller_until_claimed(
    kms, key_name: str, tmp_path: Path
) -> None:
    # Unclaimed, it has no owner to check against (and any caller could destroy it anyway
    # by spending its tries); once claimed, only its owner can delete it.
    db = tmp_path / "old.db"
    _write_legacy_record(kms, key_name, db, "s", RIGHT)
    with SqliteEnclaveStore(db) as store:
        vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name)
        vault.delete("s", owner=MALLORY)
        assert store.vault_get("s") is None
    db = tmp_path / "old2.db"
    secret = _write_legacy_record(kms, key_name, db, "s", RIGHT)
    with SqliteEnclaveStore(db) as store:
        vault = PinVault(kms, store, operator=OPERATOR, key_name=key_name)
        assert vault.release("s", RIGHT, owner=OWNER) == secret
        vault.delete("s", owner=MALLORY)
        assert vault.release("s", RIGHT, owner=OWNER) == secret
        vault.delete("s", owner=OWNER)
        assert store.vault_get("s") is None


def test_concurrent_claims_one_wins(kms, key_name: str, tmp_path: Path) -> None:
    # Two callers who both know the PIN of an unclaimed record: Alice's try is spent and
    # being checked when Mallory's whole release runs and claims it. Alice's claim then
    # loses the compare-and-set: she gets no secret, and the record stays Mallory's.
    db = tmp_path / "old.db"
    secret = _write_legacy_record(kms, key_name, db, "s", RIGHT)
    with SqliteEnclaveStore(db) as store:
        plain = PinVault(kms, store, operator=OPERATOR, key_name=key_name)
        released: list[bytes] = []

        def meanwhile(step: str) -> None:
            if step == "try-committed":
                released.append(plain.release("s", RIGHT, owner=MALLORY))

        racing = PinVault(kms, store, operator=OPERATOR, key_name=key_name, checkpoint=meanwhile)
        with pytest.raises(VaultSlotNotFound):
            racing.release("s", RIGHT, owner=OWNER)
        assert released == [secret]
        record = present(store.vault_get("s"))
        assert (record.owner, record.generation) == (MALLORY, 2)


def test_params_round_trip(vault: PinVault) -> None:
    vault.enroll("empty", RIGHT, owner=OWNER)
    assert vault.status("empty", owner=OWNER).params == b""
    for slot, params in (("full", bytes(range(256))), ("view", bytearray(b"digest"))):
        vault.enroll(slot, RIGHT, owner=OWNER, params=params)
        got = vault.status(slot, owner=OWNER).params
        assert got == bytes(params) and type(got) is bytes
    # A PIN change keeps them.
    vault.replace("full", RIGHT, WRONG[0], owner=OWNER)
    assert vault.status("full", owner=OWNER).params == bytes(range(256))


@pytest.mark.parametrize(
    ("params", "error"),
    [(b"x" * 257, ValueError), ("digest", TypeError), (7, TypeError), (None, TypeError)],
)
def test_bad_params_are_refused(vault: PinVault, params, error) -> None:
    with pytest.raises(error, match="params"):
        vault.enroll("s", RIGHT, owner=OWNER, params=params)
    with pytest.raises(VaultSlotNotFound):  # nothing was stored
        vault.status("s", owner=OWNER)


@pytest.mark.parametrize(
    ("owner", "error"), [("", ValueError), ("a\nb", ValueError), (7, TypeError)]
)
def test_bad_owners_are_refused(vault: PinVault, owner, error) -> None:
    vault.enroll("s", RIGHT, owner=OWNER)
    for call in (
        lambda: vault.enroll("t", RIGHT, owner=owner),
        lambda: vault.release("s", RIGHT, owner=owner),
        lambda: vault.status("s", owner=owner),
        lambda: vault.replace("s", RIGHT, WRONG[0], owner=owner),
        lambda: vault.delete("s", owner=owner),
    ):
        with pytest.raises(error, match="vault owner"):
            call()
    with pytest.raises(TypeError, match="owner"):
        vault.release("s", RIGHT)  # type: ignore[call-arg]
    assert vault.status("s", owner=OWNER).tries_left == 10  # nothing was spent


def test_operator(kms, key_name: str, enclave_store) -> None:
    vault = PinVault(kms, enclave_store, operator="custodian-1", key_name=key_name)
    assert vault.operator == "custodian-1"
    assert "operator='custodian-1'" in repr(vault)
    with pytest.raises(TypeError, match="operator"):
        PinVault(kms, enclave_store, key_name=key_name)  # type: ignore[call-arg]
    for bad, error in (("", ValueError), ("x" * 257, ValueError), ("a\tb", ValueError)):
        with pytest.raises(error, match="vault operator"):
            PinVault(kms, enclave_store, operator=bad, key_name=key_name)
    with pytest.raises(TypeError, match="vault operator"):
        PinVault(kms, enclave_store, operator=b"bytes", key_name=key_name)  # type: ignore[arg-type]


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_wrong_guesses_threads(vault: PinVault, monkeypatch) -> None:
    vault.enroll("s", RIGHT, max_tries=5, owner=OWNER)
    evaluated = []
    evaluate = vault._evaluate

    def counting(record, key):
        evaluated.append(record.tries_left)
        time.sleep(0.002)  # widen the window between the spent try and the answer
        return evaluate(record, key)

    monkeypatch.setattr(vault, "_evaluate", counting)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16, timeout=30)

    def guess(wrong: bytes) -> None:
        barrier.wait()
        try:
            vault.release("s", wrong, owner=OWNER)
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
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    # Exactly five guesses were ever evaluated, each against a distinct counter value.
    assert sorted(evaluated) == [0, 1, 2, 3, 4]
    assert outcomes.count("wrong") == 4
    assert outcomes.count("destroyed-last") == 1
    assert outcomes.count("destroyed") == 11
    assert vault.status("s", owner=OWNER).destroyed


def test_concurrent_wrong_guesses_processes(vault: PinVault, hsm_env, enclave_db: Path) -> None:
    vault.enroll("s", RIGHT, max_tries=10, owner=OWNER)
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
                OWNER,
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
                    vault.release("s", key, owner=OWNER)
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
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        outcomes = local + [o for child in children for o in child.result(timeout=60)]
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
    vault = PinVault(
        kms, enclave_store, operator=OPERATOR, key_name=key_name, checkpoint=crash_at(step)
    )
    plain = PinVault(kms, enclave_store, operator=OPERATOR, key_name=key_name)
    secret = plain.enroll("s", RIGHT, max_tries=10, owner=OWNER)
    with pytest.raises(Crash):
        vault.release("s", RIGHT if right else WRONG[0], owner=OWNER)
    expected = 10 if (right and step == "answer-ready") else 9
    # A right PIN restores the counter only once it has been evaluated: a crash before that
    # costs the try, a crash after it (the answer lost on the way) does not matter.
    assert plain.status("s", owner=OWNER).tries_left == expected
    assert plain.release("s", RIGHT, owner=OWNER) == secret


def test_crashing_every_try_does_not_give_more_tries(kms, key_name, enclave_store) -> None:
    # Retry-until-lucky by crashing the server at every guess, before it can answer.
    crashing = PinVault(
        kms,
        enclave_store,
        operator=OPERATOR,
        key_name=key_name,
        checkpoint=crash_at("try-committed"),
    )
    plain = PinVault(kms, enclave_store, operator=OPERATOR, key_name=key_name)
    plain.enroll("s", RIGHT, max_tries=10, owner=OWNER)
    for wrong in WRONG[:10]:
        with pytest.raises(Crash):
            crashing.release("s", wrong, owner=OWNER)
    # Ten tries are spent; none was ever evaluated; the next call finds none left and
    # destroys the secret, even for the right PIN.
    assert plain.status("s", owner=OWNER).tries_left == 0
    with pytest.raises(SecretDestroyed):
        plain.release("s", RIGHT, owner=OWNER)
    assert plain.status("s", owner=OWNER).destroyed


@pytest.mark.parametrize("step", ["try-committed", "answer-ready"])
def test_process_killed_after_the_commit(
    vault: PinVault, hsm_env, enclave_db: Path, step: str
) -> None:
    secret = vault.enroll("s", RIGHT, max_tries=10, owner=OWNER)
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=crash_in_process,
        args=(hsm_env, str(enclave_db), vault.key_name, "s", OWNER, WRONG[0], step),
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 17  # killed at the checkpoint, before any answer
    # The spent try survived the process: it was committed (and synced) before the check.
    assert vault.status("s", owner=OWNER).tries_left == 9
    assert vault.release("s", RIGHT, owner=OWNER) == secret


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
    key = derive_key(
        parts.encryption_key, vault.enroll("s", parts.access_key, owner=OWNER), salt=SALT
    )
    again = stretch_pin(PIN, SALT, **FAST)
    assert (
        derive_key(
            again.encryption_key, vault.release("s", again.access_key, owner=OWNER), salt=SALT
        )
        == key
    )


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
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'portal-core-mpc[enclave]'" in out.stdout


def test_the_vault_and_the_enclave_create_their_keys_as_the_custodian_does(
    kms, enclave_store
) -> None:
    # One rule for every sealing component: a missing key-encryption key is made on first
    # start, and an existing one is used as it is.
    from portal_core.enclave import PasskeyEnclave
    from portal_core.kms import KeyNotFound

    names = [f"first-start-{os.urandom(4).hex()}" for _ in range(2)]
    for name in names:
        with pytest.raises(KeyNotFound):
            kms.describe(name)
    PinVault(kms, enclave_store, operator="op", key_name=names[0])
    PasskeyEnclave(
        kms,
        enclave_store,
        rp_id="example.com",
        rp_name="Example",
        origins=["https://example.com"],
        key_name=names[1],
    )
    assert [kms.describe(n).newest for n in names] == [1, 1]
    PinVault(kms, enclave_store, operator="op", key_name=names[0])  # again: no error
    assert kms.describe(names[0]).newest == 1

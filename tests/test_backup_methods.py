"""Backup methods without the flows: the password policy and key derivation, the key file,
the cipher-text document, progress orders. No HSM needed."""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

import pytest

from backup_helpers import FAST, FakeVault
from portal_core import envelope, kdf
from portal_core.backup import (
    BACKUP_ORDER,
    OWASP_ARGON2,
    RECOVERY_ORDER,
    Argon2Params,
    FileKeyStorage,
    Keepers,
    KeyBinding,
    KeyStorage,
    PasswordMethod,
    PasswordPolicy,
    Status,
    StoredKeyMethod,
    common_passwords,
    document,
)
from portal_core.backup.methods import check_method
from portal_core.backup.progress import Progress
from portal_core.exceptions import (
    DecryptFailed,
    KdfParametersRefused,
    NoValidBackup,
    PasswordRequired,
    UnsupportedBackupMethod,
    VaultNotIndependent,
    WeakPassword,
)

BINDING = KeyBinding("client-1", "wallet-1", "backup-1", "PASSWORD")
# A backup whose halves the custodian keeps, with a vault run by someone else.
KEEPERS = Keepers(custodian="custodian-op", cipher_text="custodian-op")
VAULTED = KeyBinding("client-1", "wallet-1", "backup-1", "PASSWORD", KEEPERS)


# -- the password policy -----------------------------------------------------------------


def test_the_common_password_list_is_the_maintained_one():
    common = common_passwords()
    assert len(common) > 25_000
    assert {"password", "123456", "qwerty", "iloveyou"} <= common


@pytest.mark.parametrize(
    ("password", "error", "why"),
    [
        (None, PasswordRequired, "needs a password"),
        ("", PasswordRequired, "needs a password"),
        ("Tr0ub4!", WeakPassword, "shorter than 15 characters"),
        # What a newcomer found accepted before NIST SP 800-63B rev. 4 and the estimate:
        (" " * 8, WeakPassword, "shorter than 15"),
        ("aaaaaaaa", WeakPassword, "shorter than 15"),
        ("Password1!", WeakPassword, "shorter than 15"),
        ("iloveyou1234", WeakPassword, "shorter than 15"),
        ("123456789012", WeakPassword, "shorter than 15"),
        # Long enough, and still guessed early: the estimate refuses them.
        (" " * 16, WeakPassword, "too easy to guess"),
        ("a" * 16, WeakPassword, "too easy to guess"),
        ("Password1!Password1!", WeakPassword, "too easy to guess"),
        ("iloveyou1234iloveyou", WeakPassword, "too easy to guess"),
        ("123456789012345", WeakPassword, "too easy to guess"),
        ("1q2w3e4r5t6y7u8i", WeakPassword, "too easy to guess"),
        ("baseball", WeakPassword, "common passwords"),
        ("Sunshine", WeakPassword, "common passwords"),  # case does not save it
        ("4821", WeakPassword, "4 digits can be guessed offline"),
        ("482193", WeakPassword, "at most 1,000,000 tries"),
        ("12345678901", WeakPassword, "guess-limited PIN vault"),
    ],
)
def test_policy_refuses_with_a_reason_that_never_quotes_the_password(password, error, why):
    with pytest.raises(error, match=why) as e:
        PasswordPolicy().check(password)
    if password:
        assert password not in str(e.value) and password not in repr(e.value)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "my dog eats purple bananas", "pässwörter sind lang und bunt"],
)
def test_policy_accepts_passphrases(password):
    PasswordPolicy().check(password)


def test_pins_need_a_vault_and_four_digits():
    policy = PasswordPolicy()
    policy.check("4821", vault=True)
    policy.check("482193", vault=True)
    with pytest.raises(WeakPassword, match="at least 4 digits"):
        policy.check("482", vault=True)


def test_policy_is_configurable():
    strict = PasswordPolicy(min_length=12, common=frozenset({"company-name-2026"}))
    with pytest.raises(WeakPassword, match="shorter than 12"):
        strict.check("elevenchars")
    with pytest.raises(WeakPassword, match="common"):
        strict.check("Company-Name-2026")
    PasswordPolicy(reject_common=False, min_length=8, min_guesses_log10=0).check("password")
    assert "company-name" not in repr(strict)


# -- Argon2id parameters and the PASSWORD key ------------------------------------------------


def test_default_argon2_is_at_least_owasps():
    p = OWASP_ARGON2
    assert (p.memory_cost, p.time_cost, p.parallelism) == (19 * 1024, 2, 1)
    assert PasswordMethod("x" * 10).argon2 == OWASP_ARGON2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_cost": 0},
        {"memory_cost": 7},
        {"parallelism": 4, "memory_cost": 16},
        {"memory_cost": 2**21},
        {"time_cost": True},
    ],
)
def test_bad_argon2_parameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="Argon2"):
        Argon2Params(**kwargs)


def test_argon2_parameters_round_trip_and_forged_ones_are_refused():
    ctx = FAST.to_context()
    assert Argon2Params.from_context(ctx) == FAST
    for forged in ({**ctx, "kdf.m": str(2**30)}, {**ctx, "kdf": "pbkdf2"}, {**ctx, "kdf.t": "x"}):
        with pytest.raises(DecryptFailed):
            Argon2Params.from_context(forged)


def test_password_key_is_derived_again_from_its_parameters():
    method = PasswordMethod("correct horse battery staple", argon2=FAST)
    method.validate_operations(new=True)
    new = method.new_key(BINDING)
    assert new.params["kdf"] == "argon2id" and len(new.params["kdf.salt"]) >= 22
    again = PasswordMethod("correct horse battery staple", argon2=FAST).recover_key(
        BINDING, new.params
    )
    assert again == new.key and len(again) == 32
    other = PasswordMethod("correct horse battery stable", argon2=FAST).recover_key(
        BINDING, new.params
    )
    assert other != new.key
    # A fresh salt each backup: the same password gives another key.
    assert method.new_key(BINDING).key != new.key


def test_unicode_passwords_are_normalised():
    composed, decomposed = "caf\u00e9 au lait 42", "cafe\u0301 au lait 42"
    new = PasswordMethod(composed, argon2=FAST).new_key(BINDING)
    assert PasswordMethod(decomposed, argon2=FAST).recover_key(BINDING, new.params) == new.key


def test_vault_key_needs_both_the_pin_and_the_vault_secret():
    vault = FakeVault()
    method = PasswordMethod("482193", argon2=FAST, vault=vault)
    method.validate_operations(new=True, keepers=KEEPERS)
    new = method.new_key(VAULTED)
    assert new.params["vault"] == "1" and new.params["vault.operator"] == "vault-op"

    def recover(pin: str, vault: FakeVault | None = vault) -> bytearray:
        return PasswordMethod(pin, argon2=FAST, vault=vault).recover_key(BINDING, new.params)

    assert recover("482193") == new.key
    with pytest.raises(DecryptFailed, match="9 tries left"):
        recover("111111")
    # Without the vault the PIN alone is refused outright; another operator's vault too.
    with pytest.raises(UnsupportedBackupMethod, match="guess-limited PIN vault"):
        recover("482193", vault=None)
    with pytest.raises(UnsupportedBackupMethod, match="operator 'vault-op'"):
        recover("482193", vault=FakeVault("another-op"))
    # The slot answers its owner only.
    with pytest.raises(NoValidBackup):
        PasswordMethod("482193", argon2=FAST, vault=vault).recover_key(
            KeyBinding("client-2", "wallet-1", "backup-1", "PASSWORD"), new.params
        )
    method.discard_key(BINDING)
    with pytest.raises(NoValidBackup):
        recover("482193")


@pytest.mark.parametrize(
    ("keepers", "why"),
    [
        (Keepers("vault-op", "vault-op"), "also runs the custodian"),
        (Keepers("custodian-op", "vault-op"), "also keeps the backup's cipher text"),
        (Keepers(None, None), "does not name its operator"),
        (Keepers("custodian-op", None), "does not name its operator"),
    ],
)
def test_a_pin_behind_a_vault_its_keepers_run_is_refused(keepers, why):
    # The vault's operator, if it also keeps the cipher text or the custodian's share (or
    # cannot be shown not to), could test every PIN offline: the vault protects nothing.
    vault = FakeVault("vault-op")
    method = PasswordMethod("482193", argon2=FAST, vault=vault)
    with pytest.raises(VaultNotIndependent, match=why) as caught:
        method.validate_operations(new=True, keepers=keepers)
    assert "operator=" in str(caught.value) and "482193" not in str(caught.value)
    assert isinstance(caught.value, WeakPassword)
    binding = KeyBinding("client-1", "wallet-1", "backup-1", "PASSWORD", keepers)
    with pytest.raises(VaultNotIndependent):
        method.new_key(binding)  # the same rule, even without validate_operations first
    assert not vault.slots
    # A password that stands on its own still works: sealed without that vault.
    strong = PasswordMethod("plover quartz cabinet 7", argon2=FAST, vault=vault)
    strong.validate_operations(new=True, keepers=keepers)
    new = strong.new_key(binding)
    assert "vault" not in new.params and not vault.slots
    assert strong.recover_key(binding, new.params) == new.key


def test_forged_kdf_costs_are_refused_before_anything_is_derived(monkeypatch):
    # A custodian serving a cipher text whose clear header names cheap costs would harvest a
    # verifier that costs microseconds per guess, and spend the user's tries doing it.
    vault = FakeVault()
    new = PasswordMethod("482193", argon2=FAST, vault=vault).new_key(VAULTED)
    derived: list[int] = []
    real = kdf.argon2id

    def counting_argon2(*a: Any, **k: Any) -> bytes:
        derived.append(1)
        return real(*a, **k)

    monkeypatch.setattr(kdf, "argon2id", counting_argon2)
    cheap = {**new.params, "kdf.t": "1", "kdf.m": "8"}
    floor = Argon2Params(time_cost=1, memory_cost=64, parallelism=1)  # the client's own costs
    with pytest.raises(KdfParametersRefused, match="below this client's floor"):
        PasswordMethod("482193", argon2=floor, vault=vault).recover_key(BINDING, cheap)
    # The default floor is OWASP's: even this test's own small costs are below it.
    with pytest.raises(KdfParametersRefused, match="t=2, m=19456 KiB"):
        PasswordMethod("482193", vault=vault).recover_key(BINDING, new.params)
    # Costs above the floor but a salt (or costs) other than the ones enrolled: the vault,
    # not the cipher text's keeper, vouches for them.
    for forged in (
        {**new.params, "kdf.salt": base64.urlsafe_b64encode(bytes(16)).decode()},
        {**new.params, "kdf.t": "3"},
    ):
        with pytest.raises(KdfParametersRefused, match="recorded when this backup was made"):
            PasswordMethod("482193", argon2=FAST, vault=vault).recover_key(BINDING, forged)
    assert derived == [] and vault.released == []  # nothing derived, nothing sent
    assert vault.status("wallet-1.backup-1", owner="client-1").tries_left == 10


def test_pin_without_vault_is_refused_before_anything_happens():
    with pytest.raises(WeakPassword, match="guess-limited"):
        PasswordMethod("482193").validate_operations(new=True)
    # A recovery does not judge the password: it only needs one.
    PasswordMethod("482193").validate_operations(new=False)
    with pytest.raises(PasswordRequired):
        PasswordMethod(None).validate_operations(new=False)


def test_password_method_repr_hides_the_password():
    assert "hunter2-hunter2" not in repr(PasswordMethod("hunter2-hunter2"))


# -- the key file ----------------------------------------------------------------------------


def test_file_storage_writes_a_private_file_atomically(tmp_path):
    storage = FileKeyStorage(tmp_path / "k.key")
    assert isinstance(storage, KeyStorage)
    assert storage.validate_operations()
    old_umask = os.umask(0)
    try:
        storage.write(b"\x11" * 32)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert storage.read() == b"\x11" * 32
    storage.write(b"\x22" * 32)
    assert storage.read() == b"\x22" * 32
    assert sorted(os.listdir(tmp_path)) == ["k.key"]  # no temporary or probe file left
    storage.delete()
    storage.delete()  # already gone: no error
    with pytest.raises(NoValidBackup, match="missing"):
        storage.read()


def test_a_failed_write_leaves_the_old_key_whole(tmp_path, monkeypatch):
    storage = FileKeyStorage(tmp_path / "k.key")
    storage.write(b"\x11" * 32)

    def fail(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        storage.write(b"\x22" * 32)
    monkeypatch.undo()
    assert storage.read() == b"\x11" * 32
    assert sorted(os.listdir(tmp_path)) == ["k.key"]


def test_file_storage_refuses_what_is_not_a_key(tmp_path):
    (tmp_path / "k.key").write_bytes(b"PCBK\x01short")
    with pytest.raises(NoValidBackup, match="not a portal-core backup key"):
        FileKeyStorage(tmp_path / "k.key").read()
    with pytest.raises(ValueError, match="32 bytes"):
        FileKeyStorage(tmp_path / "k.key").write(b"short")
    assert not FileKeyStorage(tmp_path / "missing-dir" / "k.key").validate_operations()
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(UnsupportedBackupMethod, match="failed its check"):
        StoredKeyMethod(
            "CUSTOM", FileKeyStorage.in_directory(tmp_path / "a-file" / "keys")
        ).validate_operations(new=True)


def test_a_key_directory_is_made_private_when_first_used(tmp_path):
    make = FileKeyStorage.in_directory(tmp_path / "new" / "keys")
    assert make("slot-1").validate_operations()
    assert stat.S_IMODE((tmp_path / "new" / "keys").stat().st_mode) == 0o700


def test_key_slots_cannot_leave_their_directory(tmp_path):
    make = FileKeyStorage.in_directory(tmp_path)
    for slot in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="slot"):
            make(slot)
    with pytest.raises(ValueError, match="key slot"):
        _ = KeyBinding("c", "../w", "b", "CUSTOM").slot


def test_stored_key_method_keeps_one_key_per_backup(tmp_path):
    method = StoredKeyMethod("CUSTOM", FileKeyStorage.in_directory(tmp_path))
    method.validate_operations(new=True)
    first = KeyBinding("c", "w", "b1", "CUSTOM")
    second = KeyBinding("c", "w", "b2", "CUSTOM")
    k1, k2 = method.new_key(first), method.new_key(second)
    method.persist_key(first, k1)
    method.persist_key(second, k2)
    assert method.recover_key(first, k1.params) == k1.key
    assert method.recover_key(second, {}) == k2.key  # the slot comes from the binding
    method.discard_key(first)
    with pytest.raises(NoValidBackup):
        method.recover_key(first, k1.params)
    k2.wipe()
    assert k2.key == bytearray(32)


def test_method_names():
    for name in ("PASSWORD", "PASSKEY", "GDRIVE", "ICLOUD", "CUSTOM"):
        assert check_method(name) == name
    for bad in ("FIREBASE", "UNKNOWN", "password", None):
        with pytest.raises(UnsupportedBackupMethod, match="unknown backup method"):
            check_method(bad)
    with pytest.raises(ValueError, match="PasswordMethod"):
        StoredKeyMethod("PASSWORD", FileKeyStorage.in_directory("."))


# -- the document and its cipher text -------------------------------------------------------


def test_document_round_trip_and_context_binding():
    pair_ids = {"SECP256K1": "p1", "ED25519": "p2"}
    doc = document.encode(BINDING, {"SECP256K1": ("p1", b"\x01" * 40), "ED25519": ("p2", b"\x02")})
    ctx = document.cipher_context(BINDING, pair_ids, {"kdf.salt": "abc"})
    key = os.urandom(32)
    ct = envelope.seal(key, doc, context=ctx)
    info = document.read_info(ct)
    assert info.binding() == BINDING and info.pair_ids == pair_ids
    assert info.context["kdf.salt"] == "abc"
    opened = document.decode(envelope.open(key, ct, context=info.context), BINDING)
    assert opened == {"SECP256K1": ("p1", b"\x01" * 40), "ED25519": ("p2", b"\x02")}
    with pytest.raises(DecryptFailed, match="malformed"):
        document.decode(b'{"format": "x"}', BINDING)
    other = KeyBinding("client-1", "wallet-2", "backup-1", "PASSWORD")
    with pytest.raises(DecryptFailed, match="malformed"):
        document.decode(envelope.open(key, ct, context=info.context), other)


def test_method_parameters_cannot_shadow_the_ids():
    with pytest.raises(ValueError, match="not allowed"):
        document.cipher_context(BINDING, {"ED25519": "p"}, {"wallet": "someone-else"})


def test_read_info_refuses_what_is_not_a_backup():
    with pytest.raises(DecryptFailed, match="not a sealed backup"):
        document.read_info(b"not an envelope at all")
    sealed = envelope.seal(os.urandom(32), b"x", context={"purpose": "something else"})
    with pytest.raises(DecryptFailed, match="not a portal-core client backup"):
        document.read_info(sealed)


# -- progress orders -------------------------------------------------------------------------


def test_progress_orders_are_the_seed_systems():
    assert [s.value for s in BACKUP_ORDER] == [
        "Reading share",
        "Generating share",
        "Parsing share",
        "Encrypting share",
        "Storing share",
        "Done",
    ]
    assert [s.value for s in RECOVERY_ORDER] == [
        "Reading share",
        "Decrypting share",
        "Parsing share",
        "Generating share",
        "Storing share",
        "Done",
    ]
    assert {s.value for s in Status} >= {"Recovering backup share", "Recovering signing share"}


def test_progress_refuses_steps_out_of_order():
    events: list[dict[str, object]] = []
    p = Progress(events.append, BACKUP_ORDER)
    p.step(Status.READING)
    with pytest.raises(AssertionError, match="out of order"):
        p.step(Status.PARSING)
    assert events == [{"status": "Reading share", "done": False}]

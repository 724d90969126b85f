"""The enclave wired into the backup flows, end to end on a real SoftHSM token: a wallet
backed up and recovered with ``PASSKEY`` (both modes), and with a 6-digit PIN through the
guess-limited vault. The passkey enclave's tables share the custodian store's database file;
the vault is another operator's, on a token and a database file of its own (a vault its keeper
runs cannot guard a PIN: tests/test_hostile_custodian.py)."""

from __future__ import annotations

import sqlite3

import pytest

from backup_helpers import world_fixture  # noqa: F401 - a fixture
from portal_core import envelope
from portal_core.backup import GuessLimitedVault, KeyStorage, MemoryDevice
from portal_core.enclave import (
    CredentialNotOwned,
    KeyMode,
    PasskeyEnclave,
    PasskeyKeyStorage,
    PinVault,
    SecretDestroyed,
    SqliteEnclaveStore,
    VaultSlotNotFound,
    WrongAccessKey,
    passkey_storage,
)
from portal_core.enclave.prf import PRF_KEY_ID, unwrap_key
from portal_core.exceptions import DecryptFailed, NoValidBackup, WeakPassword
from webauthn_authenticator import SoftAuthenticator, prf_eval

PIN = "493817"


@pytest.fixture
def enclave_side(world, other_kms, tmp_path):
    """The enclave on the custodian's KMS and database file, and a vault of another operator:
    (enclave, vault, store)."""
    world.kms.create_key(f"{world.key_name}-enclave")
    store = SqliteEnclaveStore(world.db)
    enclave = PasskeyEnclave(
        world.kms,
        store,
        rp_id="example.com",
        rp_name="Example",
        origins=["https://example.com"],
        key_name=f"{world.key_name}-enclave",
        clock=world.clock,
    )
    other_kms.create_key(f"{world.key_name}-vault")
    vault_store = SqliteEnclaveStore(tmp_path / "vault.db")
    vault = PinVault(
        other_kms,
        vault_store,
        operator="vault-op",
        key_name=f"{world.key_name}-vault",
        clock=world.clock,
    )
    yield enclave, vault, store
    store.close()
    vault_store.close()


def test_interfaces(enclave_side) -> None:
    enclave, vault, _ = enclave_side
    assert isinstance(vault, GuessLimitedVault)
    assert isinstance(PasskeyKeyStorage(enclave, SoftAuthenticator(), "user"), KeyStorage)


def test_store_shares_the_custodian_database(world, enclave_side) -> None:
    world.new_wallet()
    with sqlite3.connect(world.db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "schema_version",
            "enclave_schema_version",
            "backup_pairs",
            "enclave_vault",
        } <= tables
        (custodian_version,) = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    assert custodian_version == world.custodian().store.schema_version


@pytest.mark.parametrize("mode", [KeyMode.SERVER, KeyMode.PRF])
def test_passkey_backup_and_recovery(world, enclave_side, kms, mode: KeyMode) -> None:
    enclave, _, store = enclave_side
    custodian, phone = world.new_wallet()
    user = phone.client_id
    passkey = SoftAuthenticator()  # a synced passkey: on the lost phone and the new one
    storages = {"PASSKEY": passkey_storage(enclave, passkey, user, mode=mode)}
    phone.register_storage("PASSKEY", storages["PASSKEY"])
    addresses = phone.addresses()

    # The first backup registers the passkey (before any share work), then writes the key.
    first = phone.backup_wallet("PASSKEY")
    assert enclave.has_credentials(user)
    assert phone.available_recovery_methods() == ["PASSKEY"]
    assert phone.verify_backup("PASSKEY").backup_id == first.backup_id

    # What the enclave holds for this backup.
    (credential,) = store.list_credentials(user)
    slot = f"{custodian.get_wallet(user).wallet_id}.{first.backup_id}"
    record = store.get_key(user, credential.credential_id, slot)
    assert record is not None and record.mode is mode
    context = enclave._context(user, credential.credential_id, slot, mode)
    held = kms.open(record.sealed, context=context)  # all the server can get, HSM included
    ids = {"user": user, "credential_id": credential.credential_id, "slot": slot}
    if mode is KeyMode.PRF:
        # Only the device-wrapped key: it opens with the passkey's PRF output, which only
        # the device can compute, and with nothing the server has.
        assert envelope.inspect(held)["key_id"] == PRF_KEY_ID
        device_credential = passkey.credentials[credential.credential_id]
        key = unwrap_key(prf_eval(device_credential.cred_random, credential.prf_salt), held, **ids)
        assert key not in held
        for guess in (credential.prf_salt, credential.public_key[:32], bytes(32)):
            with pytest.raises(DecryptFailed):
                unwrap_key(guess, held, **ids)
    else:
        key = held
    # Either way that key is the one that seals the backup's cipher text.
    cipher_context = envelope.inspect(first.cipher_text)["context"]
    assert envelope.open(key, first.cipher_text, context=cipher_context)

    # The phone is lost; a new device, same client and passkey, recovers.
    new_phone = world.client(custodian, user, device=MemoryDevice(), storages=storages)
    assert new_phone.recover_wallet("PASSKEY") == addresses

    # A second backup replaces the first; the first one's key leaves the enclave.
    second = new_phone.backup_wallet("PASSKEY")
    assert store.get_key(user, credential.credential_id, slot) is None
    assert second.backup_id != first.backup_id
    assert world.client(custodian, user, storages=storages).recover_wallet("PASSKEY") == addresses


def test_prf_mode_needs_the_passkeys_prf(world, enclave_side) -> None:
    enclave, _, _ = enclave_side
    custodian, phone = world.new_wallet()
    passkey = SoftAuthenticator()
    factory = passkey_storage(enclave, passkey, phone.client_id, mode=KeyMode.PRF)
    phone.backup_wallet("PASSKEY", storage=factory)
    # The same credential on a device whose PRF differs (as if the server, or a copy of
    # the credential without its hmac-secret, tried): the wrapped key does not open.
    for cred in passkey.credentials.values():
        cred.cred_random = bytes(32)
    with pytest.raises(DecryptFailed):
        world.client(custodian, phone.client_id).recover_wallet("PASSKEY", storage=factory)


def test_another_users_passkey_cannot_recover(world, enclave_side) -> None:
    enclave, _, _ = enclave_side
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet(
        "PASSKEY", storage=passkey_storage(enclave, SoftAuthenticator(), phone.client_id)
    )
    _, thief = world.new_wallet(custodian)
    thief_passkey = SoftAuthenticator()
    thief.backup_wallet("PASSKEY", storage=passkey_storage(enclave, thief_passkey, thief.client_id))
    (thief_credential,) = thief_passkey.credentials

    class Forcing:
        """The thief's device answering the victim's login with the thief's own passkey."""

        def create(self, options):
            return thief_passkey.create(options)

        def get(self, options):
            return thief_passkey.get(options, credential_id=thief_credential)

    slot = f"{custodian.get_wallet(phone.client_id).wallet_id}.{result.backup_id}"
    with pytest.raises(CredentialNotOwned):
        PasskeyKeyStorage(enclave, Forcing(), phone.client_id, slot).read()


def test_six_digit_pin_backup_and_recovery(world, enclave_side) -> None:
    _, vault, _ = enclave_side
    custodian, phone = world.new_wallet()
    addresses = phone.addresses()
    # Refused without the vault, accepted with it.
    with pytest.raises(WeakPassword, match="guess-limited PIN vault"):
        phone.backup_wallet("PASSWORD", password=PIN)
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=vault)
    slot = f"{custodian.get_wallet(phone.client_id).wallet_id}.{result.backup_id}"
    assert vault.status(slot, owner=phone.client_id).tries_left == 10

    new_phone = world.client(custodian, phone.client_id, vault=vault)
    with pytest.raises(WrongAccessKey, match="9 tries left"):
        new_phone.recover_wallet("PASSWORD", password="493818")
    assert new_phone.recover_wallet("PASSWORD", password=PIN) == addresses
    assert (
        vault.status(slot, owner=phone.client_id).tries_left == 10
    )  # the right PIN restored the tries

    # The cipher text alone is useless: the PIN without the vault's secret opens nothing.
    with pytest.raises(Exception, match="guess-limited PIN vault"):
        world.client(custodian, phone.client_id).recover_wallet("PASSWORD", password=PIN)


def test_pin_guessing_destroys_the_backup(world, enclave_side) -> None:
    _, vault, _ = enclave_side
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=vault)
    thief = world.client(custodian, phone.client_id, vault=vault)
    for n in range(9):
        with pytest.raises(WrongAccessKey):
            thief.recover_wallet("PASSWORD", password=f"{n:06d}")
    with pytest.raises(SecretDestroyed, match="last of 10 tries"):
        thief.recover_wallet("PASSWORD", password="000009")
    # Now even the right PIN fails, with an error that says why.
    with pytest.raises(NoValidBackup, match="destroyed") as info:
        world.client(custodian, phone.client_id, vault=vault).recover_wallet(
            "PASSWORD", password=PIN
        )
    assert isinstance(info.value, SecretDestroyed)
    slot = f"{custodian.get_wallet(phone.client_id).wallet_id}.{result.backup_id}"
    assert vault.status(slot, owner=phone.client_id).destroyed


def test_replaced_pin_backup_leaves_the_vault(world, enclave_side) -> None:
    _, vault, _ = enclave_side
    custodian, phone = world.new_wallet()
    wallet_id = custodian.get_wallet(phone.client_id).wallet_id
    first = phone.backup_wallet("PASSWORD", password=PIN, vault=vault)
    second = phone.backup_wallet("PASSWORD", password="7215", vault=vault)
    with pytest.raises(VaultSlotNotFound):
        vault.status(f"{wallet_id}.{first.backup_id}", owner=phone.client_id)
    assert vault.status(f"{wallet_id}.{second.backup_id}", owner=phone.client_id).tries_left == 10
    new_phone = world.client(custodian, phone.client_id, vault=vault)
    assert phone.addresses() == new_phone.recover_wallet("PASSWORD", password="7215")

"""Backup, recovery, eject and the queries, end to end on a real SoftHSM token."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

from backup_helpers import (
    FAST,
    OTHER_PASSWORD,
    PASSWORD,
    DictStorage,
    FakeVault,
    local_and_http,
    self_managed_world_fixture,  # noqa: F401 - a fixture
    world_fixture,  # noqa: F401 - a fixture
)
from portal_core import envelope
from portal_core.backup import (
    BACKUP_ORDER,
    EJECT_ORDER,
    RECOVERY_ORDER,
    Argon2Params,
    BackupResult,
    CustodianAdmin,
    CustodianApi,
    DeviceStoreError,
    FileDevice,
    LocalCustodian,
    PairInfo,
    PairStatus,
    WalletClient,
)
from portal_core.exceptions import (
    CustodianMismatch,
    DecryptFailed,
    DeviceReplaced,
    EjectNotAuthorized,
    NoValidBackup,
    PasswordRequired,
    PortalError,
    ShareVerificationFailed,
    UnsupportedBackupMethod,
    WalletAlreadyExists,
    WalletModificationInProgress,
    WalletNotFound,
    WeakPassword,
)
from portal_core.store import PairRecord


def statuses(events: list[dict[str, object]]) -> list[object]:
    return [e["status"] for e in events]


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# -- every method ------------------------------------------------------------------------


def test_the_custodian_implements_both_interfaces(world):
    custodian = world.custodian()
    assert isinstance(custodian, CustodianApi) and isinstance(custodian, CustodianAdmin)


@local_and_http
@pytest.mark.parametrize(
    ("method", "config"),
    [("PASSWORD", {"password": PASSWORD}), ("CUSTOM", {})],
)
def test_backup_then_recovery_on_a_new_device(world, method, config):
    custodian, phone = world.new_wallet()
    addresses = phone.addresses()
    assert set(addresses) == {"SECP256K1", "ED25519"}
    assert not phone.is_wallet_backed_up()

    events: list[dict[str, object]] = []
    result = phone.backup_wallet(method, progress=events.append, **config)
    assert statuses(events) == [s.value for s in BACKUP_ORDER]
    assert [e["done"] for e in events] == [False] * 5 + [True]
    assert result.status == "completed" and set(result.pair_ids) == set(addresses)
    pairs = custodian.list_backup_pairs(phone.client_id)
    assert {(p.curve, p.pair_id, p.status) for p in pairs} == {
        (c, pid, "completed") for c, pid in result.pair_ids.items()
    }
    assert phone.is_wallet_backed_up() and phone.is_wallet_backed_up("ED25519")
    assert phone.available_recovery_methods() == [method]
    assert phone.is_wallet_recoverable()

    events = []
    new_phone = world.client(custodian, phone.client_id)
    assert new_phone.recover_wallet(method, progress=events.append, **config) == addresses
    assert statuses(events) == [s.value for s in RECOVERY_ORDER]
    # The recovered device signs with new shares: it can back up again; the lost one is told
    # it was replaced (not that some shares fail to add up), verifying its backup included,
    # and it recovers to be used again.
    new_phone.backup_wallet(method, **config)
    for call in (phone.backup_wallet, phone.verify_backup):
        with pytest.raises(DeviceReplaced, match="replaced by a recovery on another device"):
            call(method, **config)
    assert phone.recover_wallet(method, **config) == addresses
    phone.verify_backup(method, **config)


@local_and_http
def test_a_registered_storage_serves_another_method(world):
    keys: dict[str, bytes] = {}
    custodian = world.custodian()
    client_id = custodian.create_client()
    phone = world.client(custodian, client_id, storages={"GDRIVE": lambda s: DictStorage(keys, s)})
    phone.create_wallet()
    result = phone.backup_wallet("GDRIVE")
    assert list(keys) == [f"{phone._wallet().wallet_id}.{result.backup_id}"]
    other = world.client(custodian, client_id, storages={"GDRIVE": lambda s: DictStorage(keys, s)})
    assert phone.addresses() == other.recover_wallet("GDRIVE")


@local_and_http
@pytest.mark.parametrize("method", ["PASSKEY", "GDRIVE", "ICLOUD"])
def test_methods_without_a_storage_are_not_configured(world, method):
    _, phone = world.new_wallet()
    with pytest.raises(UnsupportedBackupMethod, match=f"{method} backups are not configured"):
        phone.backup_wallet(method)
    assert not phone.is_wallet_backed_up()


@local_and_http
def test_unknown_methods_and_options_are_refused(world):
    _, phone = world.new_wallet()
    with pytest.raises(UnsupportedBackupMethod, match="unknown backup method 'FIREBASE'"):
        phone.backup_wallet("FIREBASE")
    with pytest.raises(TypeError, match="unexpected configuration for CUSTOM: pasword"):
        phone.backup_wallet("CUSTOM", pasword="x")


@local_and_http
def test_password_is_checked_before_any_share_work(world):
    custodian, phone = world.new_wallet()
    with pytest.raises(PasswordRequired):
        phone.backup_wallet("PASSWORD")
    with pytest.raises(WeakPassword, match="shorter than 15"):
        phone.backup_wallet("PASSWORD", password="k3y!")
    with pytest.raises(WeakPassword, match="common passwords"):
        phone.backup_wallet("PASSWORD", password="password1")
    with pytest.raises(WeakPassword, match="guess-limited PIN vault"):
        phone.backup_wallet("PASSWORD", password="493817")
    assert custodian.list_backup_pairs(phone.client_id) == []
    assert custodian.store.get_lock(phone.client_id) is None


@local_and_http
def test_a_pin_works_through_a_guess_limited_vault(world):
    custodian, phone = world.new_wallet()
    vault = FakeVault()
    phone.backup_wallet("PASSWORD", password="493817", vault=vault)
    assert len(vault.slots) == 1
    other = world.client(custodian, phone.client_id, vault=vault)
    with pytest.raises(DecryptFailed, match="wrong PIN: 9 tries left"):
        other.recover_wallet("PASSWORD", password="493818")
    assert phone.addresses() == other.recover_wallet("PASSWORD", password="493817")
    # Without the vault's secret the PIN alone derives nothing useful.
    with pytest.raises(UnsupportedBackupMethod, match="guess-limited PIN vault"):
        world.client(custodian, phone.client_id).recover_wallet("PASSWORD", password="493817")


@local_and_http
def test_custom_key_file_is_private_and_replaced_after_the_next_backup(world):
    _, phone = world.new_wallet()
    first = phone.backup_wallet("CUSTOM")
    (key_file,) = world.key_dir.glob("*.key")
    assert first.backup_id in key_file.name
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.stat().st_size == 37
    second = phone.backup_wallet("CUSTOM")
    (key_file,) = world.key_dir.glob("*.key")
    assert second.backup_id in key_file.name
    assert not [p for p in os.listdir(world.key_dir) if p.endswith(".tmp")]


@local_and_http
def test_default_password_costs_are_owasps(world):
    _, phone = world.new_wallet()
    phone.argon2 = None  # the library default, not the tests' fast one
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    ctx = envelope.inspect(result.cipher_text)["context"]
    assert (int(ctx["kdf.m"]), int(ctx["kdf.t"]), int(ctx["kdf.p"])) >= (19 * 1024, 2, 1)


# -- one active pair per method ----------------------------------------------------------


@local_and_http
def test_a_new_backup_replaces_the_old_one_of_its_method_only(world):
    custodian, phone = world.new_wallet()
    old = phone.backup_wallet("PASSWORD", password=PASSWORD)
    custom = phone.backup_wallet("CUSTOM")
    new = phone.backup_wallet("PASSWORD", password=OTHER_PASSWORD)
    pairs = custodian.list_backup_pairs(phone.client_id)
    assert {p.backup_id for p in pairs} == {custom.backup_id, new.backup_id}
    assert phone.available_recovery_methods() == ["CUSTOM", "PASSWORD"]
    fresh = world.client(custodian, phone.client_id)
    with pytest.raises(NoValidBackup, match="no longer at the custodian"):
        fresh.recover_wallet("PASSWORD", cipher_text=old.cipher_text, password=PASSWORD)
    with pytest.raises(DecryptFailed, match="wrong password"):
        fresh.recover_wallet("PASSWORD", password=PASSWORD)
    assert phone.addresses() == fresh.recover_wallet("PASSWORD", password=OTHER_PASSWORD)


@local_and_http
def test_no_backup_no_recovery(world):
    custodian, phone = world.new_wallet()
    with pytest.raises(NoValidBackup, match="no completed PASSWORD backup"):
        world.client(custodian, phone.client_id).recover_wallet("PASSWORD", password=PASSWORD)
    assert not phone.is_wallet_recoverable()


# -- bad cipher texts and swapped shares ----------------------------------------------------


@local_and_http
def test_wrong_password_is_refused_and_the_wallet_stays_usable(world):
    custodian, phone = world.new_wallet()
    phone.backup_wallet("PASSWORD", password=PASSWORD)
    fresh = world.client(custodian, phone.client_id)
    with pytest.raises(DecryptFailed, match="wrong password") as e:
        fresh.recover_wallet("PASSWORD", password=OTHER_PASSWORD)
    assert OTHER_PASSWORD not in str(e.value) and PASSWORD not in str(e.value)
    assert custodian.store.get_lock(phone.client_id) is None
    assert phone.addresses() == fresh.recover_wallet("PASSWORD", password=PASSWORD)


@local_and_http
@pytest.mark.parametrize("where", ["body", "tag", "header"])
def test_a_tampered_cipher_text_is_refused(world, where):
    custodian, phone = world.new_wallet()
    ct = phone.backup_wallet("CUSTOM").cipher_text
    index = {"body": len(ct) // 2 + 40, "tag": len(ct) - 1, "header": 120}[where]
    fresh = world.client(custodian, phone.client_id)
    with pytest.raises(DecryptFailed):
        fresh.recover_wallet("CUSTOM", cipher_text=flip(ct, index))
    # The same flip in the custodian's copy is caught the same way.
    backup_id = custodian.list_backup_pairs(phone.client_id)[0].backup_id
    with custodian.store.transaction() as conn:
        conn.execute(
            "UPDATE cipher_texts SET cipher_text = ? WHERE backup_id = ?",
            (flip(ct, index), backup_id),
        )
    with pytest.raises(DecryptFailed):
        fresh.recover_wallet("CUSTOM")
    assert fresh.device.load(phone.client_id) == {}


@local_and_http
def test_a_cipher_text_of_another_wallet_is_refused(world):
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    alices = alice.backup_wallet("PASSWORD", password=PASSWORD).cipher_text
    bobs = bob.backup_wallet("PASSWORD", password=PASSWORD).cipher_text
    fresh = world.client(custodian, alice.client_id)
    with pytest.raises(DecryptFailed, match=r"backup of wallet .* not of this client's wallet"):
        fresh.recover_wallet("PASSWORD", cipher_text=bobs, password=PASSWORD)
    with pytest.raises(DecryptFailed, match="is a PASSWORD backup, not CUSTOM"):
        fresh.recover_wallet("CUSTOM", cipher_text=alices)
    assert alice.addresses() == fresh.recover_wallet(
        "PASSWORD", cipher_text=alices, password=PASSWORD
    )


def _pair(
    custodian: LocalCustodian, client_id: str, curve: str
) -> tuple[list[PairRecord], PairInfo]:
    (p,) = [x for x in custodian.list_backup_pairs(client_id) if x.curve == curve]
    return custodian.store.backup_pairs(p.backup_id), p


@local_and_http
def test_a_custodian_share_moved_between_wallets_does_not_open(world):
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    alice.backup_wallet("CUSTOM")
    bob.backup_wallet("CUSTOM")
    (_, a), (b_pairs, _) = (
        _pair(custodian, alice.client_id, "SECP256K1"),
        _pair(custodian, bob.client_id, "SECP256K1"),
    )
    bobs_blob = next(p for p in b_pairs if p.curve == "SECP256K1").sealed_custodian_share
    with custodian.store.transaction() as conn:
        conn.execute(
            "UPDATE backup_pairs SET sealed_custodian_share = ? WHERE pair_id = ?",
            (bobs_blob, a.pair_id),
        )
    fresh = world.client(custodian, alice.client_id)
    with pytest.raises(ShareVerificationFailed, match="does not open under its KMS context"):
        fresh.recover_wallet("CUSTOM")
    with pytest.raises(ShareVerificationFailed):
        fresh.verify_backup("CUSTOM")


@local_and_http
def test_a_swapped_share_resealed_in_place_is_caught_by_the_public_share_check(world, kms):
    """An insider with KMS access re-seals another wallet's share under this pair's context:
    it opens, and only the recorded public share shows it is not this pair's."""
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    alice.backup_wallet("CUSTOM")
    bob.backup_wallet("CUSTOM")
    _, a = _pair(custodian, alice.client_id, "ED25519")
    b_pairs, b = _pair(custodian, bob.client_id, "ED25519")
    (bobs_blob,) = [p.sealed_custodian_share for p in b_pairs if p.curve == "ED25519"]
    bobs_share = kms.open(
        bobs_blob,
        context=custodian._backup_context(bob._wallet().wallet_id, "ED25519", b.pair_id),
    )
    resealed = kms.seal(
        world.key_name,
        bobs_share,
        context=custodian._backup_context(alice._wallet().wallet_id, "ED25519", a.pair_id),
    )
    with custodian.store.transaction() as conn:
        conn.execute(
            "UPDATE backup_pairs SET sealed_custodian_share = ? WHERE pair_id = ?",
            (resealed, a.pair_id),
        )
    fresh = world.client(custodian, alice.client_id)
    with pytest.raises(ShareVerificationFailed, match="does not match its recorded public share"):
        fresh.recover_wallet("CUSTOM")
    assert custodian.store.get_lock(alice.client_id) is None
    assert fresh.device.load(alice.client_id) == {}


@local_and_http
def test_an_altered_client_public_share_record_is_caught_by_the_client(world):
    custodian, phone = world.new_wallet()
    phone.backup_wallet("CUSTOM")
    _, p = _pair(custodian, phone.client_id, "SECP256K1")
    with custodian.store.transaction() as conn:
        conn.execute(
            "UPDATE backup_pairs SET client_public_share = custodian_public_share "
            "WHERE pair_id = ?",
            (p.pair_id,),
        )
    # The client checks every pair it is told of before using it: the public shares no
    # longer add up to the wallet key, so the record is refused before anything opens.
    with pytest.raises(CustodianMismatch, match="do not add up to the public key"):
        world.client(custodian, phone.client_id).recover_wallet("CUSTOM")


# -- verify_backup -----------------------------------------------------------------------------


@local_and_http
def test_verify_backup_checks_both_sides_without_resharing(world):
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    before = custodian.store.signing_shares(phone._wallet().wallet_id)
    check = phone.verify_backup("PASSWORD", password=PASSWORD)
    assert check.backup_id == result.backup_id and check.pair_ids == result.pair_ids
    assert check.addresses == phone.addresses()
    assert custodian.store.signing_shares(phone._wallet().wallet_id) == before
    with pytest.raises(DecryptFailed):
        phone.verify_backup("PASSWORD", password=OTHER_PASSWORD)


# -- eject -----------------------------------------------------------------------------------


def test_eject_inside_the_window_returns_the_wallets_keys(world):
    custodian, phone = world.new_wallet()
    phone.backup_wallet("PASSWORD", password=PASSWORD)
    custodian.authorize_eject(phone.client_id)
    world.clock.advance(299)
    events: list[dict[str, object]] = []
    keys = world.client(custodian, phone.client_id).eject_private_keys(
        "PASSWORD", progress=events.append, password=PASSWORD
    )
    assert statuses(events) == [s.value for s in EJECT_ORDER]
    wallet = phone._wallet()
    secp, ed = keys["SECP256K1"], keys["ED25519"]
    # secp256k1: 64 hex digits whose public key is the wallet's (checked outside the core).
    assert len(secp.private_key) == 64 and int(secp.private_key, 16) > 0
    pub = ec.derive_private_key(int(secp.private_key, 16), ec.SECP256K1()).public_key()
    assert pub.public_bytes(Encoding.X962, PublicFormat.CompressedPoint) == (
        wallet.curves["SECP256K1"].public_key
    )
    # ed25519: a base58 scalar x with x·G the wallet's public key.
    scalar = base58.b58decode(ed.private_key)
    assert crypto_scalarmult_ed25519_base_noclamp(scalar) == wallet.curves["ED25519"].public_key
    assert {c: k.address for c, k in keys.items()} == phone.addresses()
    assert "private_key=<redacted>" in repr(secp) and secp.private_key not in repr(keys)
    assert custodian.get_wallet(phone.client_id).ejected


def test_eject_outside_the_window_is_refused(world):
    custodian, phone = world.new_wallet()
    phone.backup_wallet("CUSTOM")
    with pytest.raises(EjectNotAuthorized, match="not authorised"):
        phone.eject_private_keys("CUSTOM")
    custodian.authorize_eject(phone.client_id)
    world.clock.advance(300)
    with pytest.raises(EjectNotAuthorized, match="expired 0 s ago"):
        phone.eject_private_keys("CUSTOM")
    # A window serves one eject.
    custodian.authorize_eject(phone.client_id)
    assert set(phone.eject_private_keys("CUSTOM")) == {"SECP256K1", "ED25519"}
    with pytest.raises(EjectNotAuthorized):
        phone.eject_private_keys("CUSTOM")


def test_eject_authorisation_needs_a_wallet(world):
    custodian = world.custodian()
    with pytest.raises(WalletNotFound, match="no client"):
        custodian.authorize_eject("nobody")
    client_id = custodian.create_client()
    with pytest.raises(WalletNotFound, match="has no wallet yet"):
        custodian.authorize_eject(client_id)


# -- concurrency -------------------------------------------------------------------------------


def test_a_second_backup_or_recovery_while_one_runs_is_refused(world):
    custodian, phone = world.new_wallet()
    phone.backup_wallet("CUSTOM")
    paused, resume = threading.Event(), threading.Event()

    def pause(name):
        if name == "client.backup.reshared":
            paused.set()
            assert resume.wait(30)

    slow = world.client(custodian, phone.client_id, device=phone.device, checkpoint=pause)
    result: dict[str, BackupResult] = {}
    t = threading.Thread(
        target=lambda: result.setdefault("r", slow.backup_wallet("PASSWORD", password=PASSWORD))
    )
    t.start()
    assert paused.wait(30)
    try:
        with pytest.raises(WalletModificationInProgress, match="PASSWORD backup of this wallet"):
            phone.backup_wallet("CUSTOM")
        other = world.client(custodian, phone.client_id)
        with pytest.raises(WalletModificationInProgress):
            other.recover_wallet("CUSTOM")
    finally:
        resume.set()
        t.join(30)
    assert result["r"].status == "completed"
    phone.backup_wallet("CUSTOM")  # free again


@local_and_http
def test_racing_backups_start_one_at_a_time(world):
    custodian, phone = world.new_wallet()
    barrier = threading.Barrier(4, timeout=60)
    offers, refused = [], []

    def start():
        barrier.wait()
        try:
            offers.append(custodian.begin_backup(phone.client_id, "CUSTOM"))
        except WalletModificationInProgress:
            refused.append(1)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread is stuck"
    assert len(offers) == 1 and len(refused) == 3
    assert custodian.abort(phone.client_id, offers[0].session_id) is True
    assert custodian.store.get_lock(phone.client_id) is None


@local_and_http
def test_one_custodian_serves_many_wallets_from_many_threads(world):
    custodian = world.custodian()
    phones = [world.new_wallet(custodian)[1] for _ in range(4)]
    errors, recovered = [], {}

    def life(phone):
        try:
            phone.backup_wallet("CUSTOM")
            phone.backup_wallet("PASSWORD", password=PASSWORD)
            fresh = world.client(custodian, phone.client_id)
            recovered[phone.client_id] = fresh.recover_wallet("PASSWORD", password=PASSWORD)
        except Exception as e:  # surfaced below
            errors.append(e)

    expected = {p.client_id: p.addresses() for p in phones}
    threads = [threading.Thread(target=life, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert recovered == expected
    assert len(set(map(str, recovered.values()))) == 4


@local_and_http
def test_a_bad_protocol_message_ends_the_session_and_frees_the_wallet(world):
    custodian, phone = world.new_wallet()
    _, other = world.new_wallet(custodian)
    offer = custodian.begin_backup(phone.client_id, "CUSTOM")
    commitments = {c: b"PM\x01" + bytes(40) for c in offer.share_ids}
    # Another client can neither use nor end this client's session.
    with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
        custodian.exchange_commitments(other.client_id, offer.session_id, commitments)
    custodian.abort(other.client_id, offer.session_id)
    assert custodian.store.get_lock(phone.client_id).owner == offer.session_id
    custodian.exchange_commitments(phone.client_id, offer.session_id, commitments)
    with pytest.raises(ShareVerificationFailed, match="client's message failed verification"):
        custodian.exchange_reveals(
            phone.client_id, offer.session_id, {c: b"garbage" for c in offer.share_ids}
        )
    assert custodian.store.get_lock(phone.client_id) is None
    assert custodian.list_backup_pairs(phone.client_id) == []
    assert phone.backup_wallet("CUSTOM").status == "completed"


def test_an_abandoned_session_blocks_only_until_its_lock_expires(world):
    custodian, phone = world.new_wallet()
    custodian.begin_backup(phone.client_id, "CUSTOM")  # the client vanishes
    with pytest.raises(WalletModificationInProgress):
        phone.backup_wallet("CUSTOM")
    world.clock.advance(custodian.lock_ttl + 1)
    assert phone.backup_wallet("CUSTOM").status == "completed"


@local_and_http
def test_a_second_wallet_for_a_client_is_refused(world):
    custodian, phone = world.new_wallet()
    with pytest.raises(WalletAlreadyExists):
        phone.create_wallet()
    with pytest.raises(WalletAlreadyExists):
        world.client(custodian, phone.client_id).create_wallet()


# -- self-managed mode ---------------------------------------------------------------------------


def test_self_managed_backup_is_completed_by_the_integrator(self_managed_world):
    w = self_managed_world
    custodian, phone = w.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    assert result.status == PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY
    assert not result.custodian_keeps_cipher_text
    assert len(w.integrator) == 2  # the custodian's shares went to the integrator, sealed
    assert all(
        p.sealed_custodian_share is None for p in custodian.store.backup_pairs(result.backup_id)
    )
    assert not phone.is_wallet_backed_up()
    assert custodian.store.get_lock(phone.client_id) is None  # the client's part is over
    phone.stored_client_backup_share(True, "PASSWORD")
    assert phone.available_recovery_methods() == ["PASSWORD"]

    fresh = w.client(custodian, phone.client_id)
    with pytest.raises(NoValidBackup, match="self-managed: pass the cipher text"):
        fresh.recover_wallet("PASSWORD", password=PASSWORD)
    assert phone.addresses() == fresh.recover_wallet(
        "PASSWORD", cipher_text=result.cipher_text, password=PASSWORD
    )

    # A second backup replaces the first, at the custodian and at the integrator.
    second = fresh.backup_wallet("PASSWORD", password=OTHER_PASSWORD)
    assert len(w.integrator) == 4
    fresh.stored_client_backup_share(True, "PASSWORD")
    assert len(w.integrator) == 2
    assert {p.backup_id for p in custodian.list_backup_pairs(phone.client_id)} == {second.backup_id}


def test_self_managed_backup_not_stored_is_discarded(self_managed_world):
    w = self_managed_world
    custodian, phone = w.new_wallet()
    phone.backup_wallet("CUSTOM")
    phone.stored_client_backup_share(False, "CUSTOM")
    assert custodian.list_backup_pairs(phone.client_id) == []
    assert len(w.integrator) == 0
    assert list(w.key_dir.glob("*.key")) == []
    with pytest.raises(NoValidBackup, match="waits for its cipher text"):
        phone.stored_client_backup_share(True, "CUSTOM")


def test_self_managed_share_altered_at_the_integrator_is_caught(self_managed_world):
    w = self_managed_world
    custodian, phone = w.new_wallet()
    ct = phone.backup_wallet("CUSTOM").cipher_text
    phone.stored_client_backup_share(True, "CUSTOM")
    key = next(iter(w.integrator._items))
    w.integrator._items[key] = flip(w.integrator._items[key], -3)
    with pytest.raises(ShareVerificationFailed):
        w.client(custodian, phone.client_id).recover_wallet("CUSTOM", cipher_text=ct)


# -- nothing secret in reprs, errors or logs ----------------------------------------------------


def test_no_secret_in_reprs_errors_or_logs(world, caplog):
    caplog.set_level(logging.DEBUG)
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PASSWORD)
    phone.backup_wallet("CUSTOM")
    device_shares = phone.device.load(phone.client_id)
    (key_file,) = world.key_dir.glob("*.key")
    custom_key = key_file.read_bytes()[5:]
    errors = []
    calls: list[Callable[[], object]] = [
        lambda: world.client(custodian, phone.client_id).recover_wallet(
            "PASSWORD", password=OTHER_PASSWORD
        ),
        # Weak secrets that cannot turn up by chance in hex ids or timings.
        lambda: phone.backup_wallet("PASSWORD", password="zq#"),
        lambda: phone.backup_wallet("PASSWORD", password="58316094"),
        lambda: phone.eject_private_keys("PASSWORD", password=PASSWORD),
    ]
    for call in calls:
        with pytest.raises(PortalError) as e:
            call()
        errors.append(f"{e.value!r} {e.value}")
    texts = [
        *errors,
        caplog.text,
        repr(result),
        repr(phone),
        repr(phone.device),
        repr(custodian),
        repr(phone._provider("PASSWORD", {"password": PASSWORD})),
    ]
    secrets = [PASSWORD, OTHER_PASSWORD, "zq#", "58316094", custom_key.hex()]
    secrets += [s.hex() for s in device_shares.values()]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert result.cipher_text.hex() not in repr(result)
    assert "backup" in caplog.text  # the log said something, by ids only


def test_errors_for_unknown_clients_and_wallets(world):
    custodian = world.custodian()
    with pytest.raises(WalletNotFound, match="no client 'ghost'"):
        custodian.get_wallet("ghost")
    client_id = custodian.create_client()
    phone = world.client(custodian, client_id)
    with pytest.raises(WalletNotFound, match="no wallet yet"):
        phone.backup_wallet("CUSTOM")
    custodian2, owner = world.new_wallet(custodian)
    with pytest.raises(WalletNotFound, match="no signing share"):
        world.client(custodian2, owner.client_id).backup_wallet("CUSTOM")


@local_and_http
def test_small_argon2_parameters_are_configurable_and_recorded(world):
    custodian, phone = world.new_wallet()
    params = Argon2Params(time_cost=1, memory_cost=128, parallelism=2)
    ct = phone.backup_wallet("PASSWORD", password=PASSWORD, argon2=params).cipher_text
    ctx = envelope.inspect(ct)["context"]
    assert (ctx["kdf"], ctx["kdf.t"], ctx["kdf.m"], ctx["kdf.p"]) == ("argon2id", "1", "128", "2")
    # Recovery reads the parameters from the cipher text, whatever the client's defaults.
    other = world.client(custodian, phone.client_id, argon2=FAST)
    assert phone.addresses() == other.recover_wallet("PASSWORD", password=PASSWORD)


# -- first contact: what a user gets wrong --------------------------------------------------


@local_and_http
def test_flow_calls_take_their_options_by_keyword(world):
    custodian, phone = world.new_wallet()
    # backup_wallet("PASSWORD", pw) once took pw as the progress callback.
    for call in (
        phone.backup_wallet,
        phone.recover_wallet,
        phone.verify_backup,
        phone.eject_private_keys,
    ):
        with pytest.raises(TypeError, match="positional argument"):
            call("PASSWORD", PASSWORD)
    with pytest.raises(TypeError, match="device"):
        WalletClient(custodian, phone.client_id)  # type: ignore[call-arg]  # no default device


@local_and_http
def test_a_file_device_keeps_the_wallet_across_a_restart(world, tmp_path):
    custodian = world.custodian()
    client_id = custodian.create_client()
    old_umask = os.umask(0)
    try:
        phone = world.client(custodian, client_id, device=FileDevice(tmp_path / "phone"))
        addresses = phone.create_wallet()
    finally:
        os.umask(old_umask)
    path = tmp_path / "phone" / f"{client_id}.device"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left
    restarted = world.client(world.custodian(), client_id, device=FileDevice(tmp_path / "phone"))
    assert restarted.addresses() == addresses
    restarted.backup_wallet("CUSTOM")
    path.write_bytes(FileDevice.MAGIC + b"{not json")
    with pytest.raises(DeviceStoreError, match="damaged") as caught:
        restarted.addresses()
    assert "not json" not in str(caught.value)  # the file's content is never quoted

"""The custodian as the adversary: what it, or whoever can write its database, tries against
a user, run as code against the real flows on SoftHSM2 tokens.

* The custodian alone searching a PIN backup offline (it keeps the cipher text and its own
  backup shares; if it also runs the vault, it can read the vault's verifier).
* A custodian serving a cipher text whose clear header names cheap Argon2id costs or
  another salt, to harvest a cheap verifier of the PIN and spend the user's tries.
* A custodian (or a writer of its database) making the device show addresses that are not
  the wallet's.

The vault of another operator runs on a second token (``other_kms``, its own PIN) and its
own database file: nothing the custodian holds opens its records.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backup_helpers import (
    CUSTODIAN_OPERATOR,
    FAST,
    INTEGRATOR_OPERATOR,
    PASSWORD,
    self_managed_world_fixture,  # noqa: F401
    world_fixture,  # noqa: F401
)
from portal_core import envelope, kdf, shares
from portal_core.backup import Argon2Params, LocalCustodian, WalletClient, document
from portal_core.backup.api import PairInfo, SessionOffer, WalletInfo
from portal_core.enclave import PinVault, SqliteEnclaveStore
from portal_core.enclave.pin import derive_key, stretch_pin
from portal_core.exceptions import (
    CustodianMismatch,
    InvalidTag,
    KdfParametersRefused,
    PortalError,
    VaultNotIndependent,
)
from present import present

PIN = "4821"
ALL_PINS = [f"{n:04d}" for n in range(10_000)]


# -- the attack ------------------------------------------------------------------------------


def _costs(costs: Argon2Params) -> dict[str, int]:
    return {
        "time_cost": costs.time_cost,
        "memory_cost": costs.memory_cost,
        "parallelism": costs.parallelism,
    }


def custodian_pin_search(
    custodian: LocalCustodian, db: Path, cipher_text: bytes, pins: Iterable[str]
) -> dict[str, str] | None:
    """The custodian alone, offline, with what it holds: its HSM (``custodian.kms``), its
    database file ``db`` (with the vault's tables, if the vault shares it), the cipher text
    and the project's code. Reads the Argon2id salt and costs from the cipher text's clear
    header, opens the vault's record for the slot if its HSM can, and tries every PIN,
    spending none of the vault's tries. Returns each curve's private key, or None."""
    ctx = dict(envelope.inspect(cipher_text)["context"])
    info = document.read_info(cipher_text)
    costs = Argon2Params.from_context(ctx)
    salt = base64.urlsafe_b64decode(ctx["kdf.salt"])
    slot = f"{info.wallet_id}.{info.backup_id}"
    secret = None
    if ctx.get("vault") == "1":
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute(
                    "SELECT sealed, generation, owner FROM enclave_vault WHERE slot = ?", (slot,)
                ).fetchone()
            except sqlite3.OperationalError:
                row = None  # no vault tables in this database
        if row is None:
            return None  # the vault's record is not in the custodian's database
        context = PinVault._context(slot, row["generation"], row["owner"])
        try:
            secret = custodian.kms.open(row["sealed"], context=context)[1:33]
        except PortalError:
            return None  # sealed under another HSM's key
    for pin in pins:
        if secret is None:
            key = kdf.argon2id(pin.encode(), salt, **_costs(costs))
        else:
            parts = stretch_pin(pin, salt, **_costs(costs))
            key = derive_key(parts.encryption_key, secret, salt=salt)
        try:
            plaintext = envelope.open(key, cipher_text, context=ctx)
        except InvalidTag:
            continue
        # The PIN opened the client's backup document: add the custodian's own backup shares.
        entries = document.decode(plaintext, info.binding())
        out = {}
        for pair in custodian.store.backup_pairs(info.backup_id):
            mine = custodian._backup_share(info.client_id, pair, custodian.mode)
            theirs = shares.Share.from_secret_bytes(entries[pair.curve][1])
            out[pair.curve] = shares.eject(theirs, mine).private_key
        return out
    return None


def stored_cipher_text(db: Path, backup_id: str) -> bytes:
    with sqlite3.connect(db) as conn:
        (ct,) = conn.execute(
            "SELECT cipher_text FROM cipher_texts WHERE backup_id = ?", (backup_id,)
        ).fetchone()
    return bytes(ct)


@pytest.fixture(name="other_vault")
def other_vault_fixture(other_kms: Any, tmp_path: Path) -> Iterator[PinVault]:
    """A vault run by another operator: its own HSM token and its own database file."""
    key_name = f"vault-{uuid.uuid4().hex[:10]}"
    other_kms.create_key(key_name)
    with SqliteEnclaveStore(tmp_path / "vault.db") as store:
        yield PinVault(other_kms, store, operator="vault-op", key_name=key_name)


def _vault_on_custodian(world: Any, operator: str) -> tuple[PinVault, SqliteEnclaveStore]:
    """A vault on the custodian's own HSM and database file, claiming ``operator``."""
    key_name = f"{world.key_name}-vault"
    world.kms.create_key(key_name)
    store = SqliteEnclaveStore(world.db)
    return PinVault(world.kms, store, operator=operator, key_name=key_name), store


# -- 1. the custodian alone and PIN backups -------------------------------------------------


def test_a_custodian_that_runs_the_vault_gets_no_pin_backup_to_search(world):
    custodian, phone = world.new_wallet()
    vault, store = _vault_on_custodian(world, CUSTODIAN_OPERATOR)
    try:
        with pytest.raises(VaultNotIndependent, match="also runs the custodian"):
            phone.backup_wallet("PASSWORD", password=PIN, vault=vault)
        # Refused before any share work: no pair, no vault slot, nothing half-written.
        assert custodian.list_backup_pairs(phone.client_id) == []
        with sqlite3.connect(world.db) as conn:
            assert conn.execute("SELECT count(*) FROM enclave_vault").fetchone() == (0,)
        # A long password still works, without that vault, and the custodian's search of
        # every PIN finds nothing (nor would a search of the password space it cannot cover).
        result = phone.backup_wallet("PASSWORD", password=PASSWORD, vault=vault)
        ctx = envelope.inspect(result.cipher_text)["context"]
        assert "vault" not in ctx and ctx["custodian"] == CUSTODIAN_OPERATOR
        ct = stored_cipher_text(world.db, result.backup_id)
        assert custodian_pin_search(custodian, world.db, ct, ALL_PINS) is None
    finally:
        store.close()


def test_the_search_works_when_a_vault_lies_about_its_operator(world):
    # The attack is real: a vault on the custodian's HSM and database that claims another
    # operator lets the custodian alone rebuild both private keys from 10,000 guesses. An
    # operator identity is a claim; the protection is that the claim is true (docs/vault.md).
    custodian, phone = world.new_wallet()
    vault, store = _vault_on_custodian(world, "vault-op")
    try:
        result = phone.backup_wallet("PASSWORD", password=PIN, vault=vault)
        ct = stored_cipher_text(world.db, result.backup_id)
        found = custodian_pin_search(custodian, world.db, ct, ALL_PINS)
        custodian.authorize_eject(phone.client_id)
        ejected = phone.eject_private_keys("PASSWORD", password=PIN, vault=vault)
        assert found == {c: k.private_key for c, k in ejected.items()}
    finally:
        store.close()


def test_a_vault_of_another_operator_leaves_the_custodian_nothing_to_search(world, other_vault):
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=other_vault)
    ctx = envelope.inspect(result.cipher_text)["context"]
    assert ctx["vault"] == "1" and ctx["vault.operator"] == "vault-op"
    assert ctx["custodian"] == CUSTODIAN_OPERATOR
    ct = stored_cipher_text(world.db, result.backup_id)
    assert custodian_pin_search(custodian, world.db, ct, ALL_PINS) is None
    # Even handed the vault's database file, the custodian's HSM does not open its records.
    vault_db = Path(other_vault._store.path)
    assert custodian_pin_search(custodian, vault_db, ct, ALL_PINS) is None
    # The user still recovers with the PIN, on a new device.
    new_phone = world.client(custodian, phone.client_id, vault=other_vault)
    assert phone.addresses() == new_phone.recover_wallet("PASSWORD", password=PIN)


def test_an_integrator_that_runs_the_vault_gets_no_pin_backup(self_managed_world, other_vault):
    # Self-managed mode: the integrator keeps the cipher text and the custodian's shares,
    # sealed under the custodian's HSM key.
    w = self_managed_world
    custodian, phone = w.new_wallet()
    integrators_vault = PinVault(
        other_vault._kms,
        other_vault._store,
        operator=INTEGRATOR_OPERATOR,
        key_name=other_vault.key_name,
    )
    with pytest.raises(VaultNotIndependent, match="also keeps the backup's cipher text"):
        phone.backup_wallet("PASSWORD", password=PIN, vault=integrators_vault)
    assert len(w.integrator) == 0 and custodian.list_backup_pairs(phone.client_id) == []
    # Behind a third operator's vault, what the integrator holds opens nothing: the cipher
    # text needs the vault's secret, the custodian's shares the custodian's HSM.
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=other_vault)
    phone.stored_client_backup_share(True, "PASSWORD")
    ctx = envelope.inspect(result.cipher_text)["context"]
    assert ctx["cipher_text_keeper"] == INTEGRATOR_OPERATOR and ctx["vault.operator"] == "vault-op"
    for (client_id, _, pair_id), sealed in w.integrator._items.items():
        pair = next(
            p for p in custodian.store.backup_pairs(result.backup_id) if p.pair_id == pair_id
        )
        with pytest.raises(PortalError):  # the integrator's own HSM is not the custodian's
            other_vault._kms.open(
                sealed, context=custodian._backup_context(pair.wallet_id, pair.curve, pair_id)
            )
        assert client_id == phone.client_id
    salt = base64.urlsafe_b64decode(ctx["kdf.salt"])
    costs = Argon2Params.from_context(ctx)
    for pin in ALL_PINS:  # without the vault's secret no PIN gives the key
        key = kdf.argon2id(pin.encode(), salt, **_costs(costs))
        with pytest.raises(InvalidTag):
            envelope.open(key, result.cipher_text, context=ctx)


def vault_operator_pin_search(
    vault: PinVault, slot: str, salts: Iterable[bytes], costs: Argon2Params, pins: Iterable[str]
) -> str | None:
    """The vault's operator alone, offline: opens its own record of ``slot`` with its HSM and
    tests every PIN against the verifier of the access half, under each salt it can think
    of (it never sees the cipher text). Returns the PIN, or None."""
    record = present(vault._store.vault_get(slot))
    context = PinVault._context(slot, record.generation, record.owner)
    verifier = vault._kms.open(present(record.sealed), context=context)[1 + 32 :]
    for salt in salts:
        for pin in pins:
            parts = stretch_pin(pin, salt, **_costs(costs))
            if PinVault._verifier(slot, parts.access_key) == verifier:
                return pin
    return None


def test_the_vault_operator_alone_cannot_search_the_pin(world, other_vault):
    _, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=other_vault)
    slot = f"{phone._wallet().wallet_id}.{result.backup_id}"
    record = other_vault._store.vault_get(slot)
    # What the vault holds: the slot, the owner, the digest of salt and costs. None of it is
    # the salt, without which no PIN guess can be tested against the verifier.
    guesses = [record.params[:16], slot.encode()[:16], phone.client_id.encode()[:16]]
    assert vault_operator_pin_search(other_vault, slot, guesses, FAST, ALL_PINS) is None
    # The salt is in the cipher text: an operator that also kept it would find the PIN, which
    # is why the client refuses a vault run by a keeper of the backup.
    salt = base64.urlsafe_b64decode(envelope.inspect(result.cipher_text)["context"]["kdf.salt"])
    assert vault_operator_pin_search(other_vault, slot, [salt], FAST, ALL_PINS) == PIN


# -- 2. a forged KDF header --------------------------------------------------------------------


def _forge(cipher_text: bytes, **changes: str) -> bytes:
    """What a hostile custodian serves: the header's context edited, sealed anew under a key
    of its own (the client cannot tell until the envelope fails to open)."""
    ctx = {**envelope.inspect(cipher_text)["context"], **changes}
    return envelope.seal(os.urandom(32), b"{}", context=ctx, key_id="PASSWORD")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"kdf.t": "1", "kdf.m": "8"}, "below this client's floor"),
        ({"kdf.salt": base64.urlsafe_b64encode(bytes(16)).decode()}, "vault"),
        ({"kdf.t": str(FAST.time_cost + 1)}, "vault"),
    ],
)
def test_a_forged_kdf_header_spends_no_try_and_sends_nothing(
    world, other_vault: PinVault, monkeypatch, changes, why
):
    custodian, phone = world.new_wallet()
    result = phone.backup_wallet("PASSWORD", password=PIN, vault=other_vault)
    slot = f"{phone._wallet().wallet_id}.{result.backup_id}"
    with sqlite3.connect(world.db) as conn:  # the custodian's database, rewritten
        conn.execute(
            "UPDATE cipher_texts SET cipher_text = ? WHERE backup_id = ?",
            (_forge(result.cipher_text, **changes), result.backup_id),
        )
    sent: list[bytes] = []
    real_release = other_vault.release

    def recording_release(slot: str, key: bytes, **kw: Any) -> bytes:
        sent.append(bytes(key))
        return real_release(slot, key, **kw)

    monkeypatch.setattr(other_vault, "release", recording_release)
    derived: list[int] = []
    real_argon2 = kdf.argon2id

    def counting_argon2(*a: Any, **k: Any) -> bytes:
        derived.append(1)
        return real_argon2(*a, **k)

    monkeypatch.setattr(kdf, "argon2id", counting_argon2)
    new_phone = world.client(custodian, phone.client_id, vault=other_vault)
    with pytest.raises(KdfParametersRefused, match=why):
        new_phone.recover_wallet("PASSWORD", password=PIN)
    assert sent == [] and derived == []
    status = other_vault.status(slot, owner=phone.client_id)
    assert status.tries_left == status.max_tries


# -- 5. addresses the device shows ------------------------------------------------------------


def _swap_signing_shares(db: Path, a: str, b: str) -> None:
    """A writer of the custodian's database swaps two wallets' signing-share rows."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        for old, new in ((a, "swap"), (b, a), ("swap", b)):
            conn.execute("UPDATE signing_shares SET wallet_id = ? WHERE wallet_id = ?", (new, old))


def test_swapped_signing_share_rows_never_show_another_wallets_addresses(world):
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    alices, bobs = alice.addresses(), bob.addresses()
    ids = alice._wallet().wallet_id, bob._wallet().wallet_id
    alice.backup_wallet("CUSTOM")
    _swap_signing_shares(world.db, *ids)
    # The custodian now says Alice's wallet has Bob's keys; her device holds her shares.
    assert custodian.get_wallet(alice.client_id).curves["SECP256K1"].address == bobs["SECP256K1"]
    for call in (
        alice.addresses,
        lambda: alice.backup_wallet("CUSTOM"),
        alice.is_wallet_backed_up,
        lambda: alice.verify_backup("CUSTOM"),
    ):
        with pytest.raises(CustodianMismatch):
            call()
    # A new device of Alice's, holding no share, recovers from her own backup: the backup's
    # pairs are of her key, not the one the custodian now claims, so it refuses too.
    with pytest.raises(CustodianMismatch):
        world.client(custodian, alice.client_id).recover_wallet("CUSTOM")
    _swap_signing_shares(world.db, *ids)  # put back: the same device shows its own again
    assert alice.addresses() == alices


class LyingCustodian:
    """The custodian's API with one answer rewritten (a hostile custodian, or the link)."""

    def __init__(self, inner: LocalCustodian, **rewrite: Any) -> None:
        self._inner, self._rewrite = inner, rewrite

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        rewrite = self._rewrite.get(name)
        return real if rewrite is None else (lambda *a, **k: rewrite(real(*a, **k)))


def test_an_address_the_custodian_makes_up_is_refused(world):
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    bobs = bob._wallet()

    def bobs_address(w: WalletInfo) -> WalletInfo:  # Alice's key, Bob's deposit address
        curves = {c: replace(k, address=bobs.curves[c].address) for c, k in w.curves.items()}
        return replace(w, curves=curves)

    def bobs_wallet(w: WalletInfo) -> WalletInfo:  # Bob's keys and addresses, all consistent
        return replace(w, curves=bobs.curves)

    for rewrite in (bobs_address, bobs_wallet):
        lying = LyingCustodian(custodian, get_wallet=rewrite)
        device = WalletClient(lying, alice.client_id, device=alice.device, argon2=FAST)
        with pytest.raises(CustodianMismatch):
            device.addresses()


def test_a_backup_pair_of_another_wallet_is_never_counted(world):
    custodian, alice = world.new_wallet()
    _, bob = world.new_wallet(custodian)
    bob.backup_wallet("CUSTOM")
    bobs_pairs: list[PairInfo] = custodian.list_backup_pairs(bob.client_id)

    def with_bobs(pairs: list[PairInfo]) -> list[PairInfo]:
        return pairs + bobs_pairs

    def tampered(pairs: list[PairInfo]) -> list[PairInfo]:  # Alice's key, forged shares
        return [replace(p, public_key=alice._wallet().curves[p.curve].public_key) for p in pairs]

    for rewrite in (with_bobs, lambda _: tampered(bobs_pairs)):
        lying = LyingCustodian(custodian, list_backup_pairs=rewrite)
        device = WalletClient(lying, alice.client_id, device=alice.device, argon2=FAST)
        with pytest.raises(CustodianMismatch):
            device.is_wallet_backed_up()
        with pytest.raises(CustodianMismatch):
            device.available_recovery_methods()


def test_a_backup_offer_for_fewer_curves_is_refused(world):
    # A backup covering one curve would complete and leave the other unrecoverable.
    custodian, alice = world.new_wallet()

    def one_curve(offer: SessionOffer) -> SessionOffer:
        return replace(offer, share_ids={"SECP256K1": offer.share_ids["SECP256K1"]})

    lying = LyingCustodian(custodian, begin_backup=one_curve)
    device = WalletClient(lying, alice.client_id, device=alice.device, argon2=FAST)
    with pytest.raises(CustodianMismatch, match="other curves"):
        device.backup_wallet("CUSTOM", key_dir=str(world.key_dir))
    # Nothing was left behind: the session was aborted and no backup exists.
    assert custodian.list_backup_pairs(alice.client_id) == []
    assert custodian.store.get_lock(alice.client_id) is None

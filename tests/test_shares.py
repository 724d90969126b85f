"""portal_core.shares: key generation, reshare, recovery, eject, the share format.

Independent checks come from tests/shares_reference.py (cryptography, PyNaCl,
pycryptodome's Keccak-256, base58, and textbook point arithmetic), never from
portal_core itself.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import base58
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

import shares_reference as ref
from portal_core import shares
from portal_core.exceptions import InvalidShare, PortalError
from portal_core.shares import (
    BACKUP,
    CLIENT,
    CUSTODIAN,
    ED25519,
    SECP256K1,
    SIGNING,
    KeyGen,
    Reshare,
    Share,
    run_local,
)
from present import present

VECTORS = Path(__file__).parent / "vectors" / "shares_v1.json"
CURVES = [SECP256K1, ED25519]
POINT_LEN = {SECP256K1: 33, ED25519: 32}


def keygen(curve: str, wallet: str = "wallet-1", session: str = "kg-1") -> tuple[Share, Share]:
    return run_local(
        KeyGen(curve, CLIENT, session, wallet_id=wallet),
        KeyGen(curve, CUSTODIAN, session, wallet_id=wallet),
    )


def reshare(pair: tuple[Share, Share], session: str, kind: str, new_id: str):
    return run_local(
        Reshare(pair[0], session, new_kind=kind, new_share_id=new_id),
        Reshare(pair[1], session, new_kind=kind, new_share_id=new_id),
    )


def scalar_hex(share: Share) -> str:
    """The scalar's hex, read from the documented format (for leak checks)."""
    data = share.to_secret_bytes()
    at = 7 + len(share.share_id.encode())
    return data[at : at + 32].hex()


def with_public_share(reveal: bytes, curve: str, point: bytes, *, seed: bool) -> bytes:
    """A reveal message with its public share replaced (layout: docs/shares.md)."""
    p = POINT_LEN[curve]
    at = len(reveal) - (32 if seed else 0) - (p + 32) - p
    return reveal[:at] + point + reveal[at + p :]


# --- key generation ---------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_keygen_gives_two_shares_of_one_key(curve):
    c, s = keygen(curve)
    assert (c.curve, c.kind, c.role, c.share_id) == (curve, SIGNING, CLIENT, "wallet-1")
    assert (s.role, s.kind) == (CUSTODIAN, SIGNING)
    assert c.public_key == s.public_key
    assert len(c.public_key) == POINT_LEN[curve]
    assert c.peer_public_share == s.public_share and s.peer_public_share == c.public_share
    assert c.public_share != s.public_share
    # X = X_client + X_custodian, added independently.
    assert ref.point_add(curve, c.public_share, s.public_share) == c.public_key
    assert c.address == s.address == shares.address(curve, c.public_key)


@pytest.mark.parametrize("curve", CURVES)
def test_each_keygen_makes_a_new_wallet(curve):
    assert keygen(curve)[0].public_key != keygen(curve)[0].public_key


def test_secp256k1_eject_matches_cryptography_and_keccak():
    c, s = keygen(SECP256K1)
    key = shares.eject(c, s)
    assert key.curve == SECP256K1
    assert len(key.private_key) == 64 and int(key.private_key, 16) > 0
    assert key.private_key == key.private_key.lower()
    private = ec.derive_private_key(int(key.private_key, 16), ec.SECP256K1())
    pub = private.public_key()
    compressed = pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    uncompressed = pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert compressed == c.public_key == key.public_key
    want = ref.eip55(ref.keccak256(uncompressed[1:])[12:])
    assert key.address == want == c.address
    assert shares.address(SECP256K1, uncompressed) == want


def test_ed25519_eject_matches_libsodium_and_base58():
    c, s = keygen(ED25519)
    key = shares.eject(c, s)
    scalar = base58.b58decode(key.private_key)
    assert len(scalar) == 32
    assert int.from_bytes(scalar, "little") < ref.ORDER[ED25519]
    # The key is a scalar: libsodium's no-clamp base multiplication takes it as is.
    assert crypto_scalarmult_ed25519_base_noclamp(scalar) == c.public_key == key.public_key
    assert key.address == base58.b58encode(c.public_key).decode() == c.address


@pytest.mark.parametrize("curve", CURVES)
def test_a_party_cannot_change_its_public_share_after_seeing_the_other(curve):
    client = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    custodian = KeyGen(curve, CUSTODIAN, "kg", wallet_id="w")
    c1, s1 = client.commit(), custodian.commit()
    client.reveal(s1)
    s2 = custodian.reveal(c1)
    other = keygen(curve)[1].public_share
    with pytest.raises(InvalidShare, match="does not open its commitment"):
        client.finish(with_public_share(s2, curve, other, seed=False))
    # One attempt per session: even the honest reveal is now refused.
    with pytest.raises(ValueError, match="failed verification"):
        client.finish(s2)


def public_share_of(reveal: bytes, curve: str, *, seed: bool) -> bytes:
    p = POINT_LEN[curve]
    at = len(reveal) - (32 if seed else 0) - (p + 32) - p
    return reveal[at : at + p]


@pytest.mark.parametrize("curve", CURVES)
def test_rogue_key_attempt_is_refused(curve):
    """A custodian that waits for the client's public share and answers X_s = T - X_c
    (so that the wallet key would be T, whose scalar it knows) is refused. (The Rust
    tests also show the proof of knowledge refusing it when the commitment is bypassed.)"""
    client = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    rogue = KeyGen(curve, CUSTODIAN, "kg", wallet_id="w")
    c1, s1 = client.commit(), rogue.commit()
    c2 = client.reveal(s1)  # the client reveals only after the rogue committed
    s2 = rogue.reveal(c1)
    x_client = public_share_of(c2, curve, seed=False)
    t = ref.public_point(curve, 0xC0FFEE)
    rogue_share = present(ref.point_sub(curve, t, x_client))
    assert ref.point_add(curve, x_client, rogue_share) == t
    with pytest.raises(InvalidShare, match="does not open its commitment"):
        client.finish(with_public_share(s2, curve, rogue_share, seed=False))


@pytest.mark.parametrize("curve", CURVES)
def test_a_replaced_proof_is_refused(curve):
    """The commitment covers the nonce and public share; the proof is checked on its own."""
    client = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    custodian = KeyGen(curve, CUSTODIAN, "kg", wallet_id="w")
    c1, s1 = client.commit(), custodian.commit()
    c2 = client.reveal(s1)
    s2 = custodian.reveal(c1)
    proof_len = POINT_LEN[curve] + 32
    # The client's own proof in the custodian's reveal: bound to the other role.
    reflected = s2[:-proof_len] + c2[-proof_len:]
    with pytest.raises(InvalidShare, match="proof of knowledge"):
        client.finish(reflected)


@pytest.mark.parametrize("curve", CURVES)
def test_messages_of_the_same_party_are_refused(curve):
    client = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    other_client = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    client.commit()
    with pytest.raises(InvalidShare, match="not from the custodian"):
        client.reveal(other_client.commit())


@pytest.mark.parametrize(
    ("mine", "theirs", "match"),
    [
        ((SECP256K1, "kg-1", "w"), (SECP256K1, "kg-2", "w"), "session"),
        ((SECP256K1, "kg", "w-1"), (SECP256K1, "kg", "w-2"), "new share's id"),
        ((SECP256K1, "kg", "w"), (ED25519, "kg", "w"), "ED25519"),
    ],
)
def test_parties_must_agree_on_the_session(mine, theirs, match):
    client = KeyGen(mine[0], CLIENT, mine[1], wallet_id=mine[2])
    custodian = KeyGen(theirs[0], CUSTODIAN, theirs[1], wallet_id=theirs[2])
    client.commit()
    with pytest.raises(InvalidShare, match=match):
        client.reveal(custodian.commit())


def test_steps_run_once_in_order_and_bad_arguments():
    kg = KeyGen(ED25519, CLIENT, "kg", wallet_id="w")
    with pytest.raises(ValueError, match="in order"):
        kg.reveal(b"x")
    kg.commit()
    with pytest.raises(ValueError, match="in order"):
        kg.commit()
    with pytest.raises(InvalidShare, match=r"truncated|magic"):
        kg.reveal(b"PM")
    with pytest.raises(ValueError, match="curve must be"):
        KeyGen("P-256", CLIENT, "kg", wallet_id="w")
    with pytest.raises(ValueError, match="role must be"):
        KeyGen(ED25519, "server", "kg", wallet_id="w")
    with pytest.raises(ValueError, match="session_id"):
        KeyGen(ED25519, CLIENT, "", wallet_id="w")
    with pytest.raises(ValueError, match="255 bytes"):
        KeyGen(ED25519, CLIENT, "kg", wallet_id="é" * 128)
    with pytest.raises(TypeError):
        KeyGen(ED25519, CLIENT, "kg", "w")  # type: ignore[call-arg]  # wallet_id keyword-only
    c, _ = keygen(ED25519)
    with pytest.raises(ValueError, match="kind must be"):
        Reshare(c, "s", new_kind="cold", new_share_id="p")
    with pytest.raises(TypeError):
        Reshare(b"not a share", "s", new_kind=BACKUP, new_share_id="p")  # type: ignore[arg-type]


def test_messages_accept_any_buffer():
    client = KeyGen(SECP256K1, CLIENT, "kg", wallet_id="w")
    custodian = KeyGen(SECP256K1, CUSTODIAN, "kg", wallet_id="w")
    c1, s1 = client.commit(), custodian.commit()
    c2, s2 = client.reveal(bytearray(s1)), custodian.reveal(memoryview(c1))
    a, b = client.finish(memoryview(s2)), custodian.finish(bytearray(c2))
    assert a.public_key == b.public_key
    with pytest.raises(TypeError, match="bytes-like"):
        KeyGen(SECP256K1, CLIENT, "kg", wallet_id="w").reveal("text")  # type: ignore[arg-type]


# --- backup (reshare) ---------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_backup_keeps_the_key_and_gives_fresh_shares(curve):
    signing = keygen(curve)
    bc, bs = reshare(signing, "bk-1", BACKUP, "pair-1")
    assert (bc.kind, bc.share_id, bc.role) == (BACKUP, "pair-1", CLIENT)
    assert (bs.kind, bs.share_id, bs.role) == (BACKUP, "pair-1", CUSTODIAN)
    assert bc.public_key == bs.public_key == signing[0].public_key
    assert bc.public_share != signing[0].public_share
    assert bs.public_share != signing[1].public_share
    assert ref.point_add(curve, bc.public_share, bs.public_share) == signing[0].public_key
    shares.check_public_shares(curve, bc.public_key, bc.public_share, bs.public_share)
    # The signing shares still work, and both pairings give the same key.
    assert shares.eject(bc, bs).private_key == shares.eject(*signing).private_key
    # Another backup gives other shares again.
    bc2, _ = reshare(signing, "bk-2", BACKUP, "pair-2")
    assert bc2.public_share not in (bc.public_share, signing[0].public_share)


@pytest.mark.parametrize("curve", CURVES)
def test_reshare_refuses_a_tampered_public_share(curve):
    signing = keygen(curve)
    client = Reshare(signing[0], "bk", new_kind=BACKUP, new_share_id="p")
    custodian = Reshare(signing[1], "bk", new_kind=BACKUP, new_share_id="p")
    c1, s1 = client.commit(), custodian.commit()
    client.reveal(s1)
    s2 = custodian.reveal(c1)
    other = keygen(curve)[1].public_share
    with pytest.raises(InvalidShare, match="does not pair"):
        client.finish(with_public_share(s2, curve, other, seed=True))


@pytest.mark.parametrize("curve", CURVES)
def test_reshare_refuses_a_seed_changed_after_committing(curve):
    """The delta is a hash of both seeds; a party cannot swap its seed after seeing the other."""
    signing = keygen(curve)
    client = Reshare(signing[0], "bk", new_kind=BACKUP, new_share_id="p")
    custodian = Reshare(signing[1], "bk", new_kind=BACKUP, new_share_id="p")
    c1, s1 = client.commit(), custodian.commit()
    client.reveal(s1)
    s2 = custodian.reveal(c1)
    with pytest.raises(InvalidShare, match="does not open its commitment"):
        client.finish(s2[:-1] + bytes([s2[-1] ^ 1]))


@pytest.mark.parametrize("curve", CURVES)
def test_public_shares_must_add_up_before_storing(curve):
    c, s = reshare(keygen(curve), "bk", BACKUP, "p")
    shares.check_public_shares(curve, c.public_key, c.public_share, s.public_share)
    tampered = present(ref.point_add(curve, s.public_share, ref.public_point(curve, 1)))
    with pytest.raises(InvalidShare, match="do not add up"):
        shares.check_public_shares(curve, c.public_key, c.public_share, tampered)
    with pytest.raises(InvalidShare, match="not a valid"):
        shares.check_public_shares(curve, c.public_key, c.public_share, b"\x00" * 3)


@pytest.mark.parametrize("curve", CURVES)
def test_reshare_refuses_shares_of_other_wallets_and_pairs(curve):
    a, b = keygen(curve), keygen(curve)
    client = Reshare(a[0], "rc", new_kind=SIGNING, new_share_id="wallet-1")
    custodian = Reshare(b[1], "rc", new_kind=SIGNING, new_share_id="wallet-1")
    client.commit()
    with pytest.raises(InvalidShare, match="different wallets"):
        client.reveal(custodian.commit())
    p1 = reshare(a, "bk-1", BACKUP, "pair-1")
    p2 = reshare(a, "bk-2", BACKUP, "pair-2")
    client = Reshare(p1[0], "rc", new_kind=SIGNING, new_share_id="wallet-1")
    custodian = Reshare(p2[1], "rc", new_kind=SIGNING, new_share_id="wallet-1")
    client.commit()
    with pytest.raises(InvalidShare, match="different pairs"):
        client.reveal(custodian.commit())


# --- recovery and eject ---------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_recovery_makes_a_new_pair_the_old_device_share_leaves(curve):
    old_client, old_custodian = keygen(curve)
    backup = reshare((old_client, old_custodian), "bk", BACKUP, "pair-1")
    new_client, new_custodian = reshare(backup, "rc", SIGNING, "wallet-1")
    assert (new_client.kind, new_client.share_id) == (SIGNING, "wallet-1")
    assert new_client.public_key == old_client.public_key
    assert new_client.public_share != old_client.public_share
    # The lost device's share does not pair with the custodian's new one.
    stale = ref.point_add(curve, old_client.public_share, new_custodian.public_share)
    assert stale != old_client.public_key
    with pytest.raises(InvalidShare, match="do not add up"):
        shares.check_public_shares(
            curve, old_client.public_key, old_client.public_share, new_custodian.public_share
        )
    with pytest.raises(InvalidShare, match="do not pair"):
        shares.eject(old_client, new_custodian)
    key = shares.eject(new_client, new_custodian)
    assert key.private_key == shares.eject(old_client, old_custodian).private_key


def test_eject_refuses_mismatched_shares():
    k, e = keygen(SECP256K1), keygen(ED25519)
    with pytest.raises(InvalidShare, match="different curves"):
        shares.eject(k[0], e[1])
    with pytest.raises(InvalidShare, match="client's share first"):
        shares.eject(k[1], k[0])
    backup = reshare(k, "bk", BACKUP, "p")
    with pytest.raises(InvalidShare, match="does not combine"):
        shares.eject(k[0], backup[1])
    with pytest.raises(TypeError):
        shares.eject(k[0], b"share")  # type: ignore[arg-type]


def test_address_refuses_bad_points():
    with pytest.raises(InvalidShare, match="SECP256K1"):
        shares.address(SECP256K1, b"\x02" + bytes(32))
    with pytest.raises(InvalidShare, match="ED25519"):
        shares.address(ED25519, (1).to_bytes(32, "little"))  # the identity
    with pytest.raises(ValueError, match="curve must be"):
        shares.address("BLS12-381", b"")


# --- the share format -------------------------------------------------------------------


def test_vector_file_is_what_the_reference_makes():
    assert json.loads(VECTORS.read_text("utf-8")) == ref.vectors()


@pytest.mark.parametrize("pair", ref.vectors()["pairs"], ids=lambda p: p["name"])
def test_published_vectors_decode_reencode_and_eject(pair):
    curve = pair["curve"]
    loaded = {}
    for party in (CLIENT, CUSTODIAN):
        data = bytes.fromhex(pair[party]["encoded"])
        share = Share.from_secret_bytes(
            data,
            curve=curve,
            kind=pair["kind"],
            role=party,
            share_id=pair["share_id"],
            public_share=bytes.fromhex(pair[party]["public_share"]),
            public_key=bytes.fromhex(pair["public_key"]),
        )
        assert share.to_secret_bytes() == data
        loaded[party] = share
    key = shares.eject(loaded[CLIENT], loaded[CUSTODIAN])
    assert key.private_key == pair["eject"]["private_key"]
    assert key.address == pair["eject"]["address"]
    assert key.public_key.hex() == pair["public_key"]


def test_published_anchors():
    """Private key 1 is G (its address is well known); RFC 8032 §7.1 TEST 1's public key."""
    pairs = {p["name"]: p for p in ref.vectors()["pairs"]}
    g = pairs["secp256k1-key-1"]
    assert g["eject"]["address"] == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert g["public_key"] == "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    rfc = pairs["ed25519-rfc8032-test1"]
    assert rfc["public_key"] == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


@pytest.mark.parametrize(
    "address",
    [
        # EIP-55 "Test Cases": all caps, all lower, then mixed.
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_reference_eip55_reproduces_the_eip(address):
    assert ref.eip55(bytes.fromhex(address[2:])) == address


@pytest.mark.parametrize("case", ref.vectors()["invalid"], ids=lambda c: c["name"])
def test_published_invalid_encodings_are_refused(case):
    data = bytes.fromhex(case["encoded"])
    with pytest.raises(InvalidShare, match=case["error"]) as info:
        Share.from_secret_bytes(data)
    # The message never carries the (bad) scalar bytes.
    for at in range(0, max(0, len(data) - 31), 1):
        chunk = data[at : at + 32]
        if len(chunk) == 32 and chunk.count(chunk[0]) != 32:
            assert chunk.hex() not in str(info.value)


@pytest.mark.parametrize("curve", CURVES)
def test_round_trip_and_expectations(curve):
    c, s = keygen(curve, wallet="wallet-ü")
    data = c.to_secret_bytes()
    assert data[:3] == b"PS\x01" and data[3] == (1 if curve == SECP256K1 else 2)
    assert len(data) == 7 + len("wallet-ü".encode()) + 32 + 2 * POINT_LEN[curve]
    for kind in (bytes, bytearray, memoryview):
        back = Share.from_secret_bytes(kind(data))
        assert back.to_secret_bytes() == data
        assert (back.public_share, back.public_key) == (c.public_share, c.public_key)
    other = ED25519 if curve == SECP256K1 else SECP256K1
    with pytest.raises(InvalidShare, match=f"curve is {curve}, expected {other}"):
        Share.from_secret_bytes(data, curve=other)
    with pytest.raises(InvalidShare, match="role is client, expected custodian"):
        Share.from_secret_bytes(data, role=CUSTODIAN)
    with pytest.raises(InvalidShare, match="kind is signing, expected backup"):
        Share.from_secret_bytes(data, kind=BACKUP)
    with pytest.raises(InvalidShare, match="id"):
        Share.from_secret_bytes(data, share_id="wallet-2")
    with pytest.raises(InvalidShare, match="recorded"):
        Share.from_secret_bytes(data, public_share=s.public_share)
    with pytest.raises(InvalidShare, match="another wallet"):
        Share.from_secret_bytes(data, public_key=keygen(curve)[0].public_key)
    with pytest.raises(TypeError, match="bytes-like"):
        Share.from_secret_bytes(data.hex())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curve must be"):
        Share.from_secret_bytes(data, curve="secp256k1")


@pytest.mark.parametrize("curve", CURVES)
def test_every_flipped_bit_is_refused_given_the_recorded_id_and_key(curve):
    """A share alone proves its scalar matches its public share; its id and the wallet's
    public key are labels the caller checks against its records (the flows pass them)."""
    c, s = keygen(curve, wallet="w")
    data = c.to_secret_bytes()
    key_at = 7 + 1 + 32 + POINT_LEN[curve]
    for i in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[i // 8] ^= 1 << (i % 8)
        try:
            Share.from_secret_bytes(bytes(flipped))
        except InvalidShare:
            continue
        assert i // 8 == 7 or i // 8 >= key_at, i
        with pytest.raises(InvalidShare):
            Share.from_secret_bytes(bytes(flipped), share_id="w", public_key=c.public_key)
        with pytest.raises(InvalidShare):
            shares.eject(Share.from_secret_bytes(bytes(flipped)), s)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), curve=st.sampled_from(CURVES))
def test_any_split_from_the_reference_loads_and_ejects(data, curve):
    n = ref.ORDER[curve]
    x = data.draw(st.integers(1, n - 1), label="x")
    x_client = data.draw(st.integers(1, n - 1).filter(lambda v: v != x), label="x_client")
    x_custodian = (x - x_client) % n
    c = Share.from_secret_bytes(ref.encode_share(curve, BACKUP, CLIENT, "p", x_client, x))
    s = Share.from_secret_bytes(ref.encode_share(curve, BACKUP, CUSTODIAN, "p", x_custodian, x))
    key = shares.eject(c, s)
    assert key.private_key == ref.private_key_string(curve, x)
    assert key.address == ref.address(curve, x) == c.address


# --- secrets stay secret ----------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_repr_and_str_never_show_a_scalar(curve):
    kg_c = KeyGen(curve, CLIENT, "kg", wallet_id="w")
    kg_s = KeyGen(curve, CUSTODIAN, "kg", wallet_id="w")
    c, s = run_local(kg_c, kg_s)
    rs = Reshare(c, "bk", new_kind=BACKUP, new_share_id="p")
    key = shares.eject(c, s)
    secrets = [scalar_hex(c), scalar_hex(s), key.private_key]
    if curve == ED25519:
        secrets.append(base58.b58decode(key.private_key).hex())
    for obj in (c, s, kg_c, kg_s, rs, key):
        for text in (repr(obj), str(obj)):
            for secret in secrets:
                assert secret not in text
                assert secret.upper() not in text
    assert "redacted" in repr(key)
    assert repr(c).startswith("Share(curve='") and c.public_share.hex() in repr(c)


@pytest.mark.parametrize("curve", CURVES)
def test_secret_holders_cannot_be_pickled_or_copied(curve):
    c, s = keygen(curve)
    for obj in (c, shares.eject(c, s), KeyGen(curve, CLIENT, "kg", wallet_id="w")):
        with pytest.raises((TypeError, pickle.PicklingError)):
            pickle.dumps(obj)
        with pytest.raises(TypeError):
            copy.deepcopy(obj)


# --- suspended parties ---------------------------------------------------------------------


def fresh_parties(curve: str) -> list[tuple[Any, Any]]:
    """(client, custodian) parties of a key generation, a backup and a recovery, not started."""
    pair = keygen(curve, "w-s")
    backup = reshare(pair, "bk-1", BACKUP, "p-1")
    return [
        (
            KeyGen(curve, CLIENT, "kg-s", wallet_id="w-s"),
            KeyGen(curve, CUSTODIAN, "kg-s", wallet_id="w-s"),
        ),
        (
            Reshare(pair[0], "bk-2", new_kind=BACKUP, new_share_id="p-2"),
            Reshare(pair[1], "bk-2", new_kind=BACKUP, new_share_id="p-2"),
        ),
        (
            Reshare(backup[0], "rc-1", new_kind=SIGNING, new_share_id="w-s"),
            Reshare(backup[1], "rc-1", new_kind=SIGNING, new_share_id="w-s"),
        ),
    ]


@pytest.mark.parametrize("curve", CURVES)
def test_a_resumed_party_commits_and_finishes_as_the_suspended_one(curve):
    for client, custodian in fresh_parties(curve):
        state = custodian.suspend()
        assert shares.STATE_VERSION == 1 and state[:3] == b"PT\x01"
        resumed = shares.resume(bytearray(state))  # any buffer
        assert type(resumed) is type(custodian)
        assert (resumed.curve, resumed.role, resumed.session_id) == (
            curve,
            CUSTODIAN,
            custodian.session_id,
        )
        assert resumed.suspend() == state  # nothing drawn again
        cc, cs = client.commit(), custodian.commit()
        assert resumed.commit() == cs
        rc = client.reveal(cs)
        custodian.reveal(cc)
        answer = resumed.reveal(cc)
        ours, theirs = custodian.finish(rc), resumed.finish(rc)
        assert ours.to_secret_bytes() == theirs.to_secret_bytes()
        shares.eject(client.finish(answer), theirs)


@pytest.mark.parametrize("curve", CURVES)
def test_only_a_party_not_yet_committed_is_suspended(curve):
    for _, party in fresh_parties(curve):
        party.commit()
        with pytest.raises(ValueError, match=r"before commit\(\)"):
            party.suspend()


@pytest.mark.parametrize("curve", CURVES)
def test_bad_suspended_states_are_refused(curve):
    for _, party in fresh_parties(curve):
        state = party.suspend()
        for bad in (state[:-1], state + b"\x00", b"", b"PS" + state[2:], b"garbage" * 20):
            with pytest.raises(InvalidShare):
                shares.resume(bad)
        tail = 64 if isinstance(party, KeyGen) else 96
        at = len(state) - tail
        for scalar in (bytes(32), b"\xff" * 32):
            with pytest.raises(InvalidShare, match=r"zero|not canonical") as e:
                shares.resume(state[:at] + scalar + state[at + 32 :])
            assert state[at : at + 32].hex() not in str(e.value)
    with pytest.raises(TypeError):
        shares.resume("PT")  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", CURVES)
def test_a_suspended_state_never_shows_in_a_repr(curve):
    for _, party in fresh_parties(curve):
        state = party.suspend()
        resumed = shares.resume(state)
        for obj in (party, resumed):
            for text in (repr(obj), str(obj)):
                assert state.hex() not in text
                assert state[-32:].hex() not in text
        with pytest.raises((TypeError, pickle.PicklingError)):
            pickle.dumps(resumed)


def test_invalid_share_is_a_portal_error():
    assert issubclass(InvalidShare, PortalError)
    with pytest.raises(PortalError):
        Share.from_secret_bytes(b"")


def test_the_example_in_docs_runs(capsys):
    doc = (Path(__file__).parent.parent / "docs" / "shares.md").read_text("utf-8")
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/shares.md", "exec"), namespace)
    assert namespace["ejected"].public_key == namespace["wallet_key"]
    assert "redacted" in capsys.readouterr().out

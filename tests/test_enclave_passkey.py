"""PasskeyEnclave on a real SoftHSM token, with real WebAuthn responses from a software
authenticator: registration, login-read and login-write, and every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from typing import Any

import cbor2
import pytest

from enclave_fixtures import (  # noqa: F401 - fixtures
    ANDROID_ORIGIN,
    ORIGIN,
    RP_ID,
    assertion,
    authenticator_fixture,
    clock_fixture,
    enclave_db_fixture,
    enclave_fixture,
    enclave_store_fixture,
    register,
)
from portal_core.enclave import (
    Ceremony,
    ChallengeRecord,
    ChallengeRejected,
    CredentialAlreadyRegistered,
    CredentialNotOwned,
    KeyMode,
    KeyNotStored,
    LoginOperation,
    MalformedResponse,
    NoCredentials,
    OriginMismatch,
    PasskeyEnclave,
    PrfOutputExposed,
    RpIdMismatch,
    SealedRecordInvalid,
    SignCountNotIncreasing,
    UnknownCredential,
    UserPresenceMissing,
    UserVerificationMissing,
    VerificationFailed,
)
from portal_core.exceptions import InvalidTag, NoValidBackup
from webauthn_authenticator import EDDSA, ES256, ES384, SoftAuthenticator, b64url, unb64url

KEY = bytes(range(32))


# -- the happy paths -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", [ES256, EDDSA], ids=["p256", "ed25519"])
@pytest.mark.parametrize("fmt", ["packed", "none"])
def test_register_write_read(enclave: PasskeyEnclave, alg: int, fmt: str) -> None:
    auth = SoftAuthenticator(alg=alg, attestation=fmt)
    info = register(enclave, auth, "alice")
    assert info.alg == alg
    assert info.fmt == fmt
    assert info.user == "alice"
    assert info.prf_enabled
    assert info.backup_eligible and info.backed_up
    assert enclave.has_credentials("alice")

    response, _ = assertion(enclave, auth, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    response, _ = assertion(enclave, auth, "alice", "read")
    assert enclave.finish_login_read("alice", response) == KEY
    # The counter the authenticator keeps was stored (two assertions after registration).
    assert enclave.credentials("alice")[0].sign_count == 2


def test_slots_are_separate(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    for slot, key in (("w1.b1", b"\x01" * 32), ("w1.b2", b"\x02" * 32)):
        response, _ = assertion(enclave, authenticator, "alice", "write", slot=slot)
        enclave.finish_login_write("alice", response, key, slot=slot)
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="w1.b2")
    assert enclave.finish_login_read("alice", response, slot="w1.b2") == b"\x02" * 32
    assert enclave.delete_key("alice", slot="w1.b2") == 1
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="w1.b2")
    with pytest.raises(KeyNotStored):
        enclave.finish_login_read("alice", response, slot="w1.b2")
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="w1.b1")
    assert enclave.finish_login_read("alice", response, slot="w1.b1") == b"\x01" * 32


def test_write_replaces(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    for key in (b"a" * 32, b"b" * 32):
        response, _ = assertion(enclave, authenticator, "alice", "write")
        enclave.finish_login_write("alice", response, key)
    response, _ = assertion(enclave, authenticator, "alice", "read")
    assert enclave.finish_login_read("alice", response) == b"b" * 32


def test_android_origin(enclave: PasskeyEnclave) -> None:
    auth = SoftAuthenticator(origin=ANDROID_ORIGIN)
    register(enclave, auth, "alice")
    response, _ = assertion(enclave, auth, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    response, _ = assertion(enclave, auth, "alice", "read")
    assert enclave.finish_login_read("alice", response) == KEY


def test_authenticator_without_counter(enclave: PasskeyEnclave) -> None:
    # Sign count 0 on every use means the authenticator keeps no counter (WebAuthn L3
    # §6.1.1): it must keep working, not be refused as a clone.
    auth = SoftAuthenticator(counter=False)
    register(enclave, auth, "alice")
    for _ in range(3):
        response, _ = assertion(enclave, auth, "alice", "write")
        enclave.finish_login_write("alice", response, KEY)
    assert enclave.credentials("alice")[0].sign_count == 0


def test_options(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    options = enclave.begin_registration("alice", display_name="Alice A.")
    assert options["rp"] == {"name": "Example", "id": RP_ID}
    assert options["user"]["name"] == "alice"
    assert options["user"]["displayName"] == "Alice A."
    assert len(unb64url(options["user"]["id"])) == 32  # a random handle, not the name
    assert {p["alg"] for p in options["pubKeyCredParams"]} == {-8, -7, -257}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["extensions"]["prf"] == {}
    assert len(unb64url(options["challenge"])) == 32
    assert options["excludeCredentials"] == []
    enclave.finish_registration("alice", authenticator.create(options))

    # A second registration excludes the first credential; the handle stays the user's.
    again = enclave.begin_registration("alice")
    assert again["user"]["id"] == options["user"]["id"]
    assert [c["id"] for c in again["excludeCredentials"]] == [
        enclave.credentials("alice")[0].credential_id_b64
    ]

    login = enclave.begin_login("alice", operation="read")
    assert login["rpId"] == RP_ID
    assert login["userVerification"] == "required"
    (cred,) = login["allowCredentials"]
    assert cred["id"] == enclave.credentials("alice")[0].credential_id_b64
    salt = login["extensions"]["prf"]["evalByCredential"][cred["id"]]["first"]
    assert len(unb64url(salt)) == 32
    assert login["challenge"] != options["challenge"]


def test_begin_login_without_passkey(enclave: PasskeyEnclave) -> None:
    with pytest.raises(NoCredentials, match="no registered passkey") as info:
        enclave.begin_login("nobody", operation="read")
    assert isinstance(info.value, NoValidBackup)


# -- challenges ---------------------------------------------------------------------------------


def test_reused_challenge(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    with pytest.raises(ChallengeRejected, match="unknown or already used"):
        enclave.finish_login_read("alice", response)


def test_reused_registration_challenge(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    options = enclave.begin_registration("alice")
    enclave.finish_registration("alice", authenticator.create(options))
    # The same challenge answered again by a new credential: refused.
    with pytest.raises(ChallengeRejected):
        enclave.finish_registration("alice", SoftAuthenticator().create(options))


def test_unknown_challenge(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    options = enclave.begin_login("alice", operation="read")
    forged = b64url(os.urandom(32))
    with pytest.raises(ChallengeRejected, match="unknown or already used"):
        enclave.finish_login_read("alice", _strip(authenticator.get(options, challenge=forged)))


def test_expired_challenge(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator, clock
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write")
    clock.advance(enclave.challenge_ttl + 1)
    with pytest.raises(ChallengeRejected, match="expired"):
        enclave.finish_login_write("alice", response, KEY)
    # Expired challenges are purged when new ones are issued.
    options = enclave.begin_registration("bob")
    clock.advance(enclave.challenge_ttl + 1)
    enclave.begin_registration("carol")
    with pytest.raises(ChallengeRejected, match="unknown"):
        enclave.finish_registration("bob", SoftAuthenticator().create(options))


def test_challenge_of_another_user(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    options = enclave.begin_registration("bob")
    with pytest.raises(ChallengeRejected, match="another user"):
        enclave.finish_registration("alice", SoftAuthenticator().create(options))


def test_challenge_of_another_ceremony(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    registration = enclave.begin_registration("alice")
    login = enclave.begin_login("alice", operation="read")
    answer = _strip(authenticator.get(login, challenge=registration["challenge"]))
    with pytest.raises(ChallengeRejected, match="issued for registration"):
        enclave.finish_login_read("alice", answer)


def test_failed_finish_spends_the_challenge(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    options = enclave.begin_login("alice", operation="read")
    with pytest.raises(OriginMismatch):
        enclave.finish_login_read(
            "alice", _strip(authenticator.get(options, origin="https://evil.example"))
        )
    with pytest.raises(ChallengeRejected):
        enclave.finish_login_read("alice", _strip(authenticator.get(options)))


def test_concurrent_finishes_use_a_challenge_once(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    response, _ = assertion(enclave, authenticator, "alice", "read")
    outcomes: list[object] = []
    barrier = threading.Barrier(8, timeout=30)

    def finish() -> None:
        barrier.wait()
        try:
            outcomes.append(enclave.finish_login_read("alice", response))
        except ChallengeRejected as e:
            outcomes.append(e)

    threads = [threading.Thread(target=finish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert outcomes.count(KEY) == 1
    assert sum(isinstance(o, ChallengeRejected) for o in outcomes) == 7


# -- what a login challenge authorises -------------------------------------------------------------


def test_write_assertion_cannot_read(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", slot="a")
    enclave.finish_login_write("alice", response, KEY, slot="a")
    count = enclave.credentials("alice")[0].sign_count
    # An assertion the user gave to write slot "a", spent on reading it instead.
    response, _ = assertion(enclave, authenticator, "alice", "write", slot="a")
    with pytest.raises(ChallengeRejected, match="issued to write slot 'a', not to read slot 'a'"):
        enclave.finish_login_read("alice", response, slot="a")
    # The challenge is spent all the same (no second chance with the right finish), and
    # nothing else happened: the counter did not move.
    with pytest.raises(ChallengeRejected, match="unknown or already used"):
        enclave.finish_login_write("alice", response, b"w" * 32, slot="a")
    assert enclave.credentials("alice")[0].sign_count == count
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="a")
    assert enclave.finish_login_read("alice", response, slot="a") == KEY


def test_read_assertion_cannot_write(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", slot="a")
    enclave.finish_login_write("alice", response, KEY, slot="a")
    # A read assertion turned into an overwrite of the key (which would lose the backup).
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="a")
    with pytest.raises(ChallengeRejected, match="issued to read slot 'a', not to write"):
        enclave.finish_login_write("alice", response, b"evil" * 8, slot="a")
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="a")
    assert enclave.finish_login_read("alice", response, slot="a") == KEY


def test_assertion_for_one_slot_cannot_read_another(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    for slot, key in (("a", b"A" * 32), ("b", b"B" * 32)):
        response, _ = assertion(enclave, authenticator, "alice", "write", slot=slot)
        enclave.finish_login_write("alice", response, key, slot=slot)
    response, _ = assertion(enclave, authenticator, "alice", "read", slot="a")
    with pytest.raises(ChallengeRejected, match="issued to read slot 'a', not to read slot 'b'"):
        enclave.finish_login_read("alice", response, slot="b")
    # Nor for a write to another slot.
    response, _ = assertion(enclave, authenticator, "alice", "write", slot="a")
    with pytest.raises(ChallengeRejected, match="slot 'a'"):
        enclave.finish_login_write("alice", response, b"X" * 32, slot="b")
    # The right pairings work, and nothing was changed by the refused ones.
    for slot, key in (("a", b"A" * 32), ("b", b"B" * 32)):
        response, _ = assertion(enclave, authenticator, "alice", "read", slot=slot)
        assert enclave.finish_login_read("alice", response, slot=slot) == key


def test_challenge_from_before_operations_is_refused(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator, enclave_store, clock
) -> None:
    # A login challenge stored before challenges named their operation and slot.
    register(enclave, authenticator, "alice")
    challenge = os.urandom(32)
    enclave_store.add_challenge(
        ChallengeRecord(
            hashlib.sha256(challenge).digest(),
            "alice",
            Ceremony.AUTHENTICATION,
            clock(),
            clock() + 300,
        ),
        purge_before=clock(),
    )
    options = enclave.begin_login("alice", operation="read")
    response = _strip(authenticator.get(options, challenge=b64url(challenge)))
    with pytest.raises(ChallengeRejected, match="begin again"):
        enclave.finish_login_read("alice", response)
    assert enclave_store.take_challenge(hashlib.sha256(challenge).digest()) is None  # spent


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, TypeError),
        ({"operation": "delete"}, ValueError),
        ({"operation": 1}, TypeError),
        ({"operation": "read", "slot": "../x"}, ValueError),
    ],
)
def test_begin_login_arguments(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator, enclave_db, kwargs, error
) -> None:
    register(enclave, authenticator, "alice")
    with pytest.raises(error):
        enclave.begin_login("alice", **kwargs)
    with sqlite3.connect(enclave_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM enclave_challenges").fetchone() == (0,)


def test_login_challenge_records_operation_and_slot(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator, enclave_db
) -> None:
    register(enclave, authenticator, "alice")
    enclave.begin_login("alice", operation=LoginOperation.WRITE, slot="w1.b1")
    with sqlite3.connect(enclave_db) as conn:
        rows = conn.execute("SELECT ceremony, operation, slot FROM enclave_challenges").fetchall()
    assert rows == [("authentication", "write", "w1.b1")]


# -- origin, RP id, flags -----------------------------------------------------------------------


def test_wrong_origin(enclave: PasskeyEnclave) -> None:
    evil = SoftAuthenticator(origin="https://example.com.evil.example")
    with pytest.raises(OriginMismatch, match="not one of the origins"):
        register(enclave, evil, "alice")
    good = SoftAuthenticator()
    register(enclave, good, "alice")
    for origin in ("https://evil.example", "http://example.com", "https://login.example.com"):
        response, _ = assertion(enclave, good, "alice", "read", origin=origin)
        with pytest.raises(OriginMismatch):
            enclave.finish_login_read("alice", response)
    other_app = "android:apk-key-hash:" + b64url(hashlib.sha256(b"another app").digest())
    response, _ = assertion(enclave, good, "alice", "read", origin=other_app)
    with pytest.raises(OriginMismatch):
        enclave.finish_login_read("alice", response)


def test_cross_origin_frame(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "read", cross_origin=True)
    with pytest.raises(OriginMismatch, match="cross-origin"):
        enclave.finish_login_read("alice", response)


def test_wrong_client_data_type(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(
        enclave, authenticator, "alice", "read", client_data_type="webauthn.create"
    )
    with pytest.raises(VerificationFailed, match="type"):
        enclave.finish_login_read("alice", response)


def test_wrong_rp_id(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    with pytest.raises(RpIdMismatch):
        register(enclave, SoftAuthenticator(), "alice", rp_id="evil.example")
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "read", rp_id="evil.example")
    with pytest.raises(RpIdMismatch):
        enclave.finish_login_read("alice", response)


def test_user_presence_required(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    with pytest.raises(UserPresenceMissing):
        register(enclave, SoftAuthenticator(), "alice", up=False)
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "read", up=False)
    with pytest.raises(UserPresenceMissing):
        enclave.finish_login_read("alice", response)


def test_user_verification_required(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    with pytest.raises(UserVerificationMissing):
        register(enclave, SoftAuthenticator(), "alice", uv=False)
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", uv=False)
    with pytest.raises(UserVerificationMissing):
        enclave.finish_login_write("alice", response, KEY)


def test_user_verification_optional(kms, key_name, enclave_store, clock) -> None:
    relaxed = PasskeyEnclave(
        kms,
        enclave_store,
        rp_id=RP_ID,
        rp_name="Example",
        origins=[ORIGIN],
        key_name=key_name,
        require_user_verification=False,
        clock=clock,
    )
    auth = SoftAuthenticator(uv=False)
    register(relaxed, auth, "alice")
    response, _ = assertion(relaxed, auth, "alice", "write")
    relaxed.finish_login_write("alice", response, KEY)
    response, _ = assertion(relaxed, auth, "alice", "read", up=False)
    with pytest.raises(UserPresenceMissing):
        relaxed.finish_login_read("alice", response)


# -- credentials and counters -------------------------------------------------------------------


def test_credential_of_another_user(enclave: PasskeyEnclave) -> None:
    alice, bob = SoftAuthenticator(), SoftAuthenticator()
    register(enclave, alice, "alice")
    bob_credential = register(enclave, bob, "bob")
    response, _ = assertion(enclave, alice, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    # Bob's authenticator answers Alice's challenge with Bob's (valid, registered) credential.
    options = enclave.begin_login("alice", operation="read")
    forged = _strip(bob.get(options, credential_id=bob_credential.credential_id))
    with pytest.raises(CredentialNotOwned, match="not registered to user 'alice'"):
        enclave.finish_login_read("alice", forged)


def test_user_handle_of_another_user(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "read", user_handle=os.urandom(32))
    with pytest.raises(CredentialNotOwned, match="user handle"):
        enclave.finish_login_read("alice", response)
    # No user handle at all is fine (non-discoverable credentials send none).
    response, _ = assertion(enclave, authenticator, "alice", "write", user_handle=None)
    enclave.finish_login_write("alice", response, KEY)


def test_unknown_credential(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    stranger = SoftAuthenticator()
    stranger.create(enclave.begin_registration("mallory"))  # made, never registered
    (credential_id,) = stranger.credentials
    options = enclave.begin_login("alice", operation="read")
    with pytest.raises(UnknownCredential, match="not registered"):
        enclave.finish_login_read(
            "alice", _strip(stranger.get(options, credential_id=credential_id))
        )


def test_sign_count_must_increase(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", sign_count=5)
    enclave.finish_login_write("alice", response, KEY)
    for count in (5, 4, 0):
        response, _ = assertion(enclave, authenticator, "alice", "read", sign_count=count)
        with pytest.raises(SignCountNotIncreasing, match="cloned authenticator"):
            enclave.finish_login_read("alice", response)
    response, _ = assertion(enclave, authenticator, "alice", "read", sign_count=6)
    assert enclave.finish_login_read("alice", response) == KEY


def test_sign_count_compare_and_set(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    # Two assertions both verified against stored count 1; the one stored second must not
    # move the counter back, and one carrying the same count must lose.
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", sign_count=1)
    enclave.finish_login_write("alice", response, KEY)
    (record,) = enclave._store.list_credentials("alice")
    enclave._advance_counter(record, 7, True)
    with pytest.raises(SignCountNotIncreasing, match="concurrent"):
        enclave._advance_counter(record, 7, True)
    with pytest.raises(SignCountNotIncreasing):
        enclave._advance_counter(record, 3, True)
    enclave._advance_counter(record, 8, True)
    assert enclave.credentials("alice")[0].sign_count == 8


def test_bad_signature(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "read")
    signature = bytearray(unb64url(response["response"]["signature"]))
    signature[-1] ^= 1
    response["response"]["signature"] = b64url(bytes(signature))
    with pytest.raises(VerificationFailed, match="does not verify"):
        enclave.finish_login_read("alice", response)


def test_tampered_attestation(enclave: PasskeyEnclave) -> None:
    options = enclave.begin_registration("alice")
    response = SoftAuthenticator(attestation="packed").create(options)
    attestation = cbor2.loads(unb64url(response["response"]["attestationObject"]))
    signature = bytearray(attestation["attStmt"]["sig"])
    signature[-1] ^= 1
    attestation["attStmt"]["sig"] = bytes(signature)
    response["response"]["attestationObject"] = b64url(cbor2.dumps(attestation, canonical=True))
    with pytest.raises(VerificationFailed, match="does not verify"):
        enclave.finish_registration("alice", response)
    assert not enclave.has_credentials("alice")


def test_duplicate_credential(enclave: PasskeyEnclave) -> None:
    credential_id = os.urandom(16)
    register(enclave, SoftAuthenticator(), "alice", credential_id=credential_id)
    with pytest.raises(CredentialAlreadyRegistered):
        register(enclave, SoftAuthenticator(), "bob", credential_id=credential_id)
    assert not enclave.has_credentials("bob")


def test_unsupported_algorithm(enclave: PasskeyEnclave) -> None:
    # An ES384 credential, which the enclave does not offer (a client that ignores
    # pubKeyCredParams): refused, not registered.
    options = enclave.begin_registration("alice")
    options["pubKeyCredParams"].append({"type": "public-key", "alg": ES384})
    response = SoftAuthenticator(alg=ES384).create(options)
    with pytest.raises(VerificationFailed, match="alg"):
        enclave.finish_registration("alice", response)
    assert not enclave.has_credentials("alice")


def test_malformed_responses(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    register(enclave, authenticator, "alice")
    for bad in ("not json", "[1, 2]", json.dumps({"id": "x"}), "x" * 70_000):
        with pytest.raises(MalformedResponse):
            enclave.finish_login_read("alice", bad)
    response, _ = assertion(enclave, authenticator, "alice", "read")
    response["response"]["authenticatorData"] = "!!!"
    with pytest.raises(MalformedResponse):
        enclave.finish_login_read("alice", response)
    with pytest.raises(TypeError):
        enclave.finish_login_read("alice", 42)


def test_remove_credential(enclave: PasskeyEnclave, authenticator: SoftAuthenticator) -> None:
    info = register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    assert not enclave.remove_credential("bob", info.credential_id)
    assert enclave.remove_credential("alice", info.credential_id)
    with pytest.raises(NoCredentials):
        enclave.begin_login("alice", operation="write")


def test_each_passkey_has_its_own_copy(enclave: PasskeyEnclave) -> None:
    phone, laptop = SoftAuthenticator(), SoftAuthenticator(alg=EDDSA)
    register(enclave, phone, "alice")
    register(enclave, laptop, "alice")
    response, _ = assertion(enclave, phone, "alice", "write")
    enclave.finish_login_write("alice", response, KEY)
    response, _ = assertion(enclave, laptop, "alice", "read")
    with pytest.raises(KeyNotStored, match="another of the user's passkeys"):
        enclave.finish_login_read("alice", response)


# -- keys at rest ---------------------------------------------------------------------------------


def test_keys_sealed_under_the_hsm(enclave: PasskeyEnclave, authenticator, kms, enclave_db) -> None:
    info = register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write", slot="w.b")
    enclave.finish_login_write("alice", response, KEY, slot="w.b")
    with sqlite3.connect(enclave_db) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM enclave_keys").fetchone()
    blob = kms.inspect(sealed)
    assert blob.key_name == enclave.key_name
    assert blob.context == {
        "purpose": "portal-core enclave passkey key",
        "user": "alice",
        "credential": info.credential_id_b64,
        "slot": "w.b",
        "mode": "server",
    }
    assert KEY not in sealed
    with open(enclave_db, "rb") as f:
        assert KEY not in f.read()


def test_moved_key_record_does_not_open(enclave: PasskeyEnclave, enclave_db) -> None:
    alice, bob = SoftAuthenticator(), SoftAuthenticator()
    register(enclave, alice, "alice")
    register(enclave, bob, "bob")
    for user, auth, key in (("alice", alice, b"A" * 32), ("bob", bob, b"B" * 32)):
        response, _ = assertion(enclave, auth, user, "write")
        enclave.finish_login_write(user, response, key)
    # Someone with write access to the store copies Alice's sealed key into Bob's row.
    with sqlite3.connect(enclave_db) as conn:
        conn.execute(
            "UPDATE enclave_keys SET sealed = (SELECT sealed FROM enclave_keys "
            "WHERE user_id = 'alice') WHERE user_id = 'bob'"
        )
    response, _ = assertion(enclave, bob, "bob", "read")
    with pytest.raises(SealedRecordInvalid) as info:
        enclave.finish_login_read("bob", response)
    assert isinstance(info.value, InvalidTag)


def test_key_argument_checked_before_the_challenge(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    response, _ = assertion(enclave, authenticator, "alice", "write")
    with pytest.raises(ValueError):
        enclave.finish_login_write("alice", response, b"")
    with pytest.raises(TypeError):
        enclave.finish_login_write("alice", response, "a str key")
    with pytest.raises(ValueError, match="wrapped value"):
        enclave.finish_login_write("alice", response, KEY, mode=KeyMode.PRF)
    with pytest.raises(ValueError, match="invalid slot"):
        enclave.finish_login_write("alice", response, KEY, slot="../x")
    enclave.finish_login_write("alice", response, bytearray(KEY))  # still unspent


def test_prf_output_never_accepted(
    enclave: PasskeyEnclave, authenticator: SoftAuthenticator
) -> None:
    register(enclave, authenticator, "alice")
    options = enclave.begin_login("alice", operation="write")
    raw = authenticator.get(options)  # as the browser returns it, PRF output included
    assert raw["clientExtensionResults"]["prf"]["results"]["first"]
    with pytest.raises(PrfOutputExposed, match="must remove"):
        enclave.finish_login_write("alice", raw, KEY)
    options = enclave.begin_registration("bob")
    with pytest.raises(PrfOutputExposed):
        enclave.finish_registration("bob", SoftAuthenticator().create(options, leak_prf=KEY))
    assert not enclave.has_credentials("bob")


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rp_id", "origins", "error"),
    [
        ("example.com", ["https://evil.example"], ValueError),
        ("example.com", ["http://example.com"], ValueError),
        ("example.com", ["https://example.com/path"], ValueError),
        ("example.com", ["https://Example.com"], ValueError),
        ("example.com", ["android:apk-key-hash:"], ValueError),
        ("example.com", [], ValueError),
        ("example.com", "https://example.com", TypeError),
        ("https://example.com", ["https://example.com"], ValueError),
        ("Example.com", ["https://example.com"], ValueError),
    ],
)
def test_bad_configuration(kms, enclave_store, rp_id, origins, error) -> None:
    with pytest.raises(error):
        PasskeyEnclave(kms, enclave_store, rp_id=rp_id, rp_name="x", origins=origins)


def test_good_configuration(kms, enclave_store) -> None:
    enclave = PasskeyEnclave(
        kms,
        enclave_store,
        rp_id="example.com",
        rp_name="Example",
        origins=[
            "https://example.com",
            "https://app.example.com:8443",
            "http://localhost:3000",
            ANDROID_ORIGIN,
        ],
    )
    assert len(enclave.origins) == 4
    assert "example.com" in repr(enclave)


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    from portal_core.enclave.prf import split_prf_output

    return split_prf_output(response)[0]

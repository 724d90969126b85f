"""portal_core.kms on a real SoftHSM2 token: keys, sealing, rotation, tampering, errors."""

from __future__ import annotations

import os
from collections.abc import Callable

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag, PortalError
from portal_core.kms import (
    BlobKeyNotFound,
    KeyAlreadyExists,
    KeyNotFound,
    KeyVersionRetired,
    KmsError,
    MalformedBlob,
    Pkcs11Kms,
)
from portal_core.kms.blob import header_len

CTX = {"wallet": "wallet-7f3a", "curve": "SECP256K1", "party": "custodian"}


def test_seal_open_round_trip_names_key_and_version(kms, key_name):
    share = os.urandom(1024)
    sealed = kms.seal(key_name, share, context=CTX)
    info = kms.inspect(sealed)
    assert (info.key_name, info.key_version, info.wrap) == (key_name, 1, "aes-gcm")
    assert info.key_id == f"{key_name}/v1"
    assert info.context == CTX and info.plaintext_length == 1024
    assert kms.open(sealed, context=CTX) == share
    # Inputs may be any bytes-like object.
    assert kms.open(bytearray(sealed), context=dict(reversed(CTX.items()))) == share
    assert kms.open(memoryview(sealed), context=CTX) == share


def test_two_seals_of_one_share_differ(kms, key_name):
    a = kms.seal(key_name, b"share", context=CTX)
    b = kms.seal(key_name, b"share", context=CTX)
    assert a != b
    assert kms.open(a, context=CTX) == kms.open(b, context=CTX) == b"share"


@pytest.mark.parametrize(
    "other",
    [
        {**CTX, "wallet": "wallet-7f3b"},
        {k: v for k, v in CTX.items() if k != "party"},
        {**CTX, "extra": "x"},
        {},
        None,
    ],
)
def test_another_context_fails_with_invalid_tag(kms, key_name, other):
    sealed = kms.seal(key_name, b"custodian share", context=CTX)
    with pytest.raises(InvalidTag):
        kms.open(sealed, context=other)


def test_tampering_any_byte_fails_with_invalid_tag(kms, key_name):
    sealed = kms.seal(key_name, os.urandom(48), context=CTX)
    for i in range(len(sealed)):
        for flip in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[i] ^= flip
            with pytest.raises(InvalidTag):
                kms.open(bytes(tampered), context=CTX)
    for cut in (0, 3, 20, 80, len(sealed) - 1):
        with pytest.raises(InvalidTag):
            kms.open(sealed[:cut], context=CTX)
    with pytest.raises(InvalidTag):
        kms.open(sealed + b"\x00", context=CTX)
    assert kms.open(sealed, context=CTX)  # the original still opens


def test_malformed_and_unknown_key_errors_are_specific_and_invalid_tags(kms, key_name):
    with pytest.raises(MalformedBlob, match="bad magic") as bad:
        kms.open(b"XX" + bytes(200), context=CTX)
    assert isinstance(bad.value, InvalidTag) and isinstance(bad.value, InvalidEnvelope)
    sealed = bytearray(kms.seal(key_name, b"s", context=CTX))
    sealed[2] = 9
    with pytest.raises(MalformedBlob, match="version 9"):
        kms.open(bytes(sealed), context=CTX)
    sealed[2] = 1
    at = 5 + len(key_name)
    sealed[at : at + 4] = (7).to_bytes(4, "big")  # a version the token does not hold
    with pytest.raises(BlobKeyNotFound) as missing:
        kms.open(bytes(sealed), context=CTX)
    assert isinstance(missing.value, KeyNotFound) and isinstance(missing.value, InvalidTag)


def test_batches_round_trip_with_per_item_contexts(kms, key_name):
    shares = [os.urandom(1024) for _ in range(300)]
    contexts = [{**CTX, "wallet": f"w{i}"} for i in range(300)]
    sealed = kms.seal_many(key_name, shares, context=contexts)
    assert [kms.inspect(s).context["wallet"] for s in sealed[:3]] == ["w0", "w1", "w2"]
    assert kms.open_many(sealed, context=contexts) == shares
    assert kms.open(sealed[7], context=contexts[7]) == shares[7]
    assert kms.seal_many(key_name, [], context=CTX) == []
    with pytest.raises(ValueError, match="contexts"):
        kms.seal_many(key_name, shares, context=contexts[:-1])


def test_numpy_rows_seal_like_a_list(kms, key_name):
    np = pytest.importorskip("numpy")
    rows = np.frombuffer(os.urandom(64 * 32), dtype=np.uint8).reshape(64, 32)
    sealed = kms.seal_many(key_name, rows, context=CTX)
    assert kms.open_many(sealed, context=CTX) == [bytes(r) for r in rows]


def test_open_many_is_all_or_nothing_and_names_the_item(kms, key_name):
    sealed = kms.seal_many(key_name, [os.urandom(32) for _ in range(200)], context=CTX)
    broken = list(sealed)
    tampered = bytearray(broken[123])
    tampered[-1] ^= 1
    broken[123] = bytes(tampered)
    with pytest.raises(InvalidTag, match="item 123"):
        kms.open_many(broken, context=CTX)
    with pytest.raises(InvalidTag, match="item 5"):
        kms.open_many(sealed, context=[CTX] * 5 + [{}] + [CTX] * 194)
    broken[50] = b"PK"
    with pytest.raises(MalformedBlob) as err:
        kms.open_many(broken, context=CTX)
    assert "batch item 50" in "".join(err.value.__notes__)


def test_rotation_rewrap_and_retirement(kms, key_name):
    shares = [os.urandom(64) for _ in range(50)]
    v1 = kms.seal_many(key_name, shares, context=CTX)
    assert kms.rotate(key_name) == 2
    assert kms.versions(key_name) == [1, 2]
    assert kms.open_many(v1, context=CTX) == shares  # old versions still decrypt
    assert kms.inspect(kms.seal(key_name, b"new", context=CTX)).key_version == 2
    moved = kms.rewrap_many(v1)
    assert {kms.inspect(b).key_version for b in moved} == {2}
    assert [kms.inspect(b).context for b in moved] == [CTX] * 50
    assert kms.open_many(moved, context=CTX) == shares
    assert kms.inspect(kms.rewrap(v1[0])).key_version == 2
    # Once retired, a v1 blob is refused, for opening and for rewrapping alike.
    kms.set_min_decryption_version(key_name, 2)
    with pytest.raises(KeyVersionRetired) as retired:
        kms.open(v1[0], context=CTX)
    assert (retired.value.version, retired.value.min_decryption_version) == (1, 2)
    with pytest.raises(KeyVersionRetired):
        kms.rewrap(v1[0])
    with pytest.raises(KeyVersionRetired):
        kms.open_many([moved[0], v1[1]], context=CTX)
    assert kms.open_many(moved, context=CTX) == shares
    # Lowering it again is allowed while v1 exists.
    kms.set_min_decryption_version(key_name, 1)
    assert kms.open(v1[0], context=CTX) == shares[0]
    info = kms.describe(key_name)
    assert (info.versions, info.newest, info.min_decryption_version) == ((1, 2), 2, 1)


def test_destroying_a_version_requires_retiring_it_first(kms, key_name):
    old = kms.seal(key_name, b"share", context=CTX)
    kms.rotate(key_name)
    with pytest.raises(ValueError, match="retire it first"):
        kms.destroy_version(key_name, 1)
    with pytest.raises(ValueError, match="between 1 and 2"):
        kms.set_min_decryption_version(key_name, 3)
    kms.set_min_decryption_version(key_name, 2)
    kms.destroy_version(key_name, 1)
    assert kms.versions(key_name) == [2]
    with pytest.raises(KeyNotFound):
        kms.destroy_version(key_name, 1)
    with pytest.raises(ValueError, match="between 2 and 2"):
        kms.set_min_decryption_version(key_name, 1)
    with pytest.raises(KeyVersionRetired):
        kms.open(old, context=CTX)
    assert kms.open(kms.seal(key_name, b"x", context=CTX), context=CTX) == b"x"


def test_key_names_and_missing_keys(kms, key_name):
    with pytest.raises(KeyAlreadyExists):
        kms.create_key(key_name)
    missing = f"{key_name}-missing"
    calls: list[Callable[[], object]] = [
        lambda: kms.seal(missing, b"x", context=CTX),
        lambda: kms.rotate(missing),
        lambda: kms.versions(missing),
        lambda: kms.set_min_decryption_version(missing, 1),
    ]
    for call in calls:
        with pytest.raises(KeyNotFound):
            call()
    for bad in ("", "has space", "a:b", "x" * 65, "-lead", "é"):
        with pytest.raises(ValueError, match="invalid key name"):
            kms.create_key(bad)
    with pytest.raises(TypeError):
        kms.create_key(7)
    assert key_name in {k.name for k in kms.list_keys()}
    assert issubclass(KeyNotFound, KmsError) and issubclass(KmsError, PortalError)


def test_data_keys_are_bound_to_their_context(kms, key_name):
    data_key = kms.generate_data_key(key_name, CTX)
    assert len(data_key.plaintext) == 32
    assert (data_key.key_name, data_key.key_version) == (key_name, 1)
    assert data_key.plaintext.hex() not in repr(data_key) and "redacted" in repr(data_key)
    assert kms.decrypt_data_key(data_key.wrapped, CTX) == data_key.plaintext
    with pytest.raises(InvalidTag):
        kms.decrypt_data_key(data_key.wrapped, {**CTX, "party": "client"})
    assert kms.generate_data_key(key_name, CTX).plaintext != data_key.plaintext


def _kek(session, name: str, version: int = 1):
    return session.get_key(
        object_class=ObjectClass.SECRET_KEY,
        key_type=KeyType.AES,
        label=f"portal-kek:{name}:v{version}",
    )


def test_keks_are_really_non_extractable(kms, key_name):
    with kms.session() as session:
        kek = _kek(session, key_name)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            kek[Attribute.VALUE]
        wrapper = session.generate_key(
            KeyType.AES, 256, store=False, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
        )
        try:
            with pytest.raises(pkcs11.exceptions.KeyUnextractable):
                wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)
            with pytest.raises(pkcs11.exceptions.KeyUnextractable):
                wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP)
        finally:
            wrapper.destroy()
        assert kek[Attribute.SENSITIVE] and kek[Attribute.ALWAYS_SENSITIVE]
        assert not kek[Attribute.EXTRACTABLE] and kek[Attribute.NEVER_EXTRACTABLE]
        assert kek[Attribute.PRIVATE] and kek[Attribute.TOKEN]
        assert kek[Attribute.LOCAL]  # generated inside the token, never imported
        assert kek[Attribute.VALUE_LEN] == 32 and kek[Attribute.KEY_TYPE] == KeyType.AES
        assert not kek[Attribute.MODIFIABLE]
        assert not kek[Attribute.SIGN] and not kek[Attribute.DERIVE]


def test_one_hsm_unwrap_serves_a_whole_batch(hsm_env, kms, key_name):
    sealed = kms.seal_many(key_name, [os.urandom(1024) for _ in range(2000)], context=CTX)
    assert len({kms.inspect(s).key_id for s in sealed}) == 1
    with Pkcs11Kms.from_env(hsm_env) as cold:
        assert len(cold.open_many(sealed, context=CTX)) == 2000
        assert cold.stats()["intermediate_keys_unwrapped"] == 1
        for s in sealed[:100]:
            cold.open(s, context=CTX)
        assert cold.stats()["intermediate_keys_unwrapped"] == 1
        assert cold.stats()["cache_hits"] >= 100


def test_intermediate_keys_are_replaced_after_max_uses_and_age(hsm_env, key_name):
    with Pkcs11Kms.from_env(hsm_env, key_max_uses=10) as kms:
        sealed = kms.seal_many(key_name, [b"s"] * 95, context=CTX)
        assert kms.stats()["intermediate_keys_wrapped"] == 10
        assert len({s[: header_len(s)] for s in sealed}) == 10
        assert kms.open_many(sealed, context=CTX) == [b"s"] * 95
    with Pkcs11Kms.from_env(hsm_env, key_max_age=0) as kms:
        for _ in range(3):
            kms.seal(key_name, b"s", context=CTX)
        assert kms.stats()["intermediate_keys_wrapped"] == 3


def test_cache_bounds_are_honoured(hsm_env, kms, key_name):
    with Pkcs11Kms.from_env(hsm_env, key_max_uses=1) as sealer:
        sealed = sealer.seal_many(key_name, [b"a", b"b", b"c"], context=CTX)
    with Pkcs11Kms.from_env(hsm_env, cache_size=2) as small:
        small.open_many(sealed, context=CTX)
        assert small.stats()["cached_keys"] == 2
        small.open(sealed[0], context=CTX)  # evicted by the third key: unwrapped again
        assert small.stats()["intermediate_keys_unwrapped"] == 4
    with Pkcs11Kms.from_env(hsm_env, cache_ttl=0) as expiring:
        for _ in range(3):
            expiring.open(sealed[0], context=CTX)
        assert expiring.stats()["intermediate_keys_unwrapped"] == 3


def test_rewrap_keeps_plaintext_out_of_python(kms, key_name, monkeypatch):
    sealed = kms.seal_many(key_name, [os.urandom(32) for _ in range(10)], context=CTX)
    kms.rotate(key_name)

    def forbidden(*args, **kwargs):
        raise AssertionError("rewrap must not open envelopes in Python")

    monkeypatch.setattr(envelope, "open", forbidden)
    monkeypatch.setattr(envelope, "open_many", forbidden)
    moved = kms.rewrap_many(sealed)
    monkeypatch.undo()
    assert all(kms.inspect(m).key_version == 2 for m in moved)
    assert len(kms.open_many(moved, context=CTX)) == 10


def test_made_up_versions_do_not_turn_into_a_stream_of_hsm_calls(kms, key_name):
    sealed = bytearray(kms.seal(key_name, b"share", context=CTX))
    at = 5 + len(key_name)
    sealed[at : at + 4] = (9).to_bytes(4, "big")
    calls = kms.stats()["hsm_calls"]
    for _ in range(50):
        with pytest.raises(BlobKeyNotFound):
            kms.open(bytes(sealed), context=CTX)
    assert kms.stats()["hsm_calls"] - calls <= 1


def test_wrong_types_raise_type_error(kms, key_name):
    with pytest.raises(TypeError):
        kms.seal(key_name, "a str is not bytes", context=CTX)
    with pytest.raises(TypeError):
        kms.open("not a blob", context=CTX)
    with pytest.raises(TypeError):
        kms.seal(key_name, b"x", context={"wallet": 7})
    with pytest.raises(TypeError):
        kms.set_min_decryption_version(key_name, "2")


# -- the contract: kms/contract.py's Protocols ----------------------------------------------


def test_pkcs11_kms_provides_the_contract_and_callers_share_it(kms):
    from portal_core.backup import SealingKms as BackupSealingKms
    from portal_core.enclave import SealingKms as EnclaveSealingKms
    from portal_core.kms import KeyAdmin, KeyedSealingKms, SealingKms

    # One Protocol, re-exported under the names the backup and enclave packages always had.
    assert BackupSealingKms is SealingKms and EnclaveSealingKms is SealingKms
    assert isinstance(kms, SealingKms)
    assert isinstance(kms, KeyAdmin)
    assert isinstance(kms, KeyedSealingKms)
    assert not isinstance(object(), SealingKms)


def test_ensure_key_creates_once_and_then_returns_the_key(kms):
    name = f"ensure-{os.urandom(6).hex()}"
    with pytest.raises(KeyNotFound):
        kms.describe(name)
    first = kms.ensure_key(name)
    assert (first.name, first.versions, first.newest, first.min_decryption_version) == (
        name,
        (1,),
        1,
        1,
    )
    kms.rotate(name)
    again = kms.ensure_key(name)  # an existing key is left alone
    assert again.versions == (1, 2) and kms.versions(name) == [1, 2]


def test_ensure_key_absorbs_another_process_creating_the_key_first(kms, monkeypatch):
    name = f"ensure-race-{os.urandom(6).hex()}"
    real_describe = kms.describe
    looks = []

    def describe_before_the_other_process(asked: str):
        looks.append(asked)
        if len(looks) == 1:
            # The key is missing when ensure_key looks; "another process" creates it before
            # ensure_key's own create_key runs, which therefore finds it there.
            kms.create_key(asked)
            raise KeyNotFound(f"no key named {asked!r}")
        return real_describe(asked)

    monkeypatch.setattr(kms, "describe", describe_before_the_other_process)
    info = kms.ensure_key(name)
    monkeypatch.undo()
    assert info.versions == (1,) and len(looks) == 2
    assert kms.versions(name) == [1]  # created once, not twice


_ENSURE_IN_A_PROCESS = """
import fcntl, sys
from portal_core.kms import Pkcs11Kms
# Opening: one process at a time, as a service's workers do (SoftHSM2 can fail to find a
# token another process is writing at that moment); then all at once.
with open(sys.argv[2], "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    kms = Pkcs11Kms.from_env()
with kms:
    sys.stdin.readline()  # every process is up: start at once
    kms.ensure_key(sys.argv[1])
    kms.seal(sys.argv[1], b"x", context={})
"""


def test_ensure_key_in_several_processes_at_once_makes_one_key(kms, hsm_env, tmp_path):
    """Workers of a service starting together each ensure the same key: one key results
    (two would make every later seal fail on a duplicate label)."""
    import subprocess
    import sys

    name = f"ensure-procs-{os.urandom(6).hex()}"
    env = {**os.environ, **hsm_env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENSURE_IN_A_PROCESS, name, str(tmp_path / "open.lock")],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()[-2000:]
    finally:
        for p in procs:
            p.kill()
    assert kms.versions(name) == [1]
    kms.seal(name, b"y", context={})  # one object per label: sealing finds it


def test_local_custodian_ensures_its_key_through_the_protocol(tmp_path):
    from portal_core.backup import LocalCustodian
    from portal_core.store import SqliteStore

    class SealOnlyKms:
        """A KMS with the custodian's Protocol and nothing more: no describe, no create_key."""

        def __init__(self) -> None:
            self.ensured: list[str] = []

        def seal(self, name, plaintext, *, context):
            raise AssertionError("not called while starting")

        def open(self, sealed, *, context):
            raise AssertionError("not called while starting")

        def ensure_key(self, name):
            self.ensured.append(name)

    stub = SealOnlyKms()
    store = SqliteStore(tmp_path / "custodian.db")
    try:
        LocalCustodian(stub, store, key_name="custodian-key")
    finally:
        store.close()
    assert stub.ensured == ["custodian-key"]


def test_the_protocols_import_without_python_pkcs11():
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        sys.modules["pkcs11"] = None  # as if python-pkcs11 were not installed
        import portal_core.backup, portal_core.enclave
        from portal_core.kms import KeyAdmin, KeyedSealingKms, KeyInfo, SealingKms
        from portal_core.kms.commands import add_commands
        try:
            from portal_core.kms import Pkcs11Kms
        except ImportError as e:
            print("refused:", e)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "portal-core-mpc[hsm]" in proc.stdout

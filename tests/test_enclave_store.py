"""SqliteEnclaveStore: its own versioned schema beside the custodian store's, atomic
challenge taking, compare-and-set counters, vault records and their constraints."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portal_core.enclave import (
    Ceremony,
    ChallengeRecord,
    CredentialAlreadyRegistered,
    CredentialRecord,
    EnclaveStore,
    EnclaveStoreError,
    KeyMode,
    KeyRecord,
    LoginOperation,
    SqliteEnclaveStore,
    VaultRecord,
)
from portal_core.store import Migration, SqliteStore
from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS
from present import present

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path):
    with SqliteEnclaveStore(tmp_path / "enclave.db") as s:
        yield s


def credential(user: str = "alice", cid: bytes = b"cred-1", count: int = 0) -> CredentialRecord:
    return CredentialRecord(
        credential_id=cid,
        user_id=user,
        public_key=b"cose",
        alg=-7,
        sign_count=count,
        aaguid="00000000-0000-0000-0000-000000000000",
        fmt="none",
        transports=("internal", "hybrid"),
        backup_eligible=True,
        backed_up=False,
        prf_salt=b"s" * 32,
        prf_enabled=True,
        created_at=NOW,
    )


def vault_record(
    slot: str = "s", tries: int = 3, sealed: bytes = b"sealed", owner: str = "alice"
) -> VaultRecord:
    return VaultRecord(
        slot=slot,
        owner=owner,
        sealed=sealed,
        tries_left=tries,
        max_tries=tries,
        generation=1,
        created_at=NOW,
        updated_at=NOW,
    )


# -- schema -----------------------------------------------------------------------------------


def test_schema(store: SqliteEnclaveStore) -> None:
    assert isinstance(store, EnclaveStore)
    assert store.schema_version == len(ENCLAVE_MIGRATIONS) == 2
    with sqlite3.connect(store.path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == {
        "enclave_schema_version",
        "enclave_users",
        "enclave_credentials",
        "enclave_challenges",
        "enclave_keys",
        "enclave_vault",
    }
    assert mode == "wal"


@pytest.mark.parametrize("enclave_first", [True, False])
def test_shares_a_file_with_the_custodian_store(tmp_path: Path, enclave_first: bool) -> None:
    path = tmp_path / "custodian.db"
    opened = []
    for make in (SqliteEnclaveStore, SqliteStore)[:: 1 if enclave_first else -1]:
        opened.append(make(path))
    for s in opened:
        s.close()
    # Both open again over the same file, each at its own version, neither disturbed.
    with SqliteStore(path) as custodian, SqliteEnclaveStore(path) as enclave:
        assert enclave.schema_version == len(ENCLAVE_MIGRATIONS)
        assert custodian.schema_version >= 1
        custodian.add_client("c-1", NOW)
        enclave.ensure_user("c-1", b"h" * 32, NOW)
        assert custodian.get_client("c-1") is not None
        assert present(enclave.get_user("c-1")).user_handle == b"h" * 32


@pytest.mark.parametrize(
    "first", ["portal_core.store.enclave_sqlite", "portal_core.enclave", "portal_core.store"]
)
def test_the_store_imports_whichever_module_comes_first(first: str) -> None:
    # The SQLite store lives in portal_core.store and uses the enclave's records and
    # errors, while portal_core.enclave exports it: neither order may hit a half-built
    # module.
    code = (
        f"import {first}\n"
        "from portal_core.store.enclave_sqlite import SqliteEnclaveStore as a\n"
        "from portal_core.enclave import SqliteEnclaveStore as b\n"
        "assert a is b"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_newer_schema_is_refused(store: SqliteEnclaveStore) -> None:
    with sqlite3.connect(store.path) as conn:
        conn.execute("INSERT INTO enclave_schema_version (version, description) VALUES (9, 'x')")
    with pytest.raises(EnclaveStoreError, match="newer than this build"):
        SqliteEnclaveStore(store.path)


def test_upgrade_applies_new_migrations(store: SqliteEnclaveStore) -> None:
    store.vault_create(vault_record())
    following = len(ENCLAVE_MIGRATIONS) + 1
    longer = (
        *ENCLAVE_MIGRATIONS,
        Migration(following, "an extra table", ("CREATE TABLE enclave_extra (x INTEGER) STRICT",)),
    )
    with SqliteEnclaveStore(store.path, migrations=longer) as upgraded:
        assert upgraded.schema_version == following
        assert upgraded.vault_get("s") is not None  # records survive the upgrade


def test_upgrade_from_version_1_keeps_the_rows(tmp_path: Path) -> None:
    # A file written by the build before version 2: a user, a credential, a key, a vault
    # record and an outstanding login challenge, in version 1's columns.
    path = tmp_path / "enclave.db"
    with SqliteEnclaveStore(path, migrations=ENCLAVE_MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
        old.ensure_user("alice", b"a" * 32, NOW)
        old.add_credential(credential())
        old.put_key(KeyRecord("alice", b"cred-1", "w.b", KeyMode.SERVER, b"k", NOW, NOW))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO enclave_vault (slot, sealed, tries_left, max_tries, generation, "
            "created_at, updated_at) VALUES ('w.b', x'01', 7, 10, 3, ?, ?)",
            (NOW, NOW + 1),
        )
        conn.execute(
            "INSERT INTO enclave_challenges (challenge_hash, user_id, ceremony, created_at, "
            "expires_at) VALUES (?, 'alice', 'authentication', ?, ?)",
            (b"c" * 32, NOW, NOW + 300),
        )
    with SqliteEnclaveStore(path) as store:
        assert store.schema_version == 2
        assert present(store.get_user("alice")).user_handle == b"a" * 32
        assert store.get_credential(b"cred-1") == credential()
        assert present(store.get_key("alice", b"cred-1", "w.b")).sealed == b"k"
        # The vault row is kept as it was, unclaimed (owner ''), with empty params...
        assert store.vault_get("w.b") == VaultRecord(
            "w.b", "", b"\x01", 7, 10, 3, NOW, NOW + 1, None, b""
        )
        # ...and open to every caller until it is claimed.
        assert present(store.vault_take_try("w.b", "bob", NOW)).tries_left == 6
        assert store.vault_claim("w.b", "alice", 3, b"resealed", NOW + 2)
        claimed = present(store.vault_get("w.b"))
        assert (claimed.owner, claimed.generation, claimed.tries_left) == ("alice", 4, 10)
        assert store.vault_take_try("w.b", "bob", NOW) is None
        # The old challenge has no operation or slot (the enclave refuses it at finish).
        old_challenge = present(store.take_challenge(b"c" * 32))
        assert (old_challenge.operation, old_challenge.slot) == (None, None)
        assert old_challenge.ceremony is Ceremony.AUTHENTICATION
    with sqlite3.connect(path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(enclave_vault)")}
        assert {"owner", "params"} <= columns
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO enclave_challenges (challenge_hash, user_id, ceremony, created_at, "
                "expires_at, operation, slot) VALUES (x'00', 'a', 'authentication', 0, 1, "
                "'delete', 's')"
            )


def test_bad_paths_and_closed_store(store: SqliteEnclaveStore) -> None:
    with pytest.raises(ValueError):
        SqliteEnclaveStore(":memory:")
    store.close()
    with pytest.raises(EnclaveStoreError, match="closed"):
        store.vault_get("s")


# -- files ------------------------------------------------------------------------------------


def modes(path: Path) -> dict[str, int]:
    return {
        suffix: stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) for suffix in ("", "-wal", "-shm")
    }


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_a_new_database_and_its_wal_and_shm_are_0600_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "enclave.db"
    old = os.umask(umask)
    try:
        with SqliteEnclaveStore(path) as s:
            s.vault_create(vault_record())
            assert os.path.getsize(f"{path}-wal") > 0  # the WAL holds the sealed record
            found = modes(path)
    finally:
        os.umask(old)
    assert found == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


@pytest.mark.parametrize("enclave_first", [True, False])
def test_a_shared_file_is_0600_whichever_store_creates_it(
    tmp_path: Path, enclave_first: bool
) -> None:
    path = tmp_path / "custodian.db"
    old = os.umask(0o000)
    try:
        makers = (SqliteEnclaveStore, SqliteStore)[:: 1 if enclave_first else -1]
        with makers[0](path), makers[1](path):
            found = modes(path)
    finally:
        os.umask(old)
    assert found == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_companions_more_open_than_the_database_are_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "enclave.db"
    with SqliteEnclaveStore(path) as first:
        first.vault_create(vault_record())
        os.chmod(f"{path}-wal", 0o644)
        os.chmod(f"{path}-shm", 0o666)
        with SqliteEnclaveStore(path) as second:
            assert second.vault_get("s") is not None
            assert modes(path) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_a_database_in_a_missing_directory_is_an_enclave_store_error(tmp_path: Path) -> None:
    with pytest.raises(EnclaveStoreError, match="cannot create the enclave store"):
        SqliteEnclaveStore(tmp_path / "nowhere" / "enclave.db")


# -- users, challenges, credentials, keys -----------------------------------------------------


def test_users_keep_their_handle(store: SqliteEnclaveStore) -> None:
    first = store.ensure_user("alice", b"a" * 32, NOW)
    again = store.ensure_user("alice", b"b" * 32, NOW + 1)
    assert first == again
    assert store.get_user("bob") is None


def test_challenges_are_taken_once(store: SqliteEnclaveStore) -> None:
    record = ChallengeRecord(b"h" * 32, "alice", Ceremony.AUTHENTICATION, NOW, NOW + 300)
    store.add_challenge(record, purge_before=NOW)
    taken: list[object] = []
    barrier = threading.Barrier(12, timeout=30)

    def take() -> None:
        barrier.wait()
        taken.append(store.take_challenge(b"h" * 32))

    threads = [threading.Thread(target=take) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert [t for t in taken if t is not None] == [record]
    assert taken.count(None) == 11


def test_login_challenges_keep_their_operation_and_slot(store: SqliteEnclaveStore) -> None:
    login = ChallengeRecord(
        b"l" * 32, "alice", Ceremony.AUTHENTICATION, NOW, NOW + 300, LoginOperation.WRITE, "w.b"
    )
    registration = ChallengeRecord(b"r" * 32, "alice", Ceremony.REGISTRATION, NOW, NOW + 300)
    store.add_challenge(login, purge_before=NOW)
    store.add_challenge(registration, purge_before=NOW)
    taken = store.take_challenge(b"l" * 32)
    assert taken == login and taken.operation is LoginOperation.WRITE
    assert store.take_challenge(b"r" * 32) == registration
    assert registration.operation is None and registration.slot is None


def test_expired_challenges_are_purged(store: SqliteEnclaveStore) -> None:
    old = ChallengeRecord(b"o" * 32, "alice", Ceremony.REGISTRATION, NOW, NOW + 300)
    store.add_challenge(old, purge_before=NOW)
    new = ChallengeRecord(b"n" * 32, "alice", Ceremony.REGISTRATION, NOW + 400, NOW + 700)
    store.add_challenge(new, purge_before=NOW + 400)
    assert store.take_challenge(b"o" * 32) is None
    assert store.take_challenge(b"n" * 32) == new


def test_credentials(store: SqliteEnclaveStore) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.ensure_user("bob", b"b" * 32, NOW)
    store.add_credential(credential())
    with pytest.raises(CredentialAlreadyRegistered):
        store.add_credential(credential(user="bob"))
    assert store.get_credential(b"cred-1") == credential()
    assert store.list_credentials("alice") == [credential()]
    assert store.list_credentials("bob") == []


def test_sign_count_compare_and_set(store: SqliteEnclaveStore) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.add_credential(credential(count=4))
    assert store.update_sign_count(b"cred-1", expected=4, new=5, backed_up=True, now=NOW)
    assert not store.update_sign_count(b"cred-1", expected=4, new=6, backed_up=True, now=NOW)
    updated = present(store.get_credential(b"cred-1"))
    assert (updated.sign_count, updated.backed_up, updated.last_used_at) == (5, True, NOW)


def test_keys_belong_to_the_credentials_user(store: SqliteEnclaveStore) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.ensure_user("bob", b"b" * 32, NOW)
    store.add_credential(credential())
    key = KeyRecord("alice", b"cred-1", "slot", KeyMode.SERVER, b"sealed", NOW, NOW)
    store.put_key(key)
    assert store.get_key("alice", b"cred-1", "slot") == key
    # A key of Bob's under Alice's credential cannot even be stored.
    with pytest.raises(EnclaveStoreError, match="FOREIGN KEY"):
        store.put_key(KeyRecord("bob", b"cred-1", "slot", KeyMode.SERVER, b"x", NOW, NOW))
    # Replacing keeps the creation time.
    store.put_key(KeyRecord("alice", b"cred-1", "slot", KeyMode.PRF, b"new", NOW + 5, NOW + 5))
    replaced = present(store.get_key("alice", b"cred-1", "slot"))
    assert (replaced.sealed, replaced.mode, replaced.created_at) == (b"new", KeyMode.PRF, NOW)
    # Deleting the credential deletes its keys.
    assert store.delete_credential("alice", b"cred-1")
    assert store.get_key("alice", b"cred-1", "slot") is None
    assert "sealed=" not in repr(key)


# -- vault records ------------------------------------------------------------------------------


def test_vault_take_try(store: SqliteEnclaveStore) -> None:
    assert store.vault_take_try("missing", "alice", NOW) is None
    assert store.vault_create(vault_record(tries=2))
    assert not store.vault_create(vault_record(tries=9))  # never overwritten
    assert not store.vault_create(vault_record(tries=9, owner="bob"))  # by anyone
    assert present(store.vault_take_try("s", "alice", NOW)).tries_left == 1
    assert present(store.vault_take_try("s", "alice", NOW)).tries_left == 0
    # No tries left (the last one was never evaluated): the secret goes on the next touch
    # of its owner...
    assert store.vault_take_try("s", "bob", NOW + 1) is None
    assert not present(store.vault_get("s")).destroyed
    destroyed = present(store.vault_take_try("s", "alice", NOW + 1))
    assert destroyed.destroyed and destroyed.destroyed_at == NOW + 1
    assert store.vault_take_try("s", "alice", NOW + 2) == destroyed
    assert store.vault_take_try("s", "bob", NOW + 2) is None  # a tombstone is the owner's too


def test_vault_tries_of_another_owner_change_nothing(store: SqliteEnclaveStore) -> None:
    # Alice and Mallory take tries of Alice's record at once: only Alice's count, and
    # Mallory's find nothing, in the same transaction that would have spent them.
    store.vault_create(vault_record(tries=10))
    results: dict[str, list[VaultRecord | None]] = {"alice": [], "mallory": []}
    lock = threading.Lock()
    barrier = threading.Barrier(12, timeout=30)

    def take(owner: str) -> None:
        barrier.wait()
        record = store.vault_take_try("s", owner, NOW)
        with lock:
            results[owner].append(record)

    threads = [threading.Thread(target=take, args=(o,)) for o in ["alice", "mallory"] * 6]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert results["mallory"] == [None] * 6
    assert sorted(present(r).tries_left for r in results["alice"]) == [4, 5, 6, 7, 8, 9]
    assert present(store.vault_get("s")).tries_left == 4


def test_vault_claim(store: SqliteEnclaveStore) -> None:
    store.vault_create(vault_record(slot="owned"))
    store.vault_create(vault_record(slot="old", owner=""))
    assert not store.vault_claim("owned", "bob", 1, b"x", NOW)  # already Alice's
    assert not store.vault_claim("old", "bob", 2, b"x", NOW)  # not at that generation
    assert not store.vault_claim("missing", "bob", 1, b"x", NOW)
    store.vault_take_try("old", "bob", NOW)
    assert store.vault_claim("old", "bob", 1, b"x", NOW + 1)
    claimed = present(store.vault_get("old"))
    assert (claimed.owner, claimed.sealed, claimed.generation, claimed.tries_left) == (
        "bob",
        b"x",
        2,
        3,
    )
    assert not store.vault_claim("old", "carol", 1, b"y", NOW)  # claimed once
    assert present(store.vault_get("owned")).owner == "alice"


def test_vault_params_are_stored(store: SqliteEnclaveStore) -> None:
    record = dataclasses.replace(vault_record(), params=bytes(range(256)))
    store.vault_create(record)
    assert store.vault_get("s") == record
    assert store.vault_replace("s", "alice", 1, b"new", 5, NOW)
    assert present(store.vault_get("s")).params == bytes(range(256))  # kept by a replacement


def test_vault_updates_compare_the_generation(store: SqliteEnclaveStore) -> None:
    store.vault_create(vault_record(tries=3))
    store.vault_take_try("s", "alice", NOW)
    assert not store.vault_reset_tries("s", 2, NOW)
    assert store.vault_reset_tries("s", 1, NOW)
    assert present(store.vault_get("s")).tries_left == 3
    assert not store.vault_replace("s", "alice", 2, b"new", 5, NOW)
    assert not store.vault_replace("s", "bob", 1, b"new", 5, NOW)  # not Bob's
    assert store.vault_replace("s", "alice", 1, b"new", 5, NOW)
    record = present(store.vault_get("s"))
    assert (record.generation, record.sealed, record.tries_left, record.max_tries) == (
        2,
        b"new",
        5,
        5,
    )
    assert not store.vault_destroy("s", 1, NOW)
    assert store.vault_destroy("s", 2, NOW)
    assert not store.vault_reset_tries("s", 2, NOW)  # a destroyed record stays destroyed
    assert not store.vault_replace("s", "alice", 2, b"again", 5, NOW)
    assert not store.vault_delete("s", "bob")  # not Bob's: left as it is
    assert store.vault_get("s") is not None
    assert store.vault_delete("s", "alice")
    assert not store.vault_delete("s", "alice")


def test_vault_constraints(store: SqliteEnclaveStore) -> None:
    bad = [
        VaultRecord("a", "alice", b"x", 5, 3, 1, NOW, NOW),  # more tries left than allowed
        VaultRecord("b", "alice", b"x", 3, 256, 1, NOW, NOW),  # limit above 255
        VaultRecord("c", "alice", None, 3, 3, 1, NOW, NOW),  # no secret, not marked destroyed
        VaultRecord("d", "alice", b"x", 3, 3, 0, NOW, NOW),  # generation 0
    ]
    for record in bad:
        with pytest.raises(EnclaveStoreError, match="CHECK"):
            store.vault_create(record)


@pytest.mark.parametrize("how", ["destroy", "delete"])
def test_deleted_secrets_leave_the_files(store: SqliteEnclaveStore, how: str) -> None:
    # secure_delete zeroes the freed space in the new page images, and the checkpoint
    # that follows truncates the journal holding the old ones.
    marker = os.urandom(48)
    store.vault_create(vault_record(sealed=marker))
    store.vault_create(vault_record(slot="other", sealed=os.urandom(48)))
    if how == "destroy":
        assert store.vault_destroy("s", 1, NOW)
    else:
        assert store.vault_delete("s", "alice")
    data = Path(store.path).read_bytes()
    wal = Path(f"{store.path}-wal")
    if wal.exists():
        data += wal.read_bytes()
    assert marker not in data
    assert store.vault_get("other") is not None

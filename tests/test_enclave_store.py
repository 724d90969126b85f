"""The enclave stores: their own versioned schema beside the custodian store's, atomic
challenge taking, compare-and-set counters, vault records and their constraints, and vault
tries that never exceed the limit however many threads and processes guess at once: on
SQLite and on PostgreSQL (the ``backend`` fixture of tests/pg_cluster.py). SQLite's own
behaviour (WAL, file modes, deleted secrets leaving the files, import order) at the end."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pg_cluster import Backend
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
from present import present

NOW = 1_800_000_000.0


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    with backend.enclave() as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteEnclaveStore]:
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

ENCLAVE_TABLES = {
    "enclave_schema_version",
    "enclave_users",
    "enclave_credentials",
    "enclave_challenges",
    "enclave_keys",
    "enclave_vault",
}


def test_schema(new_backend: Backend) -> None:
    with new_backend.enclave() as store:
        assert isinstance(store, EnclaveStore)
        assert store.schema_version == len(new_backend.enclave_migrations) == 2
    assert new_backend.tables() == ENCLAVE_TABLES  # nothing of the custodian's


@pytest.mark.parametrize("enclave_first", [True, False])
def test_shares_a_database_with_the_custodian_store(
    new_backend: Backend, enclave_first: bool
) -> None:
    opened = []
    for make in (new_backend.enclave, new_backend.custodian)[:: 1 if enclave_first else -1]:
        opened.append(make())
    for s in opened:
        s.close()
    # Both open again over the same database, each at its own version, neither disturbed.
    with new_backend.custodian() as custodian, new_backend.enclave() as enclave:
        assert enclave.schema_version == len(new_backend.enclave_migrations)
        assert custodian.schema_version >= 1
        custodian.add_client("c-1", NOW)
        enclave.ensure_user("c-1", b"h" * 32, NOW)
        assert custodian.get_client("c-1") is not None
        assert present(enclave.get_user("c-1")).user_handle == b"h" * 32
    assert ENCLAVE_TABLES | {"schema_version", "clients"} <= new_backend.tables()


def test_newer_schema_is_refused(backend: Backend) -> None:
    backend.enclave().close()
    backend.execute("INSERT INTO enclave_schema_version (version, description) VALUES (9, 'x')")
    with pytest.raises(EnclaveStoreError, match="newer than this build"):
        backend.enclave()


def test_upgrade_applies_new_migrations(backend: Backend) -> None:
    with backend.enclave() as store:
        store.vault_create(vault_record())
    following = len(backend.enclave_migrations) + 1
    longer = (
        *backend.enclave_migrations,
        Migration(following, "an extra table", ("CREATE TABLE enclave_extra (x INTEGER)",)),
    )
    with backend.enclave(migrations=longer) as upgraded:
        assert upgraded.schema_version == following
        assert upgraded.vault_get("s") is not None  # records survive the upgrade
    assert "enclave_extra" in backend.tables()


def test_upgrade_from_version_1_keeps_the_rows(new_backend: Backend) -> None:
    # A database written by the build before version 2: a user, a credential, a key, a
    # vault record and an outstanding login challenge, in version 1's columns.
    with new_backend.enclave(migrations=new_backend.enclave_migrations[:1]) as old:
        assert old.schema_version == 1
        old.ensure_user("alice", b"a" * 32, NOW)
        old.add_credential(credential())
        old.put_key(KeyRecord("alice", b"cred-1", "w.b", KeyMode.SERVER, b"k", NOW, NOW))
    new_backend.execute(
        "INSERT INTO enclave_vault (slot, sealed, tries_left, max_tries, generation, "
        "created_at, updated_at) VALUES ('w.b', ?, 7, 10, 3, ?, ?)",
        (b"\x01", NOW, NOW + 1),
    )
    new_backend.execute(
        "INSERT INTO enclave_challenges (challenge_hash, user_id, ceremony, created_at, "
        "expires_at) VALUES (?, 'alice', 'authentication', ?, ?)",
        (b"c" * 32, NOW, NOW + 300),
    )
    with new_backend.enclave() as store:
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
    assert {"owner", "params"} <= new_backend.columns("enclave_vault")
    with pytest.raises(Exception, match=new_backend.violation("check")):
        new_backend.execute(
            "INSERT INTO enclave_challenges (challenge_hash, user_id, ceremony, created_at, "
            "expires_at, operation, slot) VALUES (?, 'a', 'authentication', 0, 1, 'delete', 's')",
            (b"\x00",),
        )


def test_a_closed_store_refuses_calls(store: Any) -> None:
    store.close()
    with pytest.raises(EnclaveStoreError, match="closed"):
        store.vault_get("s")


# -- users, challenges, credentials, keys -----------------------------------------------------


def test_users_keep_their_handle(store: Any) -> None:
    first = store.ensure_user("alice", b"a" * 32, NOW)
    again = store.ensure_user("alice", b"b" * 32, NOW + 1)
    assert first == again
    assert store.get_user("bob") is None


def test_challenges_are_taken_once(store: Any) -> None:
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


def test_login_challenges_keep_their_operation_and_slot(store: Any) -> None:
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


def test_expired_challenges_are_purged(store: Any) -> None:
    old = ChallengeRecord(b"o" * 32, "alice", Ceremony.REGISTRATION, NOW, NOW + 300)
    store.add_challenge(old, purge_before=NOW)
    new = ChallengeRecord(b"n" * 32, "alice", Ceremony.REGISTRATION, NOW + 400, NOW + 700)
    store.add_challenge(new, purge_before=NOW + 400)
    assert store.take_challenge(b"o" * 32) is None
    assert store.take_challenge(b"n" * 32) == new


def test_credentials(store: Any) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.ensure_user("bob", b"b" * 32, NOW)
    store.add_credential(credential())
    with pytest.raises(CredentialAlreadyRegistered):
        store.add_credential(credential(user="bob"))
    assert store.get_credential(b"cred-1") == credential()
    assert store.list_credentials("alice") == [credential()]
    assert store.list_credentials("bob") == []


def test_sign_count_compare_and_set(store: Any) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.add_credential(credential(count=4))
    assert store.update_sign_count(b"cred-1", expected=4, new=5, backed_up=True, now=NOW)
    assert not store.update_sign_count(b"cred-1", expected=4, new=6, backed_up=True, now=NOW)
    updated = present(store.get_credential(b"cred-1"))
    assert (updated.sign_count, updated.backed_up, updated.last_used_at) == (5, True, NOW)


def test_keys_belong_to_the_credentials_user(backend: Backend, store: Any) -> None:
    store.ensure_user("alice", b"a" * 32, NOW)
    store.ensure_user("bob", b"b" * 32, NOW)
    store.add_credential(credential())
    key = KeyRecord("alice", b"cred-1", "slot", KeyMode.SERVER, b"sealed", NOW, NOW)
    store.put_key(key)
    assert store.get_key("alice", b"cred-1", "slot") == key
    # A key of Bob's under Alice's credential cannot even be stored.
    with pytest.raises(EnclaveStoreError, match=backend.violation("foreign key")):
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


def test_vault_take_try(store: Any) -> None:
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


def test_vault_tries_of_another_owner_change_nothing(store: Any) -> None:
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


def test_vault_claim(store: Any) -> None:
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


def test_vault_params_are_stored(store: Any) -> None:
    record = dataclasses.replace(vault_record(), params=bytes(range(256)))
    store.vault_create(record)
    assert store.vault_get("s") == record
    assert store.vault_replace("s", "alice", 1, b"new", 5, NOW)
    assert present(store.vault_get("s")).params == bytes(range(256))  # kept by a replacement


def test_vault_updates_compare_the_generation(store: Any) -> None:
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


def test_vault_constraints(backend: Backend, store: Any) -> None:
    bad = [
        VaultRecord("a", "alice", b"x", 5, 3, 1, NOW, NOW),  # more tries left than allowed
        VaultRecord("b", "alice", b"x", 3, 256, 1, NOW, NOW),  # limit above 255
        VaultRecord("c", "alice", None, 3, 3, 1, NOW, NOW),  # no secret, not marked destroyed
        VaultRecord("d", "alice", b"x", 3, 3, 0, NOW, NOW),  # generation 0
    ]
    for record in bad:
        with pytest.raises(EnclaveStoreError, match=backend.violation("check")):
            store.vault_create(record)


def test_vault_guesses_from_many_threads_never_exceed_the_limit(backend: Backend) -> None:
    # Sixteen guessers, each with a store of its own (its own connections), three tries each
    # at a slot allowing five: exactly five tries are handed out for evaluation, the next
    # one destroys the secret, and every later one finds it destroyed.
    with backend.enclave() as setup:
        setup.vault_create(vault_record(tries=5))
    stores = [backend.enclave() for _ in range(16)]
    results: list[VaultRecord] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(stores), timeout=30)

    def guess(s: Any) -> None:
        barrier.wait()
        for _ in range(3):
            record = present(s.vault_take_try("s", "alice", NOW))
            with lock:
                results.append(record)

    threads = [threading.Thread(target=guess, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    for s in stores:
        s.close()
    evaluated = sorted(r.tries_left for r in results if not r.destroyed)
    assert evaluated == [0, 1, 2, 3, 4]
    assert sum(r.destroyed for r in results) == 48 - 5


# Eight processes guess at once, through stores of their own; each prints what it got.
GUESSER = """
import sys
sys.path.insert(0, ".")
from pg_cluster import Backend
store = Backend(sys.argv[1], sys.argv[2]).enclave()
sys.stdin.readline()  # released together
for _ in range(10):
    record = store.vault_take_try("s", "alice", 1.0)
    print("destroyed" if record.destroyed else record.tries_left, flush=True)
"""


def test_vault_guesses_from_many_processes_never_exceed_the_limit(backend: Backend) -> None:
    with backend.enclave() as setup:
        setup.vault_create(vault_record(tries=20))
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GUESSER, backend.name, backend.location],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=here,
        )
        for _ in range(8)
    ]
    outs = []
    for proc in procs:  # all started (and importing) before any is released
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs += out.split()
    assert len(outs) == 80
    assert sorted(int(o) for o in outs if o != "destroyed") == list(range(20))
    with backend.enclave() as s:
        assert present(s.vault_get("s")).destroyed


# -- SQLite only ---------------------------------------------------------------------------------


def test_the_sqlite_file_is_in_wal_mode(sqlite_store: SqliteEnclaveStore) -> None:
    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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


def test_bad_paths_are_refused() -> None:
    with pytest.raises(ValueError):
        SqliteEnclaveStore(":memory:")


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


@pytest.mark.parametrize("how", ["destroy", "delete"])
def test_deleted_secrets_leave_the_files(sqlite_store: SqliteEnclaveStore, how: str) -> None:
    # secure_delete zeroes the freed space in the new page images, and the checkpoint
    # that follows truncates the journal holding the old ones.
    marker = os.urandom(48)
    sqlite_store.vault_create(vault_record(sealed=marker))
    sqlite_store.vault_create(vault_record(slot="other", sealed=os.urandom(48)))
    if how == "destroy":
        assert sqlite_store.vault_destroy("s", 1, NOW)
    else:
        assert sqlite_store.vault_delete("s", "alice")
    data = Path(sqlite_store.path).read_bytes()
    wal = Path(f"{sqlite_store.path}-wal")
    if wal.exists():
        data += wal.read_bytes()
    assert marker not in data
    assert sqlite_store.vault_get("other") is not None

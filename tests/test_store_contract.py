"""What every custodian store promises, run on SQLite and on PostgreSQL (the ``backend``
fixture of tests/pg_cluster.py): schema and migrations, records, backups and their
statuses, locks, eject windows, protocol sessions, tenants and the audit trail; atomicity
shown by crashes inside transactions (a raised crash, and a process killed at the same
point); the serial outcomes shown by threads and processes racing on one database. Last,
what only the PostgreSQL store has: a DSN's password kept out of every message, bounded
waits for connections and row locks, a forked child.

SQLite-only behaviour (WAL, file modes, the rows module) stays in tests/test_store_sqlite.py.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from pg_cluster import Backend, race
from portal_core.exceptions import (
    NoValidBackup,
    WalletAlreadyExists,
    WalletModificationInProgress,
)
from portal_core.store import (
    LATEST_VERSION,
    ApiKeyRecord,
    AuditEntry,
    BackupMode,
    BackupRecord,
    ClientRecord,
    CustodianStore,
    EjectWindow,
    KeyKind,
    Migration,
    PairRecord,
    PairStatus,
    SessionRecord,
    SessionStage,
    SigningShareRecord,
    StoreError,
    TenantRecord,
    TenantStore,
    TenantWebhookRecord,
    WalletRecord,
)
from portal_core.tenants import (
    IssuedKey,
    LastAdminKey,
    TenantExists,
    Tenants,
    UnknownKey,
    UnknownTenant,
)
from present import present

SEALED = b"sealed-blob-" + bytes(range(20))
WAIT_S = 60  # every join and subprocess wait


class Crash(BaseException):
    """Stands for the process dying: a BaseException, so no ``except Exception`` cleans up."""


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    with backend.custodian() as s:
        yield s


def signing(wallet_id: str, curve: str, gen: int = 1) -> SigningShareRecord:
    return SigningShareRecord(
        wallet_id=wallet_id,
        curve=curve,
        share_id=f"{wallet_id}-{curve}-{gen}",
        public_key=b"X" * 33,
        client_public_share=b"C" * 33,
        custodian_public_share=b"S" * 33,
        sealed_share=SEALED,
        generation=gen,
        updated_at=1.0,
    )


def make_wallet(store: Any, client_id: str = "client-1", wallet_id: str = "w-1") -> str:
    store.add_client(client_id, 1.0)
    store.acquire_lock(client_id, "keygen", "key generation", 1.0, 60)
    store.add_wallet(
        WalletRecord(wallet_id, client_id, 1.0),
        [signing(wallet_id, "SECP256K1"), signing(wallet_id, "ED25519")],
        lock=(client_id, "keygen"),
    )
    return wallet_id


def add_backup(
    store: Any,
    backup_id: str,
    method: str = "PASSWORD",
    *,
    wallet_id: str = "w-1",
    client_id: str = "client-1",
    now: float = 2.0,
) -> list[PairRecord]:
    store.acquire_lock(client_id, backup_id, "backup", now, 60)
    pairs = [
        PairRecord(
            pair_id=f"{backup_id}-{curve}",
            backup_id=backup_id,
            wallet_id=wallet_id,
            method=method,
            curve=curve,
            status=PairStatus.INCOMPLETE,
            public_key=b"X" * 33,
            client_public_share=b"C" * 33,
            custodian_public_share=b"S" * 33,
            sealed_custodian_share=SEALED,
            created_at=now,
        )
        for curve in ("ED25519", "SECP256K1")
    ]
    backup = BackupRecord(backup_id, wallet_id, method, BackupMode.CUSTODIAN, now)
    store.add_backup(backup, pairs, lock=(client_id, backup_id))
    return pairs


def complete(store: Any, backup_id: str, client_id: str = "client-1") -> list[PairRecord]:
    store.set_backup_status(
        backup_id,
        PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY,
        expect={PairStatus.INCOMPLETE},
    )
    store.store_cipher_text(backup_id, b"cipher-" + backup_id.encode(), 3.0)
    replaced: list[PairRecord] = store.complete_backup(
        backup_id, 4.0, release=(client_id, backup_id)
    )
    return replaced


def statuses(store: Any, backup_id: str) -> set[str]:
    return {p.status for p in store.backup_pairs(backup_id)}


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """``python -c code args...``, its output captured."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )


# A process that opens a store of the backend named by argv[1] on the database argv[2].
OPEN_STORE = """
import sys
sys.path.insert(0, ".")
from pg_cluster import Backend, race
backend = Backend(sys.argv[1], sys.argv[2])
"""


# -- schema and migrations ---------------------------------------------------------------


def test_a_new_store_is_at_the_latest_schema(new_backend):
    with new_backend.custodian() as store:
        assert isinstance(store, CustodianStore) and isinstance(store, TenantStore)
        assert store.schema_version == LATEST_VERSION == new_backend.migrations[-1].version
    rows = new_backend.execute("SELECT version, description FROM schema_version ORDER BY version")
    assert [tuple(r) for r in rows] == [(m.version, m.description) for m in new_backend.migrations]


def test_reopening_applies_nothing_twice(new_backend):
    new_backend.custodian().close()
    with new_backend.custodian() as again:
        assert again.schema_version == LATEST_VERSION
    assert new_backend.execute("SELECT COUNT(*) FROM schema_version")[0][0] == LATEST_VERSION


def test_processes_opening_a_new_database_at_once_apply_each_migration_once(new_backend):
    code = OPEN_STORE + "backend.custodian().close(); backend.enclave().close()"
    procs = [run_python(code, new_backend.name, new_backend.location) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 0, err
    for table, history in (
        ("schema_version", new_backend.migrations),
        ("enclave_schema_version", new_backend.enclave_migrations),
    ):
        rows = new_backend.execute(f"SELECT version FROM {table} ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in history]


def test_a_later_migration_is_applied_in_order_on_open(backend):
    with backend.custodian() as s:
        make_wallet(s)
    extra = Migration(
        LATEST_VERSION + 1,
        "a test column",
        ("ALTER TABLE wallets ADD COLUMN label TEXT", "UPDATE wallets SET label = 'migrated'"),
    )
    with backend.custodian(migrations=(*backend.migrations, extra)) as s:
        assert s.schema_version == LATEST_VERSION + 1
        assert s.get_wallet("w-1") is not None  # the records survived
    assert backend.execute("SELECT label FROM wallets") == [("migrated",)]


def test_the_tenant_migration_keeps_existing_clients_without_a_tenant(new_backend):
    # A database from before tenants (schema version 1), with a client and its wallet.
    with new_backend.custodian(migrations=new_backend.migrations[:1]) as s:
        assert s.schema_version == 1
        make_wallet(s)
    with new_backend.custodian() as s:
        assert s.schema_version == LATEST_VERSION >= 2
        client = s.get_client("client-1")
        assert client is not None and client.tenant_id is None
        assert s.wallet_for_client("client-1") is not None
        assert {"tenants", "api_keys", "audit_events"} <= new_backend.tables()
        # The old path still records tenantless clients.
        assert s.add_client("client-2", 2.0).tenant_id is None


def test_the_session_migration_upgrades_a_database_in_use(new_backend):
    (sessions,) = [
        m.version for m in new_backend.migrations if "protocol sessions" in m.description
    ]
    with new_backend.custodian(migrations=new_backend.migrations[: sessions - 1]) as s:
        make_wallet(s)
    with new_backend.custodian() as s:
        assert s.schema_version == LATEST_VERSION
        assert s.get_wallet("w-1") is not None
        open_session(s, session())
        assert present(s.get_session("s-1")).sealed_states == session().sealed_states


def test_a_failing_migration_leaves_the_previous_version(backend):
    bad = Migration(
        LATEST_VERSION + 1,
        "half good",
        ("ALTER TABLE wallets ADD COLUMN label TEXT", "THIS IS NOT SQL"),
    )
    with pytest.raises(StoreError, match="syntax error"):
        backend.custodian(migrations=(*backend.migrations, bad))
    with backend.custodian() as s:
        assert s.schema_version == LATEST_VERSION
    assert "label" not in backend.columns("wallets")  # rolled back with the second step


def test_a_schema_newer_than_the_build_is_refused(backend):
    backend.custodian().close()
    backend.execute("INSERT INTO schema_version (version, description) VALUES (99, 'future')")
    with pytest.raises(StoreError, match="schema version 99, newer than this build"):
        backend.custodian()


def test_a_client_cannot_name_a_tenant_that_does_not_exist(backend, store):
    with pytest.raises(StoreError, match=backend.violation("foreign key")):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO clients (client_id, created_at, tenant_id) VALUES ('c', 1.0, 'x')"
            )


def test_a_closed_store_refuses_calls(backend):
    s = backend.custodian()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get_client("x")


# -- records -------------------------------------------------------------------------------


def test_wallet_with_signing_shares_round_trips(store):
    make_wallet(store)
    assert store.wallet_for_client("client-1") == WalletRecord("w-1", "client-1", 1.0)
    shares = store.signing_shares("w-1")
    assert sorted(shares) == ["ED25519", "SECP256K1"]
    assert shares["SECP256K1"] == signing("w-1", "SECP256K1")
    assert store.get_lock("client-1") is None  # add_wallet released the key generation lock


def test_one_wallet_per_client(store):
    make_wallet(store)
    store.acquire_lock("client-1", "again", "key generation", 5.0, 60)
    with pytest.raises(WalletAlreadyExists):
        store.add_wallet(
            WalletRecord("w-2", "client-1", 5.0),
            [signing("w-2", "ED25519")],
            lock=("client-1", "again"),
        )
    assert store.get_wallet("w-2") is None


def test_duplicate_client_is_refused(store):
    store.add_client("c", 1.0)
    with pytest.raises(StoreError, match="already exists"):
        store.add_client("c", 2.0)
    assert present(store.get_client("c")).created_at == 1.0


def test_record_reprs_leave_out_sealed_blobs(store):
    make_wallet(store)
    pairs = add_backup(store, "b1")
    for record in (store.signing_shares("w-1")["ED25519"], pairs[0]):
        assert "sealed-blob" not in repr(record)


def test_replace_signing_shares_is_one_transaction(backend):
    calls = []

    def crash_on_second(name):
        calls.append(name)
        if calls.count("store.replace_signing_shares.share") == 2:
            raise Crash(name)

    with backend.custodian(checkpoint=crash_on_second) as s:
        make_wallet(s)
        s.acquire_lock("client-1", "rec", "recovery", 5.0, 60)
        new = [signing("w-1", "ED25519", 2), signing("w-1", "SECP256K1", 2)]
        with pytest.raises(Crash):
            s.replace_signing_shares("w-1", new, lock=("client-1", "rec"))
        assert {r.generation for r in s.signing_shares("w-1").values()} == {1}
        assert present(s.get_lock("client-1")).owner == "rec"  # nothing of the transaction stayed
        calls.clear()
        s._checkpoint = lambda name: None
        s.replace_signing_shares("w-1", new, lock=("client-1", "rec"))
        assert {r.generation for r in s.signing_shares("w-1").values()} == {2}
        assert s.get_lock("client-1") is None


# -- backups and statuses ------------------------------------------------------------------


def test_statuses_move_forward_only(store):
    make_wallet(store)
    add_backup(store, "b1")
    assert statuses(store, "b1") == {PairStatus.INCOMPLETE}
    with pytest.raises(NoValidBackup, match="status incomplete"):
        store.store_cipher_text("b1", b"ct", 3.0)
    with pytest.raises(NoValidBackup):
        store.complete_backup("b1", 3.0)
    store.set_backup_status(
        "b1", PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY, expect={PairStatus.INCOMPLETE}
    )
    with pytest.raises(NoValidBackup, match="STORED_CLIENT_BACKUP_SHARE_KEY"):
        store.set_backup_status(
            "b1", PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY, expect={PairStatus.INCOMPLETE}
        )
    store.store_cipher_text("b1", b"ct", 3.0)
    assert statuses(store, "b1") == {PairStatus.STORED_CLIENT_BACKUP_SHARE}
    assert store.complete_backup("b1", 4.0, release=("client-1", "b1")) == []
    assert statuses(store, "b1") == {PairStatus.COMPLETED}
    assert store.completed_backup("w-1", "PASSWORD").backup_id == "b1"
    assert store.cipher_text("b1") == b"ct"
    assert store.get_lock("client-1") is None
    with pytest.raises(ValueError, match="complete_backup"):
        store.set_backup_status("b1", PairStatus.COMPLETED, expect={PairStatus.COMPLETED})


def test_unknown_backup_is_no_valid_backup(store):
    make_wallet(store)
    with pytest.raises(NoValidBackup, match="no backup 'nope'"):
        store.set_backup_status("nope", PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY, expect=set())


def test_completing_replaces_the_methods_previous_backup_only(store):
    make_wallet(store)
    add_backup(store, "old")
    complete(store, "old")
    add_backup(store, "custom", "CUSTOM")
    complete(store, "custom")
    add_backup(store, "new")
    # Until the new one completes, the old one is the method's backup.
    assert store.completed_backup("w-1", "PASSWORD").backup_id == "old"
    replaced = complete(store, "new")
    assert {p.pair_id for p in replaced} == {"old-ED25519", "old-SECP256K1"}
    assert store.completed_backup("w-1", "PASSWORD").backup_id == "new"
    assert store.get_backup("old") is None and store.backup_pairs("old") == []
    assert store.cipher_text("old") is None
    assert store.completed_backup("w-1", "CUSTOM").backup_id == "custom"


def prepare_completion(store: Any) -> None:
    """A completed backup ``old`` and its successor ``new``, ready to complete."""
    make_wallet(store)
    add_backup(store, "old")
    complete(store, "old")
    add_backup(store, "new")
    store.set_backup_status(
        "new", PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY, expect={PairStatus.INCOMPLETE}
    )
    store.store_cipher_text("new", b"ct", 3.0)


def assert_old_backup_kept(store: Any) -> None:
    assert present(store.completed_backup("w-1", "PASSWORD")).backup_id == "old"
    assert statuses(store, "old") == {PairStatus.COMPLETED}
    assert statuses(store, "new") == {PairStatus.STORED_CLIENT_BACKUP_SHARE}
    assert store.cipher_text("old") == b"cipher-old"


def test_a_crash_inside_completion_keeps_the_old_backup(backend):
    names = []

    def crash_after_delete(name):
        names.append(name)
        if name == "store.complete_backup.deleted_old":
            raise Crash(name)

    with backend.custodian() as s:
        prepare_completion(s)
    with backend.custodian(checkpoint=crash_after_delete) as s, pytest.raises(Crash):
        s.complete_backup("new", 4.0)
    with backend.custodian() as s:
        assert_old_backup_kept(s)
    assert names == ["store.complete_backup.deleted_old"]


# The process completes the backup and is killed (SIGKILL) once the old one is deleted.
KILLED_INSIDE_COMPLETION = (
    OPEN_STORE
    + """
import os, signal
def die(name):
    if name == "store.complete_backup.deleted_old":
        print("dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
backend.custodian(checkpoint=die).complete_backup("new", 4.0)
"""
)


def test_a_process_killed_inside_completion_leaves_the_old_backup(backend):
    with backend.custodian() as s:
        prepare_completion(s)
    proc = run_python(KILLED_INSIDE_COMPLETION, backend.name, backend.location)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL, err
    assert out == "dying\n"  # it got as far as the deletion
    with backend.custodian() as s:
        assert_old_backup_kept(s)
        assert s.complete_backup("new", 5.0) != []  # and the completion can run again
        assert present(s.completed_backup("w-1", "PASSWORD")).backup_id == "new"


def test_the_database_refuses_two_completed_pairs_per_method_and_curve(backend, store):
    make_wallet(store)
    add_backup(store, "a")
    complete(store, "a")
    add_backup(store, "b")
    with pytest.raises(StoreError, match=backend.violation("unique")):
        with store.transaction() as conn:
            conn.execute(
                "UPDATE backup_pairs SET status = 'completed', completed_at = 1 "
                "WHERE backup_id = 'b'"
            )
    assert statuses(store, "b") == {PairStatus.INCOMPLETE}


def test_pairs_must_match_their_backups_wallet_and_method(backend, store):
    make_wallet(store)
    add_backup(store, "a")
    with pytest.raises(StoreError, match=backend.violation("foreign key")):
        with store.transaction() as conn:
            conn.execute("UPDATE backup_pairs SET method = 'CUSTOM' WHERE backup_id = 'a'")


def test_a_new_backup_discards_unfinished_ones_of_its_method(store):
    make_wallet(store)
    add_backup(store, "done")
    complete(store, "done")
    add_backup(store, "left-by-a-crash")
    store.release_lock("client-1", "left-by-a-crash")  # as if its lock had expired
    add_backup(store, "other-method", "CUSTOM")
    store.release_lock("client-1", "other-method")
    store.acquire_lock("client-1", "next", "backup", 9.0, 60)
    pairs = [
        dataclasses.replace(p, pair_id=f"next-{p.curve}", backup_id="next")
        for p in store.backup_pairs("left-by-a-crash")
    ]
    stale = store.add_backup(
        BackupRecord("next", "w-1", "PASSWORD", BackupMode.CUSTODIAN, 9.0),
        pairs,
        lock=("client-1", "next"),
    )
    assert {p.backup_id for p in stale} == {"left-by-a-crash"}
    assert store.get_backup("left-by-a-crash") is None
    assert store.get_backup("done") is not None  # completed: kept
    assert store.get_backup("other-method") is not None  # another method: kept


def test_delete_backup_spares_completed_ones_unless_told(store):
    make_wallet(store)
    add_backup(store, "a")
    complete(store, "a")
    assert store.delete_backup("a") == []
    assert store.get_backup("a") is not None
    assert len(store.delete_backup("a", unfinished_only=False)) == 2
    assert store.get_backup("a") is None


def test_wallet_pairs_lists_every_status(store):
    make_wallet(store)
    add_backup(store, "a")
    complete(store, "a")
    add_backup(store, "b", "CUSTOM", now=5.0)
    got = [(p.backup_id, p.status) for p in store.wallet_pairs("w-1")]
    assert got == [
        ("a", PairStatus.COMPLETED),
        ("a", PairStatus.COMPLETED),
        ("b", PairStatus.INCOMPLETE),
        ("b", PairStatus.INCOMPLETE),
    ]


def test_one_of_two_racing_status_moves_wins(backend):
    # Two workers move the same backup from INCOMPLETE at once: as on SQLite, the second
    # finds it moved (the wallet's row orders them). Ten rounds, ten backups.
    with backend.custodian() as s:
        make_wallet(s)
    stores = [backend.custodian() for _ in range(2)]
    try:
        for round_ in range(10):
            backup_id = f"b-{round_}"
            add_backup(stores[0], backup_id, now=2.0 + round_)

            def move(i: int, backup_id: str = backup_id) -> None:
                stores[i].set_backup_status(
                    backup_id,
                    PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY,
                    expect={PairStatus.INCOMPLETE},
                )

            results = race(2, move)
            assert sorted(type(r).__name__ for r in results) == ["NoValidBackup", "NoneType"]
            stores[0].release_lock("client-1", backup_id)
    finally:
        for s in stores:
            s.close()


# -- locks -----------------------------------------------------------------------------------


def test_lock_is_exclusive_until_released_or_expired(store):
    make_wallet(store)
    store.acquire_lock("client-1", "first", "PASSWORD backup", 10.0, 60)
    with pytest.raises(WalletModificationInProgress, match="PASSWORD backup of this wallet"):
        store.acquire_lock("client-1", "second", "recovery", 20.0, 60)
    assert store.release_lock("client-1", "second") is False  # not its lock
    # An abandoned lock (its owner crashed) is taken over once it expires.
    taken = store.acquire_lock("client-1", "second", "recovery", 71.0, 60)
    assert taken.owner == "second" and store.get_lock("client-1").owner == "second"
    assert store.release_lock("client-1", "second") is True
    assert store.get_lock("client-1") is None


def test_a_call_whose_lock_was_taken_over_is_refused(store):
    make_wallet(store)
    store.acquire_lock("client-1", "slow", "backup", 10.0, 60)
    store.acquire_lock("client-1", "fast", "backup", 100.0, 60)
    with pytest.raises(WalletModificationInProgress, match="lost its lock"):
        store.add_backup(
            BackupRecord("slow", "w-1", "PASSWORD", BackupMode.CUSTODIAN, 100.0),
            [],
            lock=("client-1", "slow"),
        )
    assert store.get_backup("slow") is None


@pytest.mark.parametrize("held", [False, True], ids=["free", "expired"])
def test_only_one_of_many_threads_gets_the_lock(store, held):
    make_wallet(store)
    if held:  # all race to take over an expired lock
        store.acquire_lock("client-1", "crashed", "backup", 0.0, 5)

    def grab(i: int) -> int:
        store.acquire_lock("client-1", f"owner-{i}", "backup", 10.0, 60)
        return i

    results = race(8, grab)
    won = [r for r in results if isinstance(r, int)]
    assert len(won) == 1, results
    assert all(isinstance(r, WalletModificationInProgress) for r in results if r not in won)
    assert present(store.get_lock("client-1")).owner == f"owner-{won[0]}"


def test_threads_write_concurrently_without_losing_records(backend, store):
    def work(t: int) -> None:
        for i in range(25):
            store.add_client(f"c-{t}-{i}", float(i))
            assert store.get_client(f"c-{t}-{i}") is not None

    assert race(6, work) == [None] * 6
    assert backend.execute("SELECT COUNT(*) FROM clients")[0][0] == 150


# -- eject windows ---------------------------------------------------------------------------


def test_an_eject_window_serves_one_eject(store):
    make_wallet(store)
    assert store.take_eject_window("w-1") is None
    store.authorize_eject("w-1", 100.0, 400.0)
    window = store.take_eject_window("w-1")
    assert (window.authorized_at, window.expires_at) == (100.0, 400.0)
    assert store.take_eject_window("w-1") is None
    store.mark_ejected("w-1", 150.0)
    assert store.get_wallet("w-1").ejected_at == 150.0


def test_an_eject_window_taken_by_many_threads_at_once_serves_one(store):
    make_wallet(store)
    store.authorize_eject("w-1", 100.0, 400.0)
    results = race(8, lambda i: store.take_eject_window("w-1"))
    assert [r for r in results if r is not None] == [EjectWindow("w-1", 100.0, 400.0)]


# -- protocol sessions -----------------------------------------------------------------------


def session(
    session_id: str = "s-1",
    *,
    client_id: str = "client-1",
    operation: str = "backup",
    expires_at: float = 70.0,
) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        client_id=client_id,
        wallet_id="w-1",
        operation=operation,
        method=None if operation == "key generation" else "CUSTOM",
        stage=SessionStage.COMMIT,
        share_ids={"ED25519": f"{session_id}-ED25519", "SECP256K1": f"{session_id}-SECP256K1"},
        generations={"ED25519": 1, "SECP256K1": 2},
        sealed_states={"ED25519": b"\x00sealed-ed", "SECP256K1": b"\xffsealed-k1"},
        client_commitments={},
        created_at=10.0,
        expires_at=expires_at,
    )


def open_session(store: Any, record: SessionRecord) -> None:
    store.acquire_lock(record.client_id, record.session_id, record.operation, 10.0, 60)
    store.add_session(record, lock=(record.client_id, record.session_id))


def test_a_session_needs_its_lock_and_reads_back_as_written(backend, store):
    make_wallet(store)
    record = session()
    with pytest.raises(WalletModificationInProgress, match="lost its lock"):
        store.add_session(record, lock=("client-1", "s-1"))
    assert store.get_session("s-1") is None
    open_session(store, record)
    assert store.get_session("s-1") == record
    assert "sealed" not in repr(record) and "client_commitments" not in repr(record)
    with pytest.raises(StoreError, match="already exists"):
        store.add_session(record, lock=("client-1", "s-1"))
    with pytest.raises(StoreError, match=backend.violation("check")):
        with store.transaction() as conn:
            conn.execute("UPDATE sessions SET stage = 'done' WHERE session_id = 's-1'")


def test_a_session_moves_forward_once_by_compare_and_set(store):
    make_wallet(store)
    open_session(store, session())
    commitments = {"ED25519": b"c-ed", "SECP256K1": b"c-k1"}

    def move(
        expect: SessionStage,
        stage: SessionStage,
        *,
        client_id: str = "client-1",
        now: float = 20.0,
        **kw: Any,
    ) -> bool:
        return bool(
            store.advance_session(
                "s-1", client_id=client_id, expect=expect, stage=stage, now=now, **kw
            )
        )

    C, R, F = SessionStage.COMMIT, SessionStage.REVEAL, SessionStage.FINISHING
    assert not move(R, F)  # not there yet
    assert not move(C, R, client_id="client-2", client_commitments=commitments)
    assert not move(C, R, now=70.0, client_commitments=commitments)  # expired
    assert store.get_session("s-1") == session()  # none of those changed anything
    assert move(C, R, client_commitments=commitments)
    assert not move(C, R, client_commitments={"ED25519": b"x", "SECP256K1": b"y"})
    got = present(store.get_session("s-1"))
    assert (got.stage, got.client_commitments) == (R, commitments)
    assert move(R, F)
    assert not move(R, F)
    assert present(store.get_session("s-1")).client_commitments == commitments


def test_two_workers_racing_to_advance_a_session_move_it_once(backend):
    # Each round, two stores (two workers' pools) move the same session at once, each with
    # commitments of its own: one moves it, and the session holds the winner's.
    with backend.custodian() as s:
        make_wallet(s)
    workers = [backend.custodian() for _ in range(2)]
    try:
        for round_ in range(10):
            sid = f"s-{round_}"
            open_session(workers[0], session(sid))
            mine = [{"ED25519": f"worker-{i}".encode()} for i in range(2)]

            def advance(i: int, sid: str = sid, mine: list[dict[str, bytes]] = mine) -> bool:
                return bool(
                    workers[i].advance_session(
                        sid,
                        client_id="client-1",
                        expect=SessionStage.COMMIT,
                        stage=SessionStage.REVEAL,
                        now=20.0,
                        client_commitments=mine[i],
                    )
                )

            def end(i: int, sid: str = sid) -> SessionRecord | None:
                found: SessionRecord | None = workers[i].delete_session(sid)
                return found

            moved = race(2, advance)
            assert sorted(moved) == [False, True], moved
            winner = moved.index(True)
            got = present(workers[1 - winner].get_session(sid))
            assert (got.stage, got.client_commitments) == (SessionStage.REVEAL, mine[winner])
            ended = race(2, end)
            assert sum(r is not None for r in ended) == 1, ended
            workers[0].release_lock("client-1", sid)
    finally:
        for w in workers:
            w.close()


def test_a_session_is_deleted_once_and_only_by_its_client(store):
    make_wallet(store)
    open_session(store, session())
    assert store.delete_session("s-1", client_id="client-2") is None
    assert store.delete_session("s-1", client_id="client-1") == session()
    assert store.delete_session("s-1") is None
    assert store.get_lock("client-1") is not None  # the lock is the caller's to release


def test_expired_sessions_are_listed_and_deleted_in_one_go(store):
    make_wallet(store)
    make_wallet(store, "client-2", "w-2")
    open_session(store, session("s-1", expires_at=50.0))
    open_session(store, session("s-2", client_id="client-2", expires_at=40.0))
    assert [s.session_id for s in store.expired_sessions(49.0)] == ["s-2"]
    assert [s.session_id for s in store.expired_sessions(50.0)] == ["s-2", "s-1"]
    assert [s.session_id for s in store.expired_sessions(50.0, client_id="client-1")] == ["s-1"]
    assert store.delete_expired_sessions(45.0, client_id="client-1") == []
    assert [s.session_id for s in store.delete_expired_sessions(60.0, limit=1)] == ["s-2"]
    assert [s.session_id for s in store.delete_expired_sessions(60.0)] == ["s-1"]
    assert store.expired_sessions(1e12) == []


def test_sweeps_at_once_hand_each_expired_session_to_one(store):
    make_wallet(store)
    for i in range(12):
        record = dataclasses.replace(session(f"s-{i}"), expires_at=50.0 + i)
        store.add_client(f"c-{i}", 1.0)
        open_session(store, dataclasses.replace(record, client_id=f"c-{i}"))
    swept = race(4, lambda i: store.delete_expired_sessions(100.0, limit=5))
    ids = [s.session_id for batch in swept for s in batch]
    assert sorted(ids) == sorted(f"s-{i}" for i in range(12))  # each once, none lost


def test_deleting_expired_sessions_is_one_transaction(backend):
    def die(name: str) -> None:
        # Dies before deleting the second session, the first one deleted.
        if name == "store.delete_expired_sessions.session":
            seen.append(name)
            if len(seen) == 2:
                raise Crash(name)

    seen: list[str] = []
    with backend.custodian(checkpoint=die) as s:
        make_wallet(s)
        make_wallet(s, "client-2", "w-2")
        open_session(s, session("s-1"))
        open_session(s, session("s-2", client_id="client-2"))
        with pytest.raises(Crash):
            s.delete_expired_sessions(100.0)
        assert len(s.expired_sessions(100.0)) == 2


def test_a_record_ending_a_session_needs_it_at_finishing(store):
    make_wallet(store)
    open_session(store, session())
    pair = PairRecord(
        pair_id="s-1-ED25519",
        backup_id="s-1",
        wallet_id="w-1",
        method="CUSTOM",
        curve="ED25519",
        status=PairStatus.INCOMPLETE,
        public_key=b"X" * 32,
        client_public_share=b"C" * 32,
        custodian_public_share=b"S" * 32,
        sealed_custodian_share=SEALED,
        created_at=20.0,
    )
    backup = BackupRecord("s-1", "w-1", "CUSTOM", BackupMode.CUSTODIAN, 20.0)
    lock = ("client-1", "s-1")
    # At 'commit' (no reveal step claimed, or its claim ended): nothing is recorded.
    with pytest.raises(WalletModificationInProgress, match="has ended"):
        store.add_backup(backup, [pair], lock=lock, end_session="s-1")
    assert store.get_backup("s-1") is None
    store.advance_session(
        "s-1",
        client_id="client-1",
        expect=SessionStage.COMMIT,
        stage=SessionStage.REVEAL,
        now=20.0,
        client_commitments={"ED25519": b"c"},
    )
    store.advance_session(
        "s-1",
        client_id="client-1",
        expect=SessionStage.REVEAL,
        stage=SessionStage.FINISHING,
        now=20.0,
    )
    store.add_backup(backup, [pair], lock=lock, end_session="s-1")
    assert store.get_session("s-1") is None and store.get_backup("s-1") is not None
    assert present(store.get_lock("client-1")).owner == "s-1"  # a backup keeps its lock


@pytest.mark.parametrize("what", ["wallet", "recovery"])
def test_key_generation_and_recovery_end_their_session_with_their_record(store, what):
    s = store
    if what == "recovery":
        make_wallet(s)
    else:
        s.add_client("client-1", 1.0)
    open_session(s, session(operation="key generation" if what == "wallet" else "recovery"))
    for expect, stage in [
        (SessionStage.COMMIT, SessionStage.REVEAL),
        (SessionStage.REVEAL, SessionStage.FINISHING),
    ]:
        assert s.advance_session(
            "s-1",
            client_id="client-1",
            expect=expect,
            stage=stage,
            now=20.0,
            client_commitments={"ED25519": b"c"} if stage is SessionStage.REVEAL else None,
        )
    lock = ("client-1", "s-1")
    if what == "wallet":
        s.add_wallet(
            WalletRecord("w-1", "client-1", 1.0),
            [signing("w-1", "ED25519")],
            lock=lock,
            end_session="s-1",
        )
    else:
        s.replace_signing_shares(
            "w-1", [signing("w-1", "ED25519", 2)], lock=lock, end_session="s-1"
        )
    assert s.get_session("s-1") is None and s.get_lock("client-1") is None
    # Once ended, the same session records nothing more.
    s.acquire_lock("client-1", "s-1", "again", 30.0, 60)
    with pytest.raises(WalletModificationInProgress, match="has ended"):
        s.replace_signing_shares(
            "w-1", [signing("w-1", "ED25519", 3)], lock=lock, end_session="s-1"
        )
    assert s.signing_shares("w-1")["ED25519"].generation in (1, 2)


def test_a_clients_sessions_go_with_it(store):
    make_wallet(store)
    open_session(store, session())
    with store.transaction() as conn:
        conn.execute("DELETE FROM clients WHERE client_id = 'client-1'")
    assert store.get_session("s-1") is None


# -- tenants, keys, webhooks, the audit trail ---------------------------------------------------


def tenant(tenant_id: str, name: str, key_id: str = "") -> tuple[TenantRecord, ApiKeyRecord]:
    key = ApiKeyRecord(key_id or f"k-{tenant_id}", tenant_id, None, KeyKind.ADMIN, b"\1" * 32, 1.0)
    return TenantRecord(tenant_id, name, 1.0), key


def created(tenant_id: str) -> list[AuditEntry]:
    return [AuditEntry(tenant_id, 1.0, "tenant_created", tenant_id, {"n": 1, "by": None})]


def test_tenant_names_are_unique_without_ascii_case(store):
    store.add_tenant(*tenant("t1", "Acme"), created("t1"))
    with pytest.raises(TenantExists, match="already exists"):
        store.add_tenant(*tenant("t2", "ACME"), created("t2"))
    assert present(store.tenant_by_name("aCmE")).tenant_id == "t1"
    # Only ASCII letters fold, as SQLite's NOCASE does.
    store.add_tenant(*tenant("t3", "Émile"), created("t3"))
    store.add_tenant(*tenant("t4", "émile"), created("t4"))
    assert present(store.tenant_by_name("émile")).tenant_id == "t4"
    assert store.get_tenant("t2") is None and store.api_key("k-t2") is None
    assert [e.kind for e in store.audit_events("t1")] == ["tenant_created"]
    assert store.audit_events("t1")[0].detail == {"n": 1, "by": None}


def test_one_of_two_tenants_of_one_name_made_at_once_is_refused(store):
    def make(i: int) -> None:
        store.add_tenant(*tenant(f"t{i}", "Acme" if i else "acme"), created(f"t{i}"))

    results = race(2, make)
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "TenantExists"]


def test_two_admin_keys_revoked_at_once_leave_one(store):
    tenants = Tenants(store)
    for round_ in range(10):
        made = tenants.create_tenant(f"Acme {round_}")
        second = tenants.create_admin_key(made.tenant_id)
        keys = [made.admin_key.key_id, second.key_id]

        def revoke(i: int, tenant_id: str = made.tenant_id, keys: list[str] = keys) -> bool:
            return tenants.revoke_key(tenant_id, keys[i])

        results = race(2, revoke)
        assert sorted(type(r).__name__ for r in results) == ["LastAdminKey", "bool"]
        live = [k for k in store.tenant_api_keys(made.tenant_id) if k.revoked_at is None]
        assert len(live) == 1
    with pytest.raises(LastAdminKey):
        tenants.revoke_key(made.tenant_id, live[0].key_id)
    with pytest.raises(UnknownKey):
        tenants.revoke_key("no-such-tenant", live[0].key_id)


def test_rotations_at_once_leave_one_live_client_key(store):
    tenants = Tenants(store)
    made = tenants.create_tenant("Acme")
    for _ in range(5):
        client = tenants.create_client(made.tenant_id)

        def rotate(i: int, client_id: str = client.client_id) -> IssuedKey:
            return tenants.rotate_client_key(made.tenant_id, client_id)

        rotated = race(4, rotate)
        assert all(not isinstance(r, Exception) for r in rotated), rotated
        keys = [k for k in store.tenant_api_keys(made.tenant_id) if k.client_id == client.client_id]
        assert len(keys) == 5 and sum(k.revoked_at is None for k in keys) == 1
        live = next(k for k in keys if k.revoked_at is None)
        assert live.key_id in {r.key_id for r in rotated}


def test_tenant_webhooks_are_set_replaced_and_removed_with_their_events(store):
    store.add_tenant(*tenant("t1", "Acme"), created("t1"))
    with pytest.raises(UnknownTenant):
        store.set_tenant_webhook(TenantWebhookRecord("nobody", "https://x", b"s", 1.0), [])
    for url, at in (("https://a.example", 2.0), ("https://b.example", 3.0)):
        event = AuditEntry("t1", at, "webhook_set", "t1", {"url": url})
        store.set_tenant_webhook(TenantWebhookRecord("t1", url, b"sealed", at), [event])
    assert store.tenant_webhook("t1") == TenantWebhookRecord(
        "t1", "https://b.example", b"sealed", 3.0
    )
    assert store.delete_tenant_webhook("t1", [AuditEntry("t1", 4.0, "webhook_removed", "t1")])
    assert not store.delete_tenant_webhook("t1", [AuditEntry("t1", 5.0, "never", "t1")])
    assert store.tenant_webhook("t1") is None
    kinds = [e.kind for e in store.audit_events("t1", since=2.0)]
    assert kinds == ["webhook_set", "webhook_set", "webhook_removed"]


def test_unattributed_events_page_apart_from_tenants(store):
    store.add_tenant(*tenant("t1", "Acme"), created("t1"))
    ids = [
        store.append_audit(AuditEntry(None, 10.0 + i, "auth_failed", None, {"key_id": str(i)}))
        for i in range(4)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 4
    events = store.unattributed_audit_events(since=11.0, limit=2)
    assert [e.detail for e in events] == [{"key_id": "1"}, {"key_id": "2"}]
    assert all(e.tenant_id is None for e in events)
    assert [e.kind for e in store.audit_events("t1")] == ["tenant_created"]


def test_a_client_and_its_key_are_recorded_together(store):
    store.add_tenant(*tenant("t1", "Acme"), created("t1"))
    client = ClientRecord("c1", 2.0, "t1")
    key = ApiKeyRecord("kc", "t1", "c1", KeyKind.CLIENT, b"\2" * 32, 2.0)
    store.add_tenant_client(client, key, [])
    assert store.get_client("c1") == client and store.api_key("kc") == key
    with pytest.raises(StoreError, match="already exists"):
        store.add_tenant_client(client, dataclasses.replace(key, key_id="kd"), [])
    assert store.api_key("kd") is None
    with pytest.raises(UnknownTenant):
        store.add_tenant_client(
            ClientRecord("c2", 2.0, "t9"),
            ApiKeyRecord("ke", "t9", "c2", KeyKind.CLIENT, b"\3" * 32, 2.0),
            [],
        )


# -- PostgreSQL only ---------------------------------------------------------------------------


PASSWORD = "pw-Zq8f3K2x"  # stands for a real password: it must never reach a message


def test_a_password_in_the_dsn_is_in_no_message_or_repr(pg_dsn):
    from portal_core.store.postgres import PostgresEnclaveStore, PostgresStore, describe_dsn

    assert describe_dsn(f"postgresql://portal:{PASSWORD}@db.internal:5433/custody") == (
        "portal@db.internal:5433/custody"
    )
    assert describe_dsn(f"host=/run/pg dbname=custody password={PASSWORD}") == "/run/pg/custody"
    unreachable = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"
    for make in (PostgresStore, PostgresEnclaveStore):
        with pytest.raises(Exception, match="cannot connect") as err:
            make(unreachable, timeout=2)
        assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value)
        assert "postgres@127.0.0.1:1/x" in str(err.value)
    with pytest.raises(ValueError, match="not a PostgreSQL connection string") as bad:
        describe_dsn(f"host=x password={PASSWORD} = broken")
    assert PASSWORD not in str(bad.value)


def test_waits_for_a_connection_and_for_a_row_lock_are_bounded(pg_dsn):
    from pg_cluster import fresh_database
    from portal_core.store.postgres import PostgresStore

    with fresh_database(pg_dsn) as dsn, PostgresStore(dsn, pool_size=1, timeout=1) as one:
        make_wallet(one)
        held = threading.Event()
        done = threading.Event()

        def hold() -> None:
            with one.transaction() as conn:  # the pool's only connection, and the lock row
                conn.execute("SELECT 1 FROM locks WHERE client_id = 'client-1' FOR UPDATE")
                held.set()
                done.wait(WAIT_S)

        one.acquire_lock("client-1", "a", "backup", 1.0, 60)
        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(WAIT_S)
            t0 = time.monotonic()
            with pytest.raises(StoreError, match="no store connection free within 1 s"):
                one.get_client("client-1")
            with PostgresStore(dsn, timeout=1) as other:
                with pytest.raises(StoreError, match="lock timeout"):
                    other.release_lock("client-1", "a")
            assert time.monotonic() - t0 < 10
        finally:
            done.set()
            holder.join(WAIT_S)
        assert one.release_lock("client-1", "a")


def test_a_forked_child_opens_connections_of_its_own(pg_dsn):
    from pg_cluster import fresh_database
    from portal_core.store.postgres import PostgresStore

    with fresh_database(pg_dsn) as dsn, PostgresStore(dsn, pool_size=2) as s:
        s.add_client("parent", 1.0)
        with warnings.catch_warnings():
            # Python warns that forking a process with threads (the pool's) may deadlock.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: a pool of its own, the parent's connections untouched
            code = 2
            try:
                s.add_client("child", 2.0)
                code = 0 if s.get_client("parent") is not None else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert present(s.get_client("child")).created_at == 2.0  # the parent's pool works on
        assert s.schema_version == LATEST_VERSION

"""The SQLite custodian store: schema and migrations, transactions, constraints, locks, threads."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal_core.exceptions import (
    NoValidBackup,
    WalletAlreadyExists,
    WalletModificationInProgress,
)
from portal_core.store import (
    LATEST_VERSION,
    MIGRATIONS,
    BackupMode,
    BackupRecord,
    CustodianStore,
    Migration,
    PairRecord,
    PairStatus,
    SessionRecord,
    SessionStage,
    SigningShareRecord,
    SqliteStore,
    StoreError,
    WalletRecord,
)
from portal_core.store.rows import record_from_row
from present import present

SEALED = b"sealed-blob-" + bytes(range(20))


class Crash(BaseException):
    """Stands for the process dying: a BaseException, so no ``except Exception`` cleans up."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "custodian.db") as s:
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


def make_wallet(store: SqliteStore, client_id: str = "client-1", wallet_id: str = "w-1") -> str:
    store.add_client(client_id, 1.0)
    store.acquire_lock(client_id, "keygen", "key generation", 1.0, 60)
    store.add_wallet(
        WalletRecord(wallet_id, client_id, 1.0),
        [signing(wallet_id, "SECP256K1"), signing(wallet_id, "ED25519")],
        lock=(client_id, "keygen"),
    )
    return wallet_id


def add_backup(
    store: SqliteStore,
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


def complete(store: SqliteStore, backup_id: str, client_id: str = "client-1") -> list[PairRecord]:
    store.set_backup_status(
        backup_id,
        PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY,
        expect={PairStatus.INCOMPLETE},
    )
    store.store_cipher_text(backup_id, b"cipher-" + backup_id.encode(), 3.0)
    return store.complete_backup(backup_id, 4.0, release=(client_id, backup_id))


def statuses(store: SqliteStore, backup_id: str) -> set[str]:
    return {p.status for p in store.backup_pairs(backup_id)}


# -- schema and migrations ---------------------------------------------------------------


def test_new_store_is_at_the_latest_schema_in_wal_mode_with_foreign_keys(
    store: SqliteStore, tmp_path: Path
) -> None:
    assert isinstance(store, CustodianStore)
    assert store.schema_version == LATEST_VERSION == MIGRATIONS[-1].version
    conn = sqlite3.connect(tmp_path / "custodian.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = conn.execute("SELECT version, description FROM schema_version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    conn.close()
    assert store.query("PRAGMA foreign_keys")[0][0] == 1


def test_reopening_applies_nothing_twice(tmp_path):
    path = tmp_path / "c.db"
    SqliteStore(path).close()
    with SqliteStore(path) as again:
        assert again.schema_version == LATEST_VERSION
        n = again.query("SELECT COUNT(*) FROM schema_version")[0][0]
    assert n == len(MIGRATIONS)


def test_a_later_migration_is_applied_in_order_on_open(tmp_path):
    path = tmp_path / "c.db"
    with SqliteStore(path) as s:
        make_wallet(s)
    extra = Migration(
        LATEST_VERSION + 1,
        "a test column",
        ("ALTER TABLE wallets ADD COLUMN label TEXT", "UPDATE wallets SET label = 'migrated'"),
    )
    with SqliteStore(path, migrations=(*MIGRATIONS, extra)) as s:
        assert s.schema_version == LATEST_VERSION + 1
        assert s.query("SELECT label FROM wallets")[0][0] == "migrated"
        assert s.get_wallet("w-1") is not None  # the records survived


def test_the_tenant_migration_keeps_existing_clients_without_a_tenant(tmp_path):
    # A database from before tenants (schema version 1), with a client and its wallet.
    path = tmp_path / "c.db"
    with SqliteStore(path, migrations=MIGRATIONS[:1]) as s:
        assert s.schema_version == 1
        make_wallet(s)
    with SqliteStore(path) as s:
        assert s.schema_version == LATEST_VERSION >= 2
        client = s.get_client("client-1")
        assert client is not None and client.tenant_id is None
        assert s.wallet_for_client("client-1") is not None
        tables = {r["name"] for r in s.query("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"tenants", "api_keys", "audit_events"} <= tables
        # The old path still records tenantless clients.
        assert s.add_client("client-2", 2.0).tenant_id is None


def test_a_client_cannot_name_a_tenant_that_does_not_exist(store):
    with pytest.raises(StoreError, match="FOREIGN KEY"), store.transaction() as conn:
        conn.execute(
            "INSERT INTO clients (client_id, created_at, tenant_id) VALUES ('c', 1.0, 'nobody')"
        )


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    path = tmp_path / "c.db"
    SqliteStore(path).close()
    bad = Migration(
        LATEST_VERSION + 1,
        "half good",
        ("ALTER TABLE wallets ADD COLUMN label TEXT", "THIS IS NOT SQL"),
    )
    with pytest.raises(StoreError, match="syntax error"):
        SqliteStore(path, migrations=(*MIGRATIONS, bad))
    with SqliteStore(path) as s:
        assert s.schema_version == LATEST_VERSION
        columns = [r["name"] for r in s.query("PRAGMA table_info(wallets)")]
        assert "label" not in columns  # the first step was rolled back with the second


def test_a_schema_newer_than_the_build_is_refused(tmp_path):
    path = tmp_path / "c.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version, description) VALUES (99, 'future')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this build"):
        SqliteStore(path)


def test_in_memory_databases_are_refused():
    with pytest.raises(ValueError, match="file path"):
        SqliteStore(":memory:")


def test_a_closed_store_refuses_calls(tmp_path):
    s = SqliteStore(tmp_path / "c.db")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get_client("x")


# -- files ---------------------------------------------------------------------------------


def modes(path: Path) -> dict[str, int]:
    """The permission bits of a database file and of its WAL companions."""
    return {
        suffix: stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) for suffix in ("", "-wal", "-shm")
    }


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_a_new_database_and_its_wal_and_shm_are_0600_whatever_the_umask(tmp_path, umask):
    path = tmp_path / "custodian.db"
    old = os.umask(umask)
    try:
        with SqliteStore(path) as s:
            make_wallet(s)
            assert os.path.getsize(f"{path}-wal") > 0  # the WAL holds records too
            found = modes(path)
    finally:
        os.umask(old)
    assert found == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_an_existing_database_keeps_its_mode_and_its_companions_get_no_more(tmp_path):
    path = tmp_path / "custodian.db"
    with SqliteStore(path) as first:
        make_wallet(first)
        os.chmod(path, 0o640)  # the operator's choice, kept
        # Companions left more open than the database (by an earlier build, say).
        os.chmod(f"{path}-wal", 0o644)
        os.chmod(f"{path}-shm", 0o666)
        with SqliteStore(path) as second:
            assert second.get_wallet("w-1") is not None
            assert modes(path) == {"": 0o640, "-wal": 0o640, "-shm": 0o640}


def test_a_companion_that_cannot_be_narrowed_is_a_store_error(tmp_path, monkeypatch):
    path = tmp_path / "custodian.db"
    with SqliteStore(path):
        os.chmod(f"{path}-shm", 0o644)

        def refuse(*args, **kwargs):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "chmod", refuse)
        with pytest.raises(StoreError, match=r"-shm' grants more access than the store"):
            SqliteStore(path)


def test_a_database_in_a_missing_directory_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match=r"cannot create the store .*No such file"):
        SqliteStore(tmp_path / "nowhere" / "custodian.db")
    assert not (tmp_path / "nowhere").exists()


def test_no_module_outside_the_store_package_speaks_sql():
    package = Path(__file__).resolve().parent.parent / "python" / "portal_core"
    outside = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.relative_to(package).parts[0] != "store"
        and "sqlite3" in path.read_text(encoding="utf-8")
    ]
    assert outside == []


# -- rows to records -------------------------------------------------------------------------


def row(sql: str) -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    try:
        found: sqlite3.Row = conn.execute(sql).fetchone()
        return found
    finally:
        conn.close()


def test_a_record_is_built_by_column_name_with_converters_and_nulls_kept():
    r = row(
        "SELECT 'x' AS later_column, 'w' AS wallet_id, 'b' AS backup_id, 'p' AS pair_id, "
        "'PASSWORD' AS method, 'ED25519' AS curve, 'completed' AS status, x'01' AS public_key, "
        "x'02' AS client_public_share, x'03' AS custodian_public_share, "
        "NULL AS sealed_custodian_share, 1.5 AS created_at, NULL AS completed_at"
    )
    pair = record_from_row(PairRecord, r, status=PairStatus, completed_at=float)
    assert pair == PairRecord(
        "p", "b", "w", "PASSWORD", "ED25519", PairStatus.COMPLETED,
        b"\x01", b"\x02", b"\x03", None, 1.5, None,
    )  # fmt: skip
    assert pair.status is PairStatus.COMPLETED  # converted, not the bare text


def test_a_row_out_of_step_with_its_record_is_a_type_error():
    with pytest.raises(TypeError, match="no column 'expires_at' for EjectWindow"):
        record_from_row(dataclasses.make_dataclass("EjectWindow", ["expires_at"]), row("SELECT 1"))
    r = row("SELECT 'c' AS client_id, 1.0 AS created_at")
    with pytest.raises(TypeError, match="has no field 'status' to convert"):
        record_from_row(BackupRecord, r, status=PairStatus)
    with pytest.raises(TypeError, match="not a dataclass"):
        record_from_row(dict, r)


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


def test_record_reprs_leave_out_sealed_blobs(store):
    make_wallet(store)
    pairs = add_backup(store, "b1")
    for record in (store.signing_shares("w-1")["ED25519"], pairs[0]):
        assert "sealed-blob" not in repr(record)


def test_replace_signing_shares_is_one_transaction(tmp_path):
    calls = []

    def crash_on_second(name):
        calls.append(name)
        if calls.count("store.replace_signing_shares.share") == 2:
            raise Crash(name)

    with SqliteStore(tmp_path / "c.db", checkpoint=crash_on_second) as s:
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


def test_a_crash_inside_completion_keeps_the_old_backup(tmp_path):
    names = []

    def crash_after_delete(name):
        names.append(name)
        if name == "store.complete_backup.deleted_old":
            raise Crash(name)

    path = tmp_path / "c.db"
    with SqliteStore(path) as s:
        make_wallet(s)
        add_backup(s, "old")
        complete(s, "old")
        add_backup(s, "new")
        s.set_backup_status(
            "new", PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY, expect={PairStatus.INCOMPLETE}
        )
        s.store_cipher_text("new", b"ct", 3.0)
    with SqliteStore(path, checkpoint=crash_after_delete) as s, pytest.raises(Crash):
        s.complete_backup("new", 4.0)
    with SqliteStore(path) as s:
        assert present(s.completed_backup("w-1", "PASSWORD")).backup_id == "old"
        assert statuses(s, "old") == {PairStatus.COMPLETED}
        assert statuses(s, "new") == {PairStatus.STORED_CLIENT_BACKUP_SHARE}
        assert s.cipher_text("old") == b"cipher-old"
    assert names == ["store.complete_backup.deleted_old"]


def test_the_database_refuses_two_completed_pairs_per_method_and_curve(store):
    make_wallet(store)
    add_backup(store, "a")
    complete(store, "a")
    add_backup(store, "b")
    with pytest.raises(StoreError, match="UNIQUE constraint failed"):
        with store.transaction() as conn:
            conn.execute(
                "UPDATE backup_pairs SET status = 'completed', completed_at = 1 "
                "WHERE backup_id = 'b'"
            )
    assert statuses(store, "b") == {PairStatus.INCOMPLETE}


def test_pairs_must_match_their_backups_wallet_and_method(store):
    make_wallet(store)
    add_backup(store, "a")
    with pytest.raises(StoreError, match="FOREIGN KEY"):
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


def test_only_one_of_many_threads_gets_the_lock(tmp_path):
    path = tmp_path / "c.db"
    with SqliteStore(path) as s:
        make_wallet(s)
        barrier = threading.Barrier(8, timeout=60)
        won, refused = [], []

        def grab(i: int) -> None:
            barrier.wait()
            try:
                s.acquire_lock("client-1", f"owner-{i}", "backup", 10.0, 60)
                won.append(i)
            except WalletModificationInProgress:
                refused.append(i)

        threads = [threading.Thread(target=grab, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a thread is stuck"
        assert len(won) == 1 and len(refused) == 7
        assert present(s.get_lock("client-1")).owner == f"owner-{won[0]}"


def test_threads_write_concurrently_without_losing_records(tmp_path):
    with SqliteStore(tmp_path / "c.db") as s:
        errors = []

        def work(t: int) -> None:
            try:
                for i in range(25):
                    s.add_client(f"c-{t}-{i}", float(i))
                    assert s.get_client(f"c-{t}-{i}") is not None
            except Exception as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive(), "a thread is stuck"
        assert errors == []
        assert s.query("SELECT COUNT(*) FROM clients")[0][0] == 150


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


def open_session(store: SqliteStore, record: SessionRecord) -> None:
    store.acquire_lock(record.client_id, record.session_id, record.operation, 10.0, 60)
    store.add_session(record, lock=(record.client_id, record.session_id))


def test_a_session_needs_its_lock_and_reads_back_as_written(store):
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
    with pytest.raises(StoreError, match="CHECK"), store.transaction() as conn:
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


def test_deleting_expired_sessions_is_one_transaction(tmp_path):
    def die(name: str) -> None:
        # Dies before deleting the second session, the first one deleted.
        if name == "store.delete_expired_sessions.session":
            seen.append(name)
            if len(seen) == 2:
                raise Crash(name)

    seen: list[str] = []
    with SqliteStore(tmp_path / "c.db", checkpoint=die) as s:
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
def test_key_generation_and_recovery_end_their_session_with_their_record(tmp_path, what):
    with SqliteStore(tmp_path / "c.db") as s:
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


def test_the_session_migration_upgrades_a_database_in_use(tmp_path):
    path = tmp_path / "c.db"
    (sessions,) = [m.version for m in MIGRATIONS if "protocol sessions" in m.description]
    before = MIGRATIONS[: sessions - 1]
    with SqliteStore(path, migrations=before) as s:
        make_wallet(s)
    with SqliteStore(path) as s:
        assert s.schema_version == LATEST_VERSION
        assert s.get_wallet("w-1") is not None
        open_session(s, session())
        assert present(s.get_session("s-1")).sealed_states == session().sealed_states

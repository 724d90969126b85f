"""The SQLite custodian store's own behaviour: the WAL journal and foreign keys, private file
modes, in-memory databases refused, the rows module, and no SQL outside the store package.

What every store promises (records, backups, locks, sessions, tenants, migrations,
crashes inside transactions, concurrency) runs on SQLite and PostgreSQL alike in
tests/test_store_contract.py.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal_core.store import (
    LATEST_VERSION,
    MIGRATIONS,
    BackupRecord,
    CustodianStore,
    PairRecord,
    PairStatus,
    SqliteStore,
    StoreError,
)
from portal_core.store.rows import record_from_row


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "custodian.db") as s:
        yield s


def write_something(store: SqliteStore) -> None:
    store.add_client("client-1", 1.0)


# -- schema ------------------------------------------------------------------------------


def test_new_store_is_at_the_latest_schema_in_wal_mode_with_foreign_keys(
    store: SqliteStore, tmp_path: Path
) -> None:
    assert isinstance(store, CustodianStore)
    assert store.schema_version == LATEST_VERSION == MIGRATIONS[-1].version
    conn = sqlite3.connect(tmp_path / "custodian.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store.query("PRAGMA foreign_keys")[0][0] == 1


def test_in_memory_databases_are_refused():
    with pytest.raises(ValueError, match="file path"):
        SqliteStore(":memory:")


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
            write_something(s)
            assert os.path.getsize(f"{path}-wal") > 0  # the WAL holds records too
            found = modes(path)
    finally:
        os.umask(old)
    assert found == {"": 0o600, "-wal": 0o600, "-shm": 0o600}


def test_an_existing_database_keeps_its_mode_and_its_companions_get_no_more(tmp_path):
    path = tmp_path / "custodian.db"
    with SqliteStore(path) as first:
        write_something(first)
        os.chmod(path, 0o640)  # the operator's choice, kept
        # Companions left more open than the database (by an earlier build, say).
        os.chmod(f"{path}-wal", 0o644)
        os.chmod(f"{path}-shm", 0o666)
        with SqliteStore(path) as second:
            assert second.get_client("client-1") is not None
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
        and any(driver in path.read_text(encoding="utf-8") for driver in ("sqlite3", "psycopg"))
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


# -- the process's writer queue ------------------------------------------------------------


def test_a_transaction_inside_another_fails_at_once_not_after_the_timeout(tmp_path):
    import time

    with SqliteStore(tmp_path / "q.db", timeout=10.0) as store:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="within a transaction"):
            with store.transaction():
                with store.transaction():
                    pass
        assert time.monotonic() - t0 < 2.0
        with store.transaction() as conn:  # the queue was let go
            conn.execute("SELECT 1")


def test_writers_queue_in_a_process_and_a_fork_does_not_inherit_the_queue(tmp_path):
    """Threads wait their turn in the queue (none fails while each holds the lock a while),
    and a child forked while a thread of the parent is inside a transaction does not inherit
    the queue that thread holds (it would wait for a thread the child does not have)."""
    import multiprocessing
    import threading
    import time

    path = tmp_path / "q.db"
    with SqliteStore(path, timeout=5.0) as store:
        done: list[int] = []

        def write(i: int) -> None:
            for _ in range(5):
                with store.transaction() as conn:
                    conn.execute("SELECT 1")
                    time.sleep(0.002)
            done.append(i)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(done) == list(range(16))

        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.transaction():
                inside.set()
                release.wait(timeout=30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert inside.wait(timeout=30)
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_write_once, args=(str(path),))
        child.start()  # forked while the queue is held by the parent's thread
        child.join(timeout=60)
        release.set()
        holder.join(timeout=30)
        assert child.exitcode == 0


def _write_once(path: str) -> None:
    from portal_core.store.database import _writer_queue

    # The parent's thread holds this path's queue; the child has a queue of its own.
    if not _writer_queue(path).acquire(timeout=5):
        raise SystemExit(1)

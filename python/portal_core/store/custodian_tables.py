"""The custodian store's tables, written once for both engines: wallets, signing shares,
backups, client locks, sessions and eject windows.

A base class of :class:`~portal_core.store.custodian_sqlite.SqliteStore` and of
:class:`~portal_core.store.postgres.PostgresStore`. On SQLite every change runs alone
(``BEGIN IMMEDIATE``); on PostgreSQL writers run at once, and row locks
(``self.for_no_key_update``, see :mod:`portal_core.store.portable`) give its transactions
SQLite's serial outcomes (:mod:`portal_core.store.postgres.database` says why and in which
order they are taken):

* the client's lock row (``locks``), before a call checks that it still holds it;
* the wallet's row, before a call reads its backups' statuses and changes them;
* everything else is one statement whose ``WHERE`` is the check: taking or taking over a
  lock (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), moving a session
  (``UPDATE ... WHERE stage = ...``), ending one (``DELETE ... RETURNING``), taking an
  eject window.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from portal_core.backup.errors import (
    NoValidBackup,
    WalletAlreadyExists,
    WalletModificationInProgress,
)
from portal_core.store.custodian_interface import LockRef, StoreError
from portal_core.store.custodian_records import (
    BackupMode,
    BackupRecord,
    ClientRecord,
    EjectWindow,
    LockRecord,
    PairRecord,
    PairStatus,
    SessionRecord,
    SessionStage,
    SigningShareRecord,
    WalletRecord,
)
from portal_core.store.portable import Connection, PortableTables
from portal_core.store.rows import record_from_row

__all__ = ["CustodianTables"]

_PAIR_COLUMNS = (
    "pair_id, backup_id, wallet_id, method, curve, status, public_key, client_public_share, "
    "custodian_public_share, sealed_custodian_share, created_at, completed_at"
)
_SESSION_COLUMNS = (
    "session_id, client_id, wallet_id, operation, method, stage, share_ids, generations, "
    "sealed_states, client_commitments, created_at, expires_at"
)
_SIGNING_COLUMNS = (
    "wallet_id, curve, share_id, public_key, client_public_share, custodian_public_share, "
    "sealed_share, generation, updated_at"
)


# The two records read in several places, with the converters of their enum columns.
def _pair(row: Any) -> PairRecord:
    return record_from_row(PairRecord, row, status=PairStatus)


def _backup(row: Any) -> BackupRecord:
    return record_from_row(BackupRecord, row, mode=BackupMode)


# A session's maps are JSON objects keyed by curve; bytes values are base64 strings.
def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _blobs_json(value: Mapping[str, bytes]) -> str:
    return _json({k: base64.b64encode(bytes(v)).decode("ascii") for k, v in value.items()})


def _blobs(text: str) -> dict[str, bytes]:
    return {k: base64.b64decode(v, validate=True) for k, v in json.loads(text).items()}


def _session(row: Any) -> SessionRecord:
    return record_from_row(
        SessionRecord,
        row,
        stage=SessionStage,
        share_ids=json.loads,
        generations=json.loads,
        sealed_states=_blobs,
        client_commitments=_blobs,
    )


def _share_values(s: SigningShareRecord) -> tuple[object, ...]:
    """A signing share's columns after its wallet and curve, in ``_SIGNING_COLUMNS`` order."""
    return (
        s.share_id,
        s.public_key,
        s.client_public_share,
        s.custodian_public_share,
        s.sealed_share,
        s.generation,
        s.updated_at,
    )


class CustodianTables(PortableTables):
    """The :class:`~portal_core.store.custodian_interface.CustodianStore` methods (see the
    module's docstring); the engine's class gives ``_checkpoint``."""

    # A JSON value bound where nothing else gives it its type (PostgreSQL's ``jsonb``).
    _json_param = "?"
    _checkpoint: Callable[[str], None]

    def _check_lock(self, conn: Connection, lock: LockRef) -> None:
        # Held (PostgreSQL: FOR NO KEY UPDATE): nobody takes the lock over or releases it
        # until this commits.
        client_id, owner = lock
        row = conn.execute(
            "SELECT owner FROM locks WHERE client_id = ?" + self.for_no_key_update, (client_id,)
        ).fetchone()
        if row is None or row["owner"] != owner:
            raise WalletModificationInProgress(
                "this operation lost its lock on the wallet (it expired, and another backup or "
                "recovery may have started): start again"
            )

    def _lock_wallet(self, conn: Connection, wallet_id: str) -> None:
        """Holds the wallet's row: the calls that read a wallet's backups and change them
        run one after another (on SQLite, as every transaction does)."""
        conn.execute(
            "SELECT 1 FROM wallets WHERE wallet_id = ?" + self.for_no_key_update, (wallet_id,)
        )

    def _lock_backups_wallet(self, conn: Connection, backup_id: str) -> None:
        """:meth:`_lock_wallet` for the backup's wallet (none if there is no such backup)."""
        conn.execute(
            "SELECT 1 FROM wallets WHERE wallet_id = "
            "(SELECT wallet_id FROM backups WHERE backup_id = ?)" + self.for_no_key_update,
            (backup_id,),
        )

    @staticmethod
    def _release(conn: Connection, lock: LockRef | None) -> None:
        if lock is not None:
            conn.execute("DELETE FROM locks WHERE client_id = ? AND owner = ?", lock)

    @staticmethod
    def _end_session(conn: Connection, lock: LockRef, session_id: str | None) -> None:
        """Deletes the session whose result the transaction records; it must still be the
        lock's client's, at stage ``finishing`` (or whoever ended it did its clean-up, and the
        result must not be recorded after that)."""
        if session_id is None:
            return
        cur = conn.execute(
            "DELETE FROM sessions WHERE session_id = ? AND client_id = ? AND stage = ?",
            (session_id, lock[0], SessionStage.FINISHING.value),
        )
        if cur.rowcount != 1:
            raise WalletModificationInProgress(
                f"session {session_id!r} has ended (aborted, or expired) before its result "
                "was recorded: start again"
            )

    # -- clients and wallets -------------------------------------------------------------

    def add_client(self, client_id: str, now: float) -> ClientRecord:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO clients (client_id, created_at) VALUES (?, ?) "
                "ON CONFLICT (client_id) DO NOTHING",
                (client_id, now),
            )
            if cur.rowcount != 1:
                raise StoreError(f"client {client_id!r} already exists")
        return ClientRecord(client_id, now)

    def get_client(self, client_id: str) -> ClientRecord | None:
        row = self.query_one("SELECT * FROM clients WHERE client_id = ?", (client_id,))
        return None if row is None else record_from_row(ClientRecord, row)

    def add_wallet(
        self,
        wallet: WalletRecord,
        shares: Sequence[SigningShareRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            self._check_lock(conn, lock)
            self._end_session(conn, lock, end_session)
            if conn.execute(
                "SELECT 1 FROM wallets WHERE client_id = ?", (wallet.client_id,)
            ).fetchone():
                raise WalletAlreadyExists(f"client {wallet.client_id!r} already has a wallet")
            conn.execute(
                "INSERT INTO wallets (wallet_id, client_id, created_at, ejected_at) "
                "VALUES (?, ?, ?, ?)",
                (wallet.wallet_id, wallet.client_id, wallet.created_at, wallet.ejected_at),
            )
            for s in shares:
                self._checkpoint("store.add_wallet.share")
                conn.execute(
                    f"INSERT INTO signing_shares ({_SIGNING_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (s.wallet_id, s.curve, *_share_values(s)),
                )
            self._release(conn, lock)

    def _wallet(self, column: str, value: str) -> WalletRecord | None:
        # ``column`` is one of two constants below, never input.
        row = self.query_one(f"SELECT * FROM wallets WHERE {column} = ?", (value,))
        return None if row is None else record_from_row(WalletRecord, row)

    def get_wallet(self, wallet_id: str) -> WalletRecord | None:
        return self._wallet("wallet_id", wallet_id)

    def wallet_for_client(self, client_id: str) -> WalletRecord | None:
        return self._wallet("client_id", client_id)

    def signing_shares(self, wallet_id: str) -> dict[str, SigningShareRecord]:
        rows = self.query(
            f"SELECT {_SIGNING_COLUMNS} FROM signing_shares WHERE wallet_id = ? ORDER BY curve",
            (wallet_id,),
        )
        return {r["curve"]: record_from_row(SigningShareRecord, r) for r in rows}

    def replace_signing_shares(
        self,
        wallet_id: str,
        shares: Sequence[SigningShareRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            self._check_lock(conn, lock)
            self._end_session(conn, lock, end_session)
            for s in shares:
                self._checkpoint("store.replace_signing_shares.share")
                cur = conn.execute(
                    "UPDATE signing_shares SET share_id = ?, public_key = ?, "
                    "client_public_share = ?, custodian_public_share = ?, sealed_share = ?, "
                    "generation = ?, updated_at = ? WHERE wallet_id = ? AND curve = ?",
                    (*_share_values(s), wallet_id, s.curve),
                )
                if cur.rowcount != 1:
                    raise StoreError(f"wallet {wallet_id!r} has no {s.curve} signing share")
            self._release(conn, lock)

    def mark_ejected(self, wallet_id: str, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE wallets SET ejected_at = ? WHERE wallet_id = ?", (now, wallet_id))

    # -- locks ---------------------------------------------------------------------------

    def acquire_lock(
        self, client_id: str, owner: str, operation: str, now: float, ttl: float
    ) -> LockRecord:
        record = LockRecord(client_id, owner, operation, now, now + ttl)
        with self.transaction() as conn:
            # One statement: a lock that is free, expired or already the owner's is taken;
            # of two callers at once, the second waits for the first's row and then sees it.
            taken = conn.execute(
                "INSERT INTO locks (client_id, owner, operation, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET owner = "
                "excluded.owner, operation = excluded.operation, acquired_at = "
                "excluded.acquired_at, expires_at = excluded.expires_at "
                "WHERE locks.owner = excluded.owner OR locks.expires_at <= excluded.acquired_at "
                "RETURNING owner",
                (client_id, owner, operation, now, now + ttl),
            ).fetchone()
            if taken is None:
                # The conflicting row stays locked by this transaction: it is still there.
                row = conn.execute(
                    "SELECT operation, acquired_at FROM locks WHERE client_id = ?", (client_id,)
                ).fetchone()
                assert row is not None
                raise WalletModificationInProgress(
                    f"a {row['operation']} of this wallet is already in progress "
                    f"(started {max(0.0, now - row['acquired_at']):.0f} s ago); try again when "
                    "it has finished"
                )
        return record

    def get_lock(self, client_id: str) -> LockRecord | None:
        row = self.query_one("SELECT * FROM locks WHERE client_id = ?", (client_id,))
        return None if row is None else record_from_row(LockRecord, row)

    def release_lock(self, client_id: str, owner: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM locks WHERE client_id = ? AND owner = ?", (client_id, owner)
            )
            return cur.rowcount == 1

    # -- backups -------------------------------------------------------------------------

    def add_backup(
        self,
        backup: BackupRecord,
        pairs: Sequence[PairRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> list[PairRecord]:
        with self.transaction() as conn:
            self._lock_wallet(conn, backup.wallet_id)
            self._check_lock(conn, lock)
            self._end_session(conn, lock, end_session)
            stale = [
                _pair(r)
                for r in conn.execute(
                    f"SELECT {_PAIR_COLUMNS} FROM backup_pairs "
                    "WHERE wallet_id = ? AND method = ? AND backup_id NOT IN "
                    "(SELECT backup_id FROM backup_pairs WHERE wallet_id = ? "
                    "AND method = ? AND status = 'completed')",
                    (backup.wallet_id, backup.method, backup.wallet_id, backup.method),
                )
            ]
            for backup_id in sorted({p.backup_id for p in stale}):
                conn.execute("DELETE FROM backups WHERE backup_id = ?", (backup_id,))
            conn.execute(
                "INSERT INTO backups (backup_id, wallet_id, method, mode, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    backup.backup_id,
                    backup.wallet_id,
                    backup.method,
                    backup.mode.value,
                    backup.created_at,
                ),
            )
            for p in pairs:
                self._checkpoint("store.add_backup.pair")
                conn.execute(
                    f"INSERT INTO backup_pairs ({_PAIR_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        p.pair_id,
                        p.backup_id,
                        p.wallet_id,
                        p.method,
                        p.curve,
                        p.status.value,
                        p.public_key,
                        p.client_public_share,
                        p.custodian_public_share,
                        p.sealed_custodian_share,
                        p.created_at,
                        p.completed_at,
                    ),
                )
        return stale

    def get_backup(self, backup_id: str) -> BackupRecord | None:
        row = self.query_one("SELECT * FROM backups WHERE backup_id = ?", (backup_id,))
        return None if row is None else _backup(row)

    def backup_pairs(self, backup_id: str) -> list[PairRecord]:
        rows = self.query(
            f"SELECT {_PAIR_COLUMNS} FROM backup_pairs WHERE backup_id = ? ORDER BY curve",
            (backup_id,),
        )
        return [_pair(r) for r in rows]

    def wallet_pairs(self, wallet_id: str) -> list[PairRecord]:
        rows = self.query(
            f"SELECT {_PAIR_COLUMNS} FROM backup_pairs WHERE wallet_id = ? "
            "ORDER BY created_at, backup_id, curve",
            (wallet_id,),
        )
        return [_pair(r) for r in rows]

    def completed_backup(self, wallet_id: str, method: str) -> BackupRecord | None:
        rows = self.query(
            "SELECT * FROM backups WHERE backup_id IN (SELECT backup_id FROM backup_pairs "
            "WHERE wallet_id = ? AND method = ? AND status = 'completed')",
            (wallet_id, method),
        )
        if len(rows) > 1:  # the partial unique index makes this impossible
            raise StoreError(f"wallet {wallet_id!r} has {len(rows)} completed {method} backups")
        return _backup(rows[0]) if rows else None

    def _expect(self, conn: Connection, backup_id: str, expect: Collection[PairStatus]) -> None:
        """Holds the backup's wallet, then checks every pair is at one of ``expect``."""
        self._lock_backups_wallet(conn, backup_id)
        rows = conn.execute(
            "SELECT status FROM backup_pairs WHERE backup_id = ?", (backup_id,)
        ).fetchall()
        if not rows:
            raise NoValidBackup(f"no backup {backup_id!r} (never made, or replaced or discarded)")
        for status in (PairStatus(r["status"]) for r in rows):
            if status not in expect:
                wanted = " or ".join(str(s) for s in expect)
                raise NoValidBackup(f"backup {backup_id!r} is at status {status}, not {wanted}")

    def set_backup_status(
        self,
        backup_id: str,
        status: PairStatus,
        *,
        expect: Collection[PairStatus],
        release: LockRef | None = None,
    ) -> None:
        if status is PairStatus.COMPLETED:
            raise ValueError("use complete_backup() to complete a backup")
        with self.transaction() as conn:
            self._expect(conn, backup_id, expect)
            conn.execute(
                "UPDATE backup_pairs SET status = ? WHERE backup_id = ?",
                (PairStatus(status).value, backup_id),
            )
            self._release(conn, release)

    def store_cipher_text(self, backup_id: str, cipher_text: bytes, now: float) -> None:
        with self.transaction() as conn:
            self._expect(conn, backup_id, {PairStatus.STORED_CLIENT_BACKUP_SHARE_KEY})
            conn.execute(
                "INSERT INTO cipher_texts (backup_id, cipher_text, stored_at) "
                "VALUES (?, ?, ?) ON CONFLICT (backup_id) DO UPDATE SET "
                "cipher_text = excluded.cipher_text, stored_at = excluded.stored_at",
                (backup_id, bytes(cipher_text), now),
            )
            self._checkpoint("store.store_cipher_text.status")
            conn.execute(
                "UPDATE backup_pairs SET status = ? WHERE backup_id = ?",
                (PairStatus.STORED_CLIENT_BACKUP_SHARE.value, backup_id),
            )

    def cipher_text(self, backup_id: str) -> bytes | None:
        row = self.query_one(
            "SELECT cipher_text FROM cipher_texts WHERE backup_id = ?", (backup_id,)
        )
        return None if row is None else bytes(row["cipher_text"])

    def complete_backup(
        self, backup_id: str, now: float, *, release: LockRef | None = None
    ) -> list[PairRecord]:
        with self.transaction() as conn:
            self._expect(conn, backup_id, {PairStatus.STORED_CLIENT_BACKUP_SHARE})
            row = conn.execute("SELECT * FROM backups WHERE backup_id = ?", (backup_id,)).fetchone()
            assert row is not None  # it has pairs
            b = _backup(row)
            if (
                b.mode is BackupMode.CUSTODIAN
                and not conn.execute(
                    "SELECT 1 FROM cipher_texts WHERE backup_id = ?", (backup_id,)
                ).fetchone()
            ):
                raise NoValidBackup(f"backup {backup_id!r} has no cipher text at the custodian")
            replaced = [
                _pair(r)
                for r in conn.execute(
                    f"SELECT {_PAIR_COLUMNS} FROM backup_pairs "
                    "WHERE wallet_id = ? AND method = ? AND status = 'completed' "
                    "AND backup_id != ?",
                    (b.wallet_id, b.method, backup_id),
                )
            ]
            for old in sorted({p.backup_id for p in replaced}):
                conn.execute("DELETE FROM backups WHERE backup_id = ?", (old,))
                self._checkpoint("store.complete_backup.deleted_old")
            conn.execute(
                "UPDATE backup_pairs SET status = 'completed', completed_at = ? "
                "WHERE backup_id = ?",
                (now, backup_id),
            )
            self._checkpoint("store.complete_backup.marked")
            self._release(conn, release)
        return replaced

    def delete_backup(self, backup_id: str, *, unfinished_only: bool = True) -> list[PairRecord]:
        with self.transaction() as conn:
            self._lock_backups_wallet(conn, backup_id)
            pairs = [
                _pair(r)
                for r in conn.execute(
                    f"SELECT {_PAIR_COLUMNS} FROM backup_pairs WHERE backup_id = ?",
                    (backup_id,),
                )
            ]
            if unfinished_only and any(p.status is PairStatus.COMPLETED for p in pairs):
                return []
            conn.execute("DELETE FROM backups WHERE backup_id = ?", (backup_id,))
        return pairs

    # -- protocol sessions ---------------------------------------------------------------

    def add_session(self, session: SessionRecord, *, lock: LockRef) -> None:
        with self.transaction() as conn:
            self._check_lock(conn, lock)
            cur = conn.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id) DO NOTHING",
                (
                    session.session_id,
                    session.client_id,
                    session.wallet_id,
                    session.operation,
                    session.method,
                    SessionStage(session.stage).value,
                    _json(session.share_ids),
                    _json(session.generations),
                    _blobs_json(session.sealed_states),
                    _blobs_json(session.client_commitments),
                    session.created_at,
                    session.expires_at,
                ),
            )
            if cur.rowcount != 1:
                raise StoreError(f"session {session.session_id!r} already exists")

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self.query_one(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?",
            (session_id,),
        )
        return None if row is None else _session(row)

    def advance_session(
        self,
        session_id: str,
        *,
        client_id: str,
        expect: SessionStage,
        stage: SessionStage,
        now: float,
        client_commitments: Mapping[str, bytes] | None = None,
    ) -> bool:
        # One UPDATE whose WHERE is the comparison: a second caller waits for the first's
        # row, then evaluates the WHERE again on what the first committed, and finds it moved.
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE sessions SET stage = ?, "
                f"client_commitments = COALESCE({self._json_param}, client_commitments) "
                "WHERE session_id = ? AND client_id = ? AND stage = ? AND expires_at > ?",
                (
                    SessionStage(stage).value,
                    None if client_commitments is None else _blobs_json(client_commitments),
                    session_id,
                    client_id,
                    SessionStage(expect).value,
                    now,
                ),
            )
            return cur.rowcount == 1

    def delete_session(
        self, session_id: str, *, client_id: str | None = None
    ) -> SessionRecord | None:
        with self.transaction() as conn:
            row = conn.execute(
                "DELETE FROM sessions WHERE session_id = ? "
                f"AND (CAST(? AS TEXT) IS NULL OR client_id = ?) RETURNING {_SESSION_COLUMNS}",
                (session_id, client_id, client_id),
            ).fetchone()
        return None if row is None else _session(row)

    def expired_sessions(self, now: float, *, client_id: str | None = None) -> list[SessionRecord]:
        rows = self.query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE expires_at <= ? "
            "AND (CAST(? AS TEXT) IS NULL OR client_id = ?) ORDER BY expires_at, session_id",
            (now, client_id, client_id),
        )
        return [_session(r) for r in rows]

    def delete_expired_sessions(
        self, now: float, *, client_id: str | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        with self.transaction() as conn:
            # Held as they are read: of two sweeps at once, each deletes (and returns for
            # clean-up) sessions the other does not.
            bounded = () if limit is None else (limit,)
            rows = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE expires_at <= ? "
                "AND (CAST(? AS TEXT) IS NULL OR client_id = ?) ORDER BY expires_at, session_id"
                + " LIMIT ?" * len(bounded)
                + self.for_update,
                (now, client_id, client_id, *bounded),
            ).fetchall()
            for r in rows:
                self._checkpoint("store.delete_expired_sessions.session")
                conn.execute("DELETE FROM sessions WHERE session_id = ?", (r["session_id"],))
        return [_session(r) for r in rows]

    # -- eject ---------------------------------------------------------------------------

    def authorize_eject(self, wallet_id: str, now: float, expires_at: float) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO eject_windows (wallet_id, authorized_at, expires_at) "
                "VALUES (?, ?, ?) ON CONFLICT (wallet_id) DO UPDATE SET "
                "authorized_at = excluded.authorized_at, expires_at = excluded.expires_at",
                (wallet_id, now, expires_at),
            )

    def take_eject_window(self, wallet_id: str) -> EjectWindow | None:
        # Used or expired, the window is gone: of two ejects at once, one gets it.
        with self.transaction() as conn:
            row = conn.execute(
                "DELETE FROM eject_windows WHERE wallet_id = ? "
                "RETURNING wallet_id, authorized_at, expires_at",
                (wallet_id,),
            ).fetchone()
        return None if row is None else record_from_row(EjectWindow, row)

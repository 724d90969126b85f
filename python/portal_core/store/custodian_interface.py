"""The interface every custodian store implements (SQLite here; PostgreSQL later).

Every method that changes more than one row runs in one transaction: after a crash the
store holds the state from before the call or from after it, never a mix. Times are
passed in by the caller (seconds since the epoch), so the store has no clock of its own
and tests can move time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from portal_core.exceptions import PortalError
from portal_core.store.custodian_records import (
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

__all__ = ["CustodianStore", "LockRef", "StoreError"]


class StoreError(PortalError):
    """The store cannot serve the call: a schema newer than this build, a broken database,
    or a record that would break a uniqueness rule."""


# (client_id, owner) of a modification lock that a call must hold and then releases.
LockRef = tuple[str, str]


@runtime_checkable
class CustodianStore(Protocol):
    """Durable custodian records: clients, wallets, signing shares, backups and their pairs,
    cipher texts, eject windows, in-progress locks and protocol sessions.

    Raises (every method): :class:`StoreError` when the database fails.
    """

    @property
    def schema_version(self) -> int:
        """The schema version the store is at (the newest migration applied)."""
        ...

    def close(self) -> None:
        """Closes the connections; further calls raise :class:`StoreError`."""
        ...

    # -- clients and wallets -------------------------------------------------------------

    def add_client(self, client_id: str, now: float) -> ClientRecord:
        """Records a new client. Raises StoreError if the id exists."""
        ...

    def get_client(self, client_id: str) -> ClientRecord | None: ...

    def add_wallet(
        self,
        wallet: WalletRecord,
        shares: Sequence[SigningShareRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> None:
        """Records a wallet with its signing shares and releases ``lock``, in one transaction;
        with ``end_session``, that session (the key generation that made the shares) is
        deleted in the same transaction.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner, or
                ``end_session`` is no longer a session of the lock's client at stage
                ``finishing`` (it was aborted, or expired and was ended).
            WalletAlreadyExists: the client already has a wallet.
        """
        ...

    def get_wallet(self, wallet_id: str) -> WalletRecord | None: ...

    def wallet_for_client(self, client_id: str) -> WalletRecord | None: ...

    def signing_shares(self, wallet_id: str) -> dict[str, SigningShareRecord]:
        """The wallet's current signing share records, by curve."""
        ...

    def replace_signing_shares(
        self,
        wallet_id: str,
        shares: Sequence[SigningShareRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> None:
        """Replaces the signing shares of the curves given (a recovery) and releases ``lock``,
        in one transaction; ``end_session`` as in :meth:`add_wallet`.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner, or
                ``end_session`` is not at stage ``finishing`` any more.
        """
        ...

    def mark_ejected(self, wallet_id: str, now: float) -> None: ...

    # -- locks ---------------------------------------------------------------------------

    def acquire_lock(
        self, client_id: str, owner: str, operation: str, now: float, ttl: float
    ) -> LockRecord:
        """Takes the client's wallet modification lock (an expired lock is taken over).

        Raises:
            WalletModificationInProgress: another owner holds an unexpired lock.
        """
        ...

    def get_lock(self, client_id: str) -> LockRecord | None: ...

    def release_lock(self, client_id: str, owner: str) -> bool:
        """Releases the lock if ``owner`` holds it; returns whether it did."""
        ...

    # -- backups -------------------------------------------------------------------------

    def add_backup(
        self,
        backup: BackupRecord,
        pairs: Sequence[PairRecord],
        *,
        lock: LockRef,
        end_session: str | None = None,
    ) -> list[PairRecord]:
        """Records a backup and its pairs (status ``incomplete``), and deletes the unfinished
        backups of the same wallet and method (left by a crash or abandoned), in one
        transaction. Returns the pairs deleted. ``lock`` must be held; it stays held.
        ``end_session`` as in :meth:`add_wallet`.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner, or
                ``end_session`` is not at stage ``finishing`` any more.
        """
        ...

    def get_backup(self, backup_id: str) -> BackupRecord | None: ...

    def backup_pairs(self, backup_id: str) -> list[PairRecord]:
        """The backup's pairs, ordered by curve name."""
        ...

    def wallet_pairs(self, wallet_id: str) -> list[PairRecord]:
        """Every pair of the wallet, oldest backup first."""
        ...

    def completed_backup(self, wallet_id: str, method: str) -> BackupRecord | None:
        """The method's completed backup, if any (there is at most one)."""
        ...

    def set_backup_status(
        self,
        backup_id: str,
        status: PairStatus,
        *,
        expect: Collection[PairStatus],
        release: LockRef | None = None,
    ) -> None:
        """Moves every pair of the backup to ``status`` (not ``completed``: see
        :meth:`complete_backup`), optionally releasing a lock, in one transaction.

        Raises:
            NoValidBackup: no such backup, or a pair is not in one of the ``expect`` statuses.
        """
        ...

    def store_cipher_text(self, backup_id: str, cipher_text: bytes, now: float) -> None:
        """Keeps the client's cipher text and moves the pairs from
        ``STORED_CLIENT_BACKUP_SHARE_KEY`` to ``STORED_CLIENT_BACKUP_SHARE``, in one transaction.

        Raises:
            NoValidBackup: no such backup, or its pairs are not at
                ``STORED_CLIENT_BACKUP_SHARE_KEY``.
        """
        ...

    def cipher_text(self, backup_id: str) -> bytes | None: ...

    def complete_backup(
        self, backup_id: str, now: float, *, release: LockRef | None = None
    ) -> list[PairRecord]:
        """Marks the backup's pairs ``completed`` and deletes the method's previous completed
        backup (pairs, sealed shares and cipher text), in one transaction. Returns the pairs
        deleted.

        Raises:
            NoValidBackup: no such backup, or its pairs are not at
                ``STORED_CLIENT_BACKUP_SHARE``.
        """
        ...

    def delete_backup(self, backup_id: str, *, unfinished_only: bool = True) -> list[PairRecord]:
        """Deletes a backup (only if none of its pairs is completed, by default) with its
        pairs and cipher text; returns the pairs deleted (none if it did not delete)."""
        ...

    # -- protocol sessions ---------------------------------------------------------------

    def add_session(self, session: SessionRecord, *, lock: LockRef) -> None:
        """Records a new session. ``lock`` (the client's wallet lock, owned by the session)
        must be held; it stays held.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner.
            StoreError: a session with this id exists.
        """
        ...

    def get_session(self, session_id: str) -> SessionRecord | None: ...

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
        """Compare-and-set, in one transaction: moves the client's session from ``expect``
        to ``stage`` if it is there and has not expired at ``now``, recording
        ``client_commitments`` if given. Returns whether it moved it: of two calls that
        expect the same stage, one alone does.
        """
        ...

    def delete_session(
        self, session_id: str, *, client_id: str | None = None
    ) -> SessionRecord | None:
        """Deletes the session (only if it is ``client_id``'s, when given) and returns it,
        or None if there was none to delete: of two callers ending a session, one alone gets
        it, and does its clean-up (unfinished backup, lock)."""
        ...

    def expired_sessions(self, now: float, *, client_id: str | None = None) -> list[SessionRecord]:
        """The sessions expired at ``now`` (expiry at or before it), of ``client_id`` only
        if given, oldest expiry first."""
        ...

    def delete_expired_sessions(
        self, now: float, *, client_id: str | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        """Deletes, in one transaction, the sessions :meth:`expired_sessions` lists (at most
        ``limit``, oldest expiry first) and returns them: the caller owns their clean-up."""
        ...

    # -- eject ---------------------------------------------------------------------------

    def authorize_eject(self, wallet_id: str, now: float, expires_at: float) -> None:
        """Opens (or re-opens) the wallet's eject window until ``expires_at``."""
        ...

    def take_eject_window(self, wallet_id: str) -> EjectWindow | None:
        """Removes and returns the wallet's eject window (open or expired), if any: a window
        serves one eject, and the caller decides from ``expires_at`` whether it was open."""
        ...

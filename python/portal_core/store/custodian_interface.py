"""The interface every custodian store implements (SQLite here; PostgreSQL later).

Every method that changes more than one row runs in one transaction: after a crash the
store holds the state from before the call or from after it, never a mix. Times are
passed in by the caller (seconds since the epoch), so the store has no clock of its own
and tests can move time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from portal_core.exceptions import PortalError
from portal_core.store.custodian_records import (
    BackupRecord,
    ClientRecord,
    EjectWindow,
    LockRecord,
    PairRecord,
    PairStatus,
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
    cipher texts, eject windows and in-progress locks.

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
        self, wallet: WalletRecord, shares: Sequence[SigningShareRecord], *, lock: LockRef
    ) -> None:
        """Records a wallet with its signing shares and releases ``lock``, in one transaction.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner.
            WalletAlreadyExists: the client already has a wallet.
        """
        ...

    def get_wallet(self, wallet_id: str) -> WalletRecord | None: ...

    def wallet_for_client(self, client_id: str) -> WalletRecord | None: ...

    def signing_shares(self, wallet_id: str) -> dict[str, SigningShareRecord]:
        """The wallet's current signing share records, by curve."""
        ...

    def replace_signing_shares(
        self, wallet_id: str, shares: Sequence[SigningShareRecord], *, lock: LockRef
    ) -> None:
        """Replaces the signing shares of the curves given (a recovery) and releases ``lock``,
        in one transaction.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner.
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
        self, backup: BackupRecord, pairs: Sequence[PairRecord], *, lock: LockRef
    ) -> list[PairRecord]:
        """Records a backup and its pairs (status ``incomplete``), and deletes the unfinished
        backups of the same wallet and method (left by a crash or abandoned), in one
        transaction. Returns the pairs deleted. ``lock`` must be held; it stays held.

        Raises:
            WalletModificationInProgress: ``lock`` is no longer held by its owner.
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

    # -- eject ---------------------------------------------------------------------------

    def authorize_eject(self, wallet_id: str, now: float, expires_at: float) -> None:
        """Opens (or re-opens) the wallet's eject window until ``expires_at``."""
        ...

    def take_eject_window(self, wallet_id: str) -> EjectWindow | None:
        """Removes and returns the wallet's eject window (open or expired), if any: a window
        serves one eject, and the caller decides from ``expires_at`` whether it was open."""
        ...

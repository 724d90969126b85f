"""The enclave store on SQLite (the standard library's ``sqlite3``): an
:class:`~portal_core.enclave.store.EnclaveStore` holding the records of
:mod:`portal_core.enclave.records`.

* WAL journal, ``synchronous=FULL`` (a committed transaction, a spent vault try among
  them, survives a crash or power loss), foreign keys on, ``secure_delete`` on (deleted
  content is overwritten with zeros, not left in free pages), a busy timeout so writers
  from other threads and processes wait their turn.
* One connection per thread. Every change runs in a ``BEGIN IMMEDIATE`` transaction: the
  write lock is taken before the first read, so read-check-write sequences (a challenge
  taken, a vault try spent) cannot interleave, across threads or processes.
* Its own tables, all named ``enclave_*``, and its own schema history
  (:mod:`portal_core.store.enclave_migrations`, recorded in ``enclave_schema_version``):
  it can share a database file with the custodian store without touching that store's
  tables or migrations. A new database file is created mode 0600.

The connections, transactions and file handling are :class:`~portal_core.store.database.
SqliteDatabase`'s; this module holds the enclave's SQL. Import :class:`SqliteEnclaveStore`
from :mod:`portal_core.enclave`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from contextlib import suppress

from portal_core.enclave.errors import CredentialAlreadyRegistered, EnclaveStoreError
from portal_core.enclave.records import (
    Ceremony,
    ChallengeRecord,
    CredentialRecord,
    KeyMode,
    KeyRecord,
    LoginOperation,
    UserRecord,
    VaultRecord,
)
from portal_core.store.database import Migration, SqliteDatabase
from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS
from portal_core.store.rows import record_from_row

__all__ = ["SqliteEnclaveStore"]

# The column lists, in each record's field order (constants: the only text interpolated
# into this module's SQL).
_USER_COLUMNS = "user_id, user_handle, created_at"
_CREDENTIAL_COLUMNS = (
    "credential_id, user_id, public_key, alg, sign_count, aaguid, fmt, transports, "
    "backup_eligible, backed_up, prf_salt, prf_enabled, created_at, last_used_at"
)
_VAULT_COLUMNS = (
    "slot, owner, sealed, tries_left, max_tries, generation, created_at, updated_at, "
    "destroyed_at, params"
)
_CHALLENGE_COLUMNS = "challenge_hash, user_id, ceremony, created_at, expires_at, operation, slot"
_KEY_COLUMNS = "user_id, credential_id, slot, mode, sealed, created_at, updated_at"
# A record of the caller, or one written before owners existed and not yet claimed.
_OWNED = "slot = ? AND owner IN (?, '')"


# The records read in several places, with the converters of the columns SQL cannot hold
# as the record does (transports as a JSON list, flags as INTEGER 0 or 1).
def _credential(row: sqlite3.Row) -> CredentialRecord:
    return record_from_row(
        CredentialRecord,
        row,
        transports=lambda text: tuple(json.loads(text)),
        backup_eligible=bool,
        backed_up=bool,
        prf_enabled=bool,
    )


def _vault(row: sqlite3.Row) -> VaultRecord:
    return record_from_row(VaultRecord, row)


class SqliteEnclaveStore(SqliteDatabase):
    """An :class:`~portal_core.enclave.store.EnclaveStore` in one SQLite file.

    ``path``: the database file (created if missing; it may be the custodian store's
    file). ``timeout``: seconds a writer waits for another's transaction before failing.
    ``migrations``: the schema history (tests pass a longer one to exercise an upgrade).

    Raises:
        EnclaveStoreError: the file cannot be opened, or its enclave schema is newer than
            this build.
    """

    what = "enclave store"
    version_table = "enclave_schema_version"
    error = EnclaveStoreError
    # Deleted content (a destroyed vault secret) is overwritten with zeros, not left in
    # free pages.
    pragmas = ("PRAGMA secure_delete = ON",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        migrations: Sequence[Migration] = ENCLAVE_MIGRATIONS,
    ) -> None:
        super().__init__(path, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"SqliteEnclaveStore({self.path!r})"

    def _scrub_journal(self) -> None:
        """Best effort, after a secret was deleted: copy the WAL into the database file and
        truncate the WAL, so the old page images that held the secret leave both files
        (``secure_delete`` already zeroed it in the new ones). Another connection reading
        at this moment can keep the WAL from being truncated; the next scrub gets it. The
        deletion is committed by then, so a failure here is not the caller's."""
        with suppress(EnclaveStoreError):
            self.truncate_wal()

    # -- users ----------------------------------------------------------------------------

    def ensure_user(self, user_id: str, user_handle: bytes, now: float) -> UserRecord:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO enclave_users (user_id, user_handle, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO NOTHING",
                (user_id, user_handle, now),
            )
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM enclave_users WHERE user_id = ?", (user_id,)
            ).fetchone()
        return record_from_row(UserRecord, row)

    def get_user(self, user_id: str) -> UserRecord | None:
        row = self.query_one(
            f"SELECT {_USER_COLUMNS} FROM enclave_users WHERE user_id = ?", (user_id,)
        )
        return None if row is None else record_from_row(UserRecord, row)

    # -- challenges -----------------------------------------------------------------------

    def add_challenge(self, record: ChallengeRecord, *, purge_before: float) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM enclave_challenges WHERE expires_at < ?", (purge_before,))
            conn.execute(
                f"INSERT INTO enclave_challenges ({_CHALLENGE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.challenge_hash,
                    record.user_id,
                    record.ceremony.value,
                    record.created_at,
                    record.expires_at,
                    None if record.operation is None else LoginOperation(record.operation).value,
                    record.slot,
                ),
            )

    def take_challenge(self, challenge_hash: bytes) -> ChallengeRecord | None:
        # One DELETE ... RETURNING under the write lock: of two finishes racing for the
        # same challenge, exactly one gets the row.
        with self.transaction() as conn:
            row = conn.execute(
                f"DELETE FROM enclave_challenges WHERE challenge_hash = ? "
                f"RETURNING {_CHALLENGE_COLUMNS}",
                (challenge_hash,),
            ).fetchone()
        if row is None:
            return None
        return record_from_row(ChallengeRecord, row, ceremony=Ceremony, operation=LoginOperation)

    # -- credentials ----------------------------------------------------------------------

    def add_credential(self, record: CredentialRecord) -> None:
        with self.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM enclave_credentials WHERE credential_id = ?",
                (record.credential_id,),
            ).fetchone():
                raise CredentialAlreadyRegistered(
                    "this credential id is already registered; a credential is registered "
                    "once, to one user"
                )
            conn.execute(
                f"INSERT INTO enclave_credentials ({_CREDENTIAL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.credential_id,
                    record.user_id,
                    record.public_key,
                    record.alg,
                    record.sign_count,
                    record.aaguid,
                    record.fmt,
                    json.dumps(list(record.transports)),
                    int(record.backup_eligible),
                    int(record.backed_up),
                    record.prf_salt,
                    int(record.prf_enabled),
                    record.created_at,
                    record.last_used_at,
                ),
            )

    def get_credential(self, credential_id: bytes) -> CredentialRecord | None:
        row = self.query_one(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM enclave_credentials WHERE credential_id = ?",
            (credential_id,),
        )
        return None if row is None else _credential(row)

    def list_credentials(self, user_id: str) -> list[CredentialRecord]:
        rows = self.query(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM enclave_credentials WHERE user_id = ? "
            "ORDER BY created_at, credential_id",
            (user_id,),
        )
        return [_credential(r) for r in rows]

    def update_sign_count(
        self, credential_id: bytes, *, expected: int, new: int, backed_up: bool, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_credentials SET sign_count = ?, backed_up = ?, last_used_at = ? "
                "WHERE credential_id = ? AND sign_count = ?",
                (new, int(backed_up), now, credential_id, expected),
            )
            return cur.rowcount == 1

    def delete_credential(self, user_id: str, credential_id: bytes) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM enclave_credentials WHERE credential_id = ? AND user_id = ?",
                (credential_id, user_id),
            )
            deleted = cur.rowcount == 1
        if deleted:
            self._scrub_journal()
        return deleted

    # -- passkey-gated keys ---------------------------------------------------------------

    def put_key(self, record: KeyRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO enclave_keys ({_KEY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (user_id, credential_id, slot) DO UPDATE SET "
                "mode = excluded.mode, sealed = excluded.sealed, updated_at = excluded.updated_at",
                (
                    record.user_id,
                    record.credential_id,
                    record.slot,
                    record.mode.value,
                    record.sealed,
                    record.created_at,
                    record.updated_at,
                ),
            )

    def get_key(self, user_id: str, credential_id: bytes, slot: str) -> KeyRecord | None:
        row = self.query_one(
            f"SELECT {_KEY_COLUMNS} FROM enclave_keys "
            "WHERE user_id = ? AND credential_id = ? AND slot = ?",
            (user_id, credential_id, slot),
        )
        return None if row is None else record_from_row(KeyRecord, row, mode=KeyMode)

    def delete_keys(self, user_id: str, slot: str) -> int:
        with self.transaction() as conn:
            count = conn.execute(
                "DELETE FROM enclave_keys WHERE user_id = ? AND slot = ?", (user_id, slot)
            ).rowcount
        if count:
            self._scrub_journal()
        return count

    # -- the guess-limited vault ----------------------------------------------------------

    def vault_create(self, record: VaultRecord) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO enclave_vault ({_VAULT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (slot) DO NOTHING",
                (
                    record.slot,
                    record.owner,
                    record.sealed,
                    record.tries_left,
                    record.max_tries,
                    record.generation,
                    record.created_at,
                    record.updated_at,
                    record.destroyed_at,
                    bytes(record.params),
                ),
            )
            return cur.rowcount == 1

    def vault_get(self, slot: str) -> VaultRecord | None:
        row = self.query_one(f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE slot = ?", (slot,))
        return None if row is None else _vault(row)

    def vault_take_try(self, slot: str, owner: str, now: float) -> VaultRecord | None:
        destroyed = False
        # BEGIN IMMEDIATE takes the write lock before the read: concurrent tries, from any
        # thread or process, run one after another, each seeing the previous decrement.
        # The owner is part of the lookup, in the same transaction: a caller who is not
        # the owner finds no row, and so can neither spend a try nor destroy the secret.
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE {_OWNED}", (slot, owner)
            ).fetchone()
            if row is None or row["sealed"] is None:
                return None if row is None else _vault(row)
            if row["tries_left"] <= 0:
                # The last try was spent and never evaluated (a crash, or a concurrent
                # evaluation still running): nothing may be released any more.
                conn.execute(
                    "UPDATE enclave_vault SET sealed = NULL, destroyed_at = ?, updated_at = ? "
                    "WHERE slot = ?",
                    (now, now, slot),
                )
                destroyed = True
            else:
                conn.execute(
                    "UPDATE enclave_vault SET tries_left = tries_left - 1, updated_at = ? "
                    "WHERE slot = ?",
                    (now, slot),
                )
            row = conn.execute(
                f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE slot = ?", (slot,)
            ).fetchone()
        if destroyed:
            self._scrub_journal()
        return _vault(row)

    def vault_reset_tries(self, slot: str, generation: int, now: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET tries_left = max_tries, updated_at = ? "
                "WHERE slot = ? AND generation = ? AND sealed IS NOT NULL",
                (now, slot, generation),
            )
            return cur.rowcount == 1

    def vault_claim(
        self, slot: str, owner: str, generation: int, sealed: bytes, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET owner = ?, sealed = ?, tries_left = max_tries, "
                "generation = generation + 1, updated_at = ? "
                "WHERE slot = ? AND owner = '' AND generation = ? AND sealed IS NOT NULL",
                (owner, sealed, now, slot, generation),
            )
            done = cur.rowcount == 1
        if done:
            self._scrub_journal()
        return done

    def vault_destroy(self, slot: str, generation: int, now: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET sealed = NULL, tries_left = 0, destroyed_at = ?, "
                "updated_at = ? WHERE slot = ? AND generation = ? AND sealed IS NOT NULL",
                (now, now, slot, generation),
            )
            done = cur.rowcount == 1
        if done:
            self._scrub_journal()
        return done

    def vault_replace(
        self, slot: str, owner: str, generation: int, sealed: bytes, max_tries: int, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET sealed = ?, tries_left = ?, max_tries = ?, "
                "generation = generation + 1, updated_at = ? "
                "WHERE slot = ? AND owner = ? AND generation = ? AND sealed IS NOT NULL",
                (sealed, max_tries, max_tries, now, slot, owner, generation),
            )
            done = cur.rowcount == 1
        if done:
            self._scrub_journal()
        return done

    def vault_delete(self, slot: str, owner: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(f"DELETE FROM enclave_vault WHERE {_OWNED}", (slot, owner))
            done = cur.rowcount == 1
        if done:
            self._scrub_journal()
        return done

"""The enclave store's tables, written once for both engines: the
:class:`~portal_core.enclave.store.EnclaveStore` methods over the records of
:mod:`portal_core.enclave.records`, in tables all named ``enclave_*`` with their own schema
history (``enclave_schema_version``), so they can share a database with the custodian's.

A base class of :class:`~portal_core.store.enclave_sqlite.SqliteEnclaveStore` and of
:class:`~portal_core.store.postgres.PostgresEnclaveStore`. The two operations that carry
the enclave's security:

* :meth:`EnclaveTables.take_challenge` is one ``DELETE ... RETURNING``: of two finishes of
  one ceremony, one gets the row.
* :meth:`EnclaveTables.vault_take_try` holds the owner's vault row (``self.for_update``,
  see :mod:`portal_core.store.portable`) before it reads the counter: tries from every
  thread, process (and machine, on PostgreSQL) are spent one after another, each seeing the
  previous decrement, and each is committed before the caller evaluates it.

After a secret is deleted, :meth:`EnclaveTables._scrub_journal` lets an engine clear the
old copies it keeps (SQLite's WAL); PostgreSQL has no counterpart (see its module).
"""

from __future__ import annotations

import json
from typing import Any

from portal_core.enclave.errors import CredentialAlreadyRegistered
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
from portal_core.store.portable import PortableTables
from portal_core.store.rows import record_from_row

__all__ = ["EnclaveTables"]

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
def _credential(row: Any) -> CredentialRecord:
    return record_from_row(
        CredentialRecord,
        row,
        transports=lambda text: tuple(json.loads(text)),
        backup_eligible=bool,
        backed_up=bool,
        prf_enabled=bool,
    )


def _vault(row: Any) -> VaultRecord:
    return record_from_row(VaultRecord, row)


class EnclaveTables(PortableTables):
    """The :class:`~portal_core.enclave.store.EnclaveStore` methods (see the module's
    docstring)."""

    def _scrub_journal(self) -> None:
        """After a secret was deleted (and committed): nothing to do here (SQLite's store
        clears its WAL)."""

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
                    record.backup_eligible,
                    record.backed_up,
                    record.prf_salt,
                    record.prf_enabled,
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
                (new, backed_up, now, credential_id, expected),
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
        # The vault row is held before the counter is read (the whole database on SQLite,
        # the row on PostgreSQL): concurrent tries, from any thread or process, run one
        # after another, each seeing the previous decrement. The owner is part of the
        # lookup, in the same transaction: a caller who is not the owner finds no row, and
        # so can neither spend a try nor destroy the secret.
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE {_OWNED}" + self.for_update,
                (slot, owner),
            ).fetchone()
            if row is None or row["sealed"] is None:
                return None if row is None else _vault(row)
            destroyed = row["tries_left"] <= 0
            if destroyed:
                # The last try was spent and never evaluated (a crash, or a concurrent
                # evaluation still running): nothing may be released any more.
                sql = "sealed = NULL, destroyed_at = ?, updated_at = ?"
                params: tuple[object, ...] = (now, now, slot)
            else:
                sql = "tries_left = tries_left - 1, updated_at = ?"
                params = (now, slot)
            row = conn.execute(
                f"UPDATE enclave_vault SET {sql} WHERE slot = ? RETURNING {_VAULT_COLUMNS}",
                params,
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

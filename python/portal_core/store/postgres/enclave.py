"""The enclave store on PostgreSQL: an :class:`~portal_core.enclave.store.EnclaveStore`
beside the custodian's tables in the same database, with its own schema history
(``enclave_schema_version``), as :class:`~portal_core.store.enclave_sqlite.SqliteEnclaveStore`
shares the custodian's file. Column lists and row converters are that store's.

The two operations that carry the enclave's security, on PostgreSQL:

* :meth:`PostgresEnclaveStore.take_challenge` is one ``DELETE ... RETURNING``: of two
  finishes of one ceremony, one gets the row.
* :meth:`PostgresEnclaveStore.vault_take_try` locks the owner's vault row
  (``SELECT ... FOR UPDATE``) before it reads the counter: tries from every thread,
  process and machine are spent one after another, each seeing the previous decrement,
  and each is committed before the caller evaluates it.

What SQLite's ``secure_delete`` and WAL truncation do for a destroyed secret has no
counterpart here: a deleted or overwritten row stays in the table's pages until VACUUM
reuses them, and in the write-ahead log and its archives until they are recycled. The
values are KMS-sealed blobs, useless without the HSM; the database's files, backups and
archives must be kept as private as the HSM's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

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
from portal_core.store.database import Migration
from portal_core.store.enclave_sqlite import (
    _CHALLENGE_COLUMNS,
    _CREDENTIAL_COLUMNS,
    _KEY_COLUMNS,
    _USER_COLUMNS,
    _VAULT_COLUMNS,
    _credential,
    _vault,
)
from portal_core.store.postgres.database import DEFAULT_POOL_SIZE, PostgresDatabase
from portal_core.store.postgres.migrations import ENCLAVE_MIGRATIONS
from portal_core.store.rows import record_from_row

__all__ = ["PostgresEnclaveStore"]

# A record of the caller, or one written before owners existed and not yet claimed.
_OWNED = "slot = %s AND owner IN (%s, '')"


class PostgresEnclaveStore(PostgresDatabase):
    """An :class:`~portal_core.enclave.store.EnclaveStore` in one PostgreSQL database (it
    may be the custodian store's). ``dsn``, ``pool_size``, ``timeout``, ``migrations``: as
    :class:`~portal_core.store.postgres.PostgresStore`'s.

    Raises:
        EnclaveStoreError: the database cannot be reached, or its enclave schema is newer
            than this build.
    """

    what = "enclave store"
    version_table = "enclave_schema_version"
    error = EnclaveStoreError

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = 30.0,
        migrations: Sequence[Migration] = ENCLAVE_MIGRATIONS,
    ) -> None:
        super().__init__(dsn, pool_size=pool_size, timeout=timeout, migrations=migrations)

    def __repr__(self) -> str:
        return f"PostgresEnclaveStore({self.where!r})"

    # -- users ----------------------------------------------------------------------------

    def ensure_user(self, user_id: str, user_handle: bytes, now: float) -> UserRecord:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO enclave_users (user_id, user_handle, created_at) "
                "VALUES (%s, %s, %s) ON CONFLICT (user_id) DO NOTHING",
                (user_id, user_handle, now),
            )
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM enclave_users WHERE user_id = %s",
                (user_id,),
            ).fetchone()
        assert row is not None
        return record_from_row(UserRecord, row)

    def get_user(self, user_id: str) -> UserRecord | None:
        row = self.query_one(
            f"SELECT {_USER_COLUMNS} FROM enclave_users WHERE user_id = %s",
            (user_id,),
        )
        return None if row is None else record_from_row(UserRecord, row)

    # -- challenges -----------------------------------------------------------------------

    def add_challenge(self, record: ChallengeRecord, *, purge_before: float) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM enclave_challenges WHERE expires_at < %s", (purge_before,))
            conn.execute(
                f"INSERT INTO enclave_challenges ({_CHALLENGE_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
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
        with self.transaction() as conn:
            row = conn.execute(
                "DELETE FROM enclave_challenges WHERE challenge_hash = %s "
                f"RETURNING {_CHALLENGE_COLUMNS}",
                (challenge_hash,),
            ).fetchone()
        if row is None:
            return None
        return record_from_row(ChallengeRecord, row, ceremony=Ceremony, operation=LoginOperation)

    # -- credentials ----------------------------------------------------------------------

    def add_credential(self, record: CredentialRecord) -> None:
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO enclave_credentials ({_CREDENTIAL_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (credential_id) DO NOTHING",
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
            if cur.rowcount != 1:
                raise CredentialAlreadyRegistered(
                    "this credential id is already registered; a credential is registered "
                    "once, to one user"
                )

    def get_credential(self, credential_id: bytes) -> CredentialRecord | None:
        row = self.query_one(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM enclave_credentials WHERE credential_id = %s",
            (credential_id,),
        )
        return None if row is None else _credential(row)

    def list_credentials(self, user_id: str) -> list[CredentialRecord]:
        rows = self.query(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM enclave_credentials WHERE user_id = %s "
            "ORDER BY created_at, credential_id",
            (user_id,),
        )
        return [_credential(r) for r in rows]

    def update_sign_count(
        self, credential_id: bytes, *, expected: int, new: int, backed_up: bool, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_credentials SET sign_count = %s, backed_up = %s, "
                "last_used_at = %s WHERE credential_id = %s AND sign_count = %s",
                (new, backed_up, now, credential_id, expected),
            )
            return cur.rowcount == 1

    def delete_credential(self, user_id: str, credential_id: bytes) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM enclave_credentials WHERE credential_id = %s AND user_id = %s",
                (credential_id, user_id),
            )
            return cur.rowcount == 1

    # -- passkey-gated keys ---------------------------------------------------------------

    def put_key(self, record: KeyRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO enclave_keys ({_KEY_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) "
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
            "WHERE user_id = %s AND credential_id = %s AND slot = %s",
            (user_id, credential_id, slot),
        )
        return None if row is None else record_from_row(KeyRecord, row, mode=KeyMode)

    def delete_keys(self, user_id: str, slot: str) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM enclave_keys WHERE user_id = %s AND slot = %s", (user_id, slot)
            ).rowcount

    # -- the guess-limited vault ----------------------------------------------------------

    def vault_create(self, record: VaultRecord) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO enclave_vault ({_VAULT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (slot) DO NOTHING",
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
        row = self.query_one(
            f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE slot = %s",
            (slot,),
        )
        return None if row is None else _vault(row)

    def vault_take_try(self, slot: str, owner: str, now: float) -> VaultRecord | None:
        # The row lock is taken before the counter is read: a concurrent try waits for this
        # transaction's commit, then reads the decremented counter (and its owner again).
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT {_VAULT_COLUMNS} FROM enclave_vault WHERE {_OWNED} FOR UPDATE",
                (slot, owner),
            ).fetchone()
            if row is None or row["sealed"] is None:
                return None if row is None else _vault(row)
            if row["tries_left"] <= 0:
                # The last try was spent and never evaluated (a crash, or a concurrent
                # evaluation still running): nothing may be released any more.
                sql = "sealed = NULL, destroyed_at = %s, updated_at = %s"
                params: tuple[object, ...] = (now, now, slot)
            else:
                sql = "tries_left = tries_left - 1, updated_at = %s"
                params = (now, slot)
            row = conn.execute(
                f"UPDATE enclave_vault SET {sql} WHERE slot = %s RETURNING {_VAULT_COLUMNS}",
                params,
            ).fetchone()
        assert row is not None
        return _vault(row)

    def vault_reset_tries(self, slot: str, generation: int, now: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET tries_left = max_tries, updated_at = %s "
                "WHERE slot = %s AND generation = %s AND sealed IS NOT NULL",
                (now, slot, generation),
            )
            return cur.rowcount == 1

    def vault_claim(
        self, slot: str, owner: str, generation: int, sealed: bytes, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET owner = %s, sealed = %s, tries_left = max_tries, "
                "generation = generation + 1, updated_at = %s "
                "WHERE slot = %s AND owner = '' AND generation = %s AND sealed IS NOT NULL",
                (owner, sealed, now, slot, generation),
            )
            return cur.rowcount == 1

    def vault_destroy(self, slot: str, generation: int, now: float) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET sealed = NULL, tries_left = 0, destroyed_at = %s, "
                "updated_at = %s WHERE slot = %s AND generation = %s AND sealed IS NOT NULL",
                (now, now, slot, generation),
            )
            return cur.rowcount == 1

    def vault_replace(
        self, slot: str, owner: str, generation: int, sealed: bytes, max_tries: int, now: float
    ) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE enclave_vault SET sealed = %s, tries_left = %s, max_tries = %s, "
                "generation = generation + 1, updated_at = %s "
                "WHERE slot = %s AND owner = %s AND generation = %s AND sealed IS NOT NULL",
                (sealed, max_tries, max_tries, now, slot, owner, generation),
            )
            return cur.rowcount == 1

    def vault_delete(self, slot: str, owner: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(f"DELETE FROM enclave_vault WHERE {_OWNED}", (slot, owner))
            return cur.rowcount == 1

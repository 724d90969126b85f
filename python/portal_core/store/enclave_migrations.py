"""Versioned schema of the enclave's SQLite store: its own migrations, beside the
custodian's (:mod:`portal_core.store.custodian_migrations`).

Every table is named ``enclave_*`` and the history is kept in ``enclave_schema_version``,
so the enclave's tables can live in the custodian's database file without either schema
touching the other's. Migrations are only ever appended: an applied one is never edited.
"""

from __future__ import annotations

from portal_core.store.database import Migration

__all__ = ["ENCLAVE_MIGRATIONS"]


ENCLAVE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "enclave users, credentials, challenges, passkey-gated keys, vault records",
        (
            """CREATE TABLE enclave_users (
                user_id      TEXT PRIMARY KEY,
                user_handle  BLOB NOT NULL UNIQUE,
                created_at   REAL NOT NULL
            ) STRICT""",
            """CREATE TABLE enclave_credentials (
                credential_id   BLOB PRIMARY KEY,
                user_id         TEXT NOT NULL
                                REFERENCES enclave_users (user_id) ON DELETE CASCADE,
                public_key      BLOB NOT NULL,
                alg             INTEGER NOT NULL,
                sign_count      INTEGER NOT NULL CHECK (sign_count >= 0),
                aaguid          TEXT NOT NULL,
                fmt             TEXT NOT NULL,
                transports      TEXT NOT NULL,
                backup_eligible INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
                backed_up       INTEGER NOT NULL CHECK (backed_up IN (0, 1)),
                prf_salt        BLOB NOT NULL,
                prf_enabled     INTEGER NOT NULL CHECK (prf_enabled IN (0, 1)),
                created_at      REAL NOT NULL,
                last_used_at    REAL,
                UNIQUE (credential_id, user_id)
            ) STRICT""",
            "CREATE INDEX enclave_credentials_user ON enclave_credentials (user_id)",
            """CREATE TABLE enclave_challenges (
                challenge_hash  BLOB PRIMARY KEY,
                user_id         TEXT NOT NULL,
                ceremony        TEXT NOT NULL
                                CHECK (ceremony IN ('registration', 'authentication')),
                created_at      REAL NOT NULL,
                expires_at      REAL NOT NULL
            ) STRICT""",
            "CREATE INDEX enclave_challenges_expiry ON enclave_challenges (expires_at)",
            # The composite foreign key ties each key to a credential *of the same user*.
            """CREATE TABLE enclave_keys (
                user_id        TEXT NOT NULL,
                credential_id  BLOB NOT NULL,
                slot           TEXT NOT NULL,
                mode           TEXT NOT NULL CHECK (mode IN ('server', 'prf')),
                sealed         BLOB NOT NULL,
                created_at     REAL NOT NULL,
                updated_at     REAL NOT NULL,
                PRIMARY KEY (user_id, credential_id, slot),
                FOREIGN KEY (credential_id, user_id)
                    REFERENCES enclave_credentials (credential_id, user_id) ON DELETE CASCADE
            ) STRICT""",
            "CREATE INDEX enclave_keys_slot ON enclave_keys (user_id, slot)",
            """CREATE TABLE enclave_vault (
                slot          TEXT PRIMARY KEY,
                sealed        BLOB,
                tries_left    INTEGER NOT NULL CHECK (tries_left >= 0),
                max_tries     INTEGER NOT NULL CHECK (max_tries BETWEEN 1 AND 255),
                generation    INTEGER NOT NULL CHECK (generation >= 1),
                created_at    REAL NOT NULL,
                updated_at    REAL NOT NULL,
                destroyed_at  REAL,
                CHECK (tries_left <= max_tries),
                CHECK ((sealed IS NULL) = (destroyed_at IS NOT NULL))
            ) STRICT""",
        ),
    ),
    # Issue 8, items 3 and 4. Rows written before keep owner '' (unclaimed: the first
    # caller with the right access key claims them) and challenges keep operation NULL
    # (refused at finish). Every new query looks rows up by their primary key, so no
    # index is needed.
    Migration(
        2,
        "vault records get an owner and public params; login challenges their operation and slot",
        (
            "ALTER TABLE enclave_vault ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE enclave_vault ADD COLUMN params BLOB NOT NULL DEFAULT x''",
            "ALTER TABLE enclave_challenges ADD COLUMN operation TEXT "
            "CHECK (operation IS NULL OR operation IN ('read', 'write'))",
            "ALTER TABLE enclave_challenges ADD COLUMN slot TEXT",
        ),
    ),
)

assert [m.version for m in ENCLAVE_MIGRATIONS] == list(range(1, len(ENCLAVE_MIGRATIONS) + 1))

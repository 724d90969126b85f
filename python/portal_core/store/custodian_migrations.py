"""Versioned schema of the custodian's SQLite store: ordered migrations of SQL steps.

A database records each migration applied in ``schema_version`` (the enclave's tables have
their own history, :mod:`portal_core.store.enclave_migrations`). Opening a store applies,
in order and each in its own transaction, every migration newer than the database's
version; a database newer than this build is refused rather than guessed at. Migrations
are only ever appended: an applied migration is never edited.
"""

from __future__ import annotations

from portal_core.store.database import Migration

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration"]


_CURVE_CHECK = "CHECK (curve IN ('SECP256K1', 'ED25519'))"
_STATUS_CHECK = (
    "CHECK (status IN ('incomplete', 'STORED_CLIENT_BACKUP_SHARE_KEY', "
    "'STORED_CLIENT_BACKUP_SHARE', 'completed'))"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "clients, wallets, signing shares, backups, pairs, cipher texts, eject windows, locks",
        (
            """CREATE TABLE clients (
                client_id   TEXT PRIMARY KEY,
                created_at  REAL NOT NULL
            ) STRICT""",
            # One wallet per client, as in the seed system: a client is one user's device set.
            """CREATE TABLE wallets (
                wallet_id   TEXT PRIMARY KEY,
                client_id   TEXT NOT NULL UNIQUE REFERENCES clients (client_id) ON DELETE CASCADE,
                created_at  REAL NOT NULL,
                ejected_at  REAL
            ) STRICT""",
            f"""CREATE TABLE signing_shares (
                wallet_id              TEXT NOT NULL
                                       REFERENCES wallets (wallet_id) ON DELETE CASCADE,
                curve                  TEXT NOT NULL {_CURVE_CHECK},
                share_id               TEXT NOT NULL UNIQUE,
                public_key             BLOB NOT NULL,
                client_public_share    BLOB NOT NULL,
                custodian_public_share BLOB NOT NULL,
                sealed_share           BLOB NOT NULL,
                generation             INTEGER NOT NULL CHECK (generation >= 1),
                updated_at             REAL NOT NULL,
                PRIMARY KEY (wallet_id, curve)
            ) STRICT""",
            """CREATE TABLE backups (
                backup_id   TEXT PRIMARY KEY,
                wallet_id   TEXT NOT NULL REFERENCES wallets (wallet_id) ON DELETE CASCADE,
                method      TEXT NOT NULL
                            CHECK (method IN ('PASSWORD', 'PASSKEY', 'GDRIVE', 'ICLOUD', 'CUSTOM')),
                mode        TEXT NOT NULL CHECK (mode IN ('custodian', 'self')),
                created_at  REAL NOT NULL,
                UNIQUE (backup_id, wallet_id, method)
            ) STRICT""",
            # wallet_id and method are repeated here so that the partial unique index below can
            # enforce one completed pair per wallet, method and curve; the composite foreign key
            # keeps the copies equal to the backup's.
            f"""CREATE TABLE backup_pairs (
                pair_id                 TEXT PRIMARY KEY,
                backup_id               TEXT NOT NULL,
                wallet_id               TEXT NOT NULL,
                method                  TEXT NOT NULL,
                curve                   TEXT NOT NULL {_CURVE_CHECK},
                status                  TEXT NOT NULL {_STATUS_CHECK},
                public_key              BLOB NOT NULL,
                client_public_share     BLOB NOT NULL,
                custodian_public_share  BLOB NOT NULL,
                sealed_custodian_share  BLOB,
                created_at              REAL NOT NULL,
                completed_at            REAL,
                UNIQUE (backup_id, curve),
                CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
                FOREIGN KEY (backup_id, wallet_id, method)
                    REFERENCES backups (backup_id, wallet_id, method) ON DELETE CASCADE
            ) STRICT""",
            """CREATE UNIQUE INDEX backup_pairs_one_completed
                ON backup_pairs (wallet_id, method, curve) WHERE status = 'completed'""",
            "CREATE INDEX backup_pairs_wallet ON backup_pairs (wallet_id, method)",
            "CREATE INDEX backups_wallet ON backups (wallet_id, method)",
            """CREATE TABLE cipher_texts (
                backup_id    TEXT PRIMARY KEY REFERENCES backups (backup_id) ON DELETE CASCADE,
                cipher_text  BLOB NOT NULL,
                stored_at    REAL NOT NULL
            ) STRICT""",
            """CREATE TABLE eject_windows (
                wallet_id      TEXT PRIMARY KEY REFERENCES wallets (wallet_id) ON DELETE CASCADE,
                authorized_at  REAL NOT NULL,
                expires_at     REAL NOT NULL
            ) STRICT""",
            # Keyed by client, not wallet: key generation needs the lock before a wallet exists.
            """CREATE TABLE locks (
                client_id    TEXT PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
                owner        TEXT NOT NULL,
                operation    TEXT NOT NULL,
                acquired_at  REAL NOT NULL,
                expires_at   REAL NOT NULL
            ) STRICT""",
        ),
    ),
)

LATEST_VERSION: int = MIGRATIONS[-1].version

# Versions must run 1, 2, 3...: a gap or a reordering is a bug caught at import.
assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))

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
    Migration(
        2,
        "tenants, API keys (hashes only), clients' tenant, audit events",
        (
            # Names compare without ASCII case: "Acme" and "acme" would confuse an operator.
            """CREATE TABLE tenants (
                tenant_id   TEXT PRIMARY KEY,
                name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
                created_at  REAL NOT NULL
            ) STRICT""",
            # NULL for the clients recorded before tenants existed (and for LocalCustodian's,
            # which add_client records without one): no API key reaches such a client.
            "ALTER TABLE clients ADD COLUMN tenant_id TEXT REFERENCES tenants (tenant_id)",
            # The parent key of api_keys' composite foreign key below (client_id alone is
            # already unique; the pair is what the foreign key needs to name).
            "CREATE UNIQUE INDEX clients_client_tenant ON clients (client_id, tenant_id)",
            "CREATE INDEX clients_tenant ON clients (tenant_id, created_at)",
            # secret_hash: SHA-256 of the key's secret, bound to its kind and id
            # (portal_core.tenants); the secret itself is never stored. A client key's tenant
            # is its client's tenant, which the composite foreign key holds equal.
            """CREATE TABLE api_keys (
                key_id       TEXT PRIMARY KEY,
                tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
                client_id    TEXT,
                kind         TEXT NOT NULL CHECK (kind IN ('admin', 'client')),
                secret_hash  BLOB NOT NULL CHECK (length(secret_hash) = 32),
                created_at   REAL NOT NULL,
                revoked_at   REAL,
                CHECK ((kind = 'admin') = (client_id IS NULL)),
                FOREIGN KEY (client_id, tenant_id)
                    REFERENCES clients (client_id, tenant_id) ON DELETE CASCADE
            ) STRICT""",
            # At most one live key per client: a rotation revokes the old key in the same
            # transaction, or this index refuses the new one.
            """CREATE UNIQUE INDEX api_keys_one_live_client_key
                ON api_keys (client_id) WHERE kind = 'client' AND revoked_at IS NULL""",
            "CREATE INDEX api_keys_tenant ON api_keys (tenant_id, kind, revoked_at)",
            # tenant_id is NULL for an authentication failure no tenant can be named for (a
            # key id that does not exist, or no key id at all). detail holds no secret.
            """CREATE TABLE audit_events (
                event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id  TEXT REFERENCES tenants (tenant_id) ON DELETE CASCADE,
                at         REAL NOT NULL,
                kind       TEXT NOT NULL,
                subject    TEXT,
                detail     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
            ) STRICT""",
            "CREATE INDEX audit_events_tenant ON audit_events (tenant_id, at, event_id)",
        ),
    ),
    Migration(
        3,
        "tenants' webhooks (self-managed mode): base URL and the secret sealed under the KMS",
        (
            # sealed_secret: the webhook secret sealed under the custodian's KMS with a
            # context naming the tenant (portal_core.webhooks.TenantWebhooks), so the
            # custodian can sign its requests while the file alone yields nothing, and a
            # row copied to another tenant does not open.
            """CREATE TABLE tenant_webhooks (
                tenant_id      TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
                base_url       TEXT NOT NULL,
                sealed_secret  BLOB NOT NULL,
                updated_at     REAL NOT NULL
            ) STRICT""",
        ),
    ),
    Migration(
        4,
        "protocol sessions: the custodian's suspended parties, sealed, between requests",
        (
            # One row per key generation, backup or recovery session between its requests, so
            # any worker process serves any step (LocalCustodian keeps nothing in memory).
            # sealed_states: JSON {curve: base64} of the custodian's parties suspended before
            # their commitment (share scalar, nonce, seed), each sealed under the KMS with a
            # context naming the session, client, wallet and curve: the file alone yields no
            # secret, and a state moved to another row does not open. client_commitments:
            # JSON {curve: base64} of the client's (public) commitment messages, '{}' until
            # the stage leaves 'commit'. wallet_id has no foreign key: a key generation's
            # wallet does not exist yet. expires_at is the wallet lock's.
            """CREATE TABLE sessions (
                session_id          TEXT PRIMARY KEY,
                client_id           TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                wallet_id           TEXT NOT NULL,
                operation           TEXT NOT NULL
                                    CHECK (operation IN ('key generation', 'backup', 'recovery')),
                method              TEXT CHECK (method IN
                                        ('PASSWORD', 'PASSKEY', 'GDRIVE', 'ICLOUD', 'CUSTOM')),
                stage               TEXT NOT NULL
                                    CHECK (stage IN ('commit', 'reveal', 'finishing')),
                share_ids           TEXT NOT NULL CHECK (json_valid(share_ids)),
                generations         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(generations)),
                sealed_states       TEXT NOT NULL CHECK (json_valid(sealed_states)),
                client_commitments  TEXT NOT NULL DEFAULT '{}'
                                    CHECK (json_valid(client_commitments)),
                created_at          REAL NOT NULL,
                expires_at          REAL NOT NULL,
                CHECK ((operation = 'key generation') = (method IS NULL)),
                CHECK ((stage = 'commit') = (client_commitments = '{}'))
            ) STRICT""",
            "CREATE INDEX sessions_client ON sessions (client_id, expires_at)",
            "CREATE INDEX sessions_expiry ON sessions (expires_at)",
        ),
    ),
    Migration(
        5,
        "rate-limit counters and idempotency keys of the HTTP service",
        (
            # A fixed window per bucket (``guess:<client>``, ``auth:<address>``, ...): the
            # count of hits since window_start. Shared by every worker.
            """CREATE TABLE rate_limits (
                bucket        TEXT PRIMARY KEY,
                window_start  REAL NOT NULL,
                hits          INTEGER NOT NULL CHECK (hits >= 0)
            ) STRICT""",
            # A write's Idempotency-Key, per API key: the request's digest, and once done its
            # status and response body (only of endpoints whose answer holds no secret), so
            # a retry gets the first answer instead of doing the work twice.
            """CREATE TABLE idempotency_keys (
                key_id          TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                endpoint        TEXT NOT NULL,
                request_digest  BLOB NOT NULL,
                status          INTEGER,
                body            BLOB,
                created_at      REAL NOT NULL,
                PRIMARY KEY (key_id, idempotency_key)
            ) STRICT""",
            "CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at)",
        ),
    ),
)

LATEST_VERSION: int = MIGRATIONS[-1].version

# Versions must run 1, 2, 3...: a gap or a reordering is a bug caught at import.
assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))

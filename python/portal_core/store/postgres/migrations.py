"""Versioned schemas of the PostgreSQL stores: the custodian's and the enclave's histories of
:mod:`portal_core.store.custodian_migrations` and :mod:`portal_core.store.enclave_migrations`,
version for version, with the same tables, columns, keys, checks and indexes in
PostgreSQL's types:

* ``REAL`` (seconds since the epoch) -> ``DOUBLE PRECISION``; ``BLOB`` -> ``BYTEA``;
  SQLite's 0/1 flags -> ``BOOLEAN``; JSON text checked by ``json_valid`` -> ``JSONB``
  (which refuses what does not parse); ``INTEGER PRIMARY KEY AUTOINCREMENT`` -> an identity
  column.
* Tenant names unique without ASCII case (SQLite's ``COLLATE NOCASE``): a unique index on
  ``lower(name COLLATE "C")``, which folds ASCII letters only, whatever the database's
  locale.

A migration's version and description are its SQLite twin's, so both engines report the
same history. Migrations are only ever appended: an applied one is never edited.
"""

from __future__ import annotations

from portal_core.store.custodian_migrations import MIGRATIONS as SQLITE_MIGRATIONS
from portal_core.store.database import Migration
from portal_core.store.enclave_migrations import ENCLAVE_MIGRATIONS as SQLITE_ENCLAVE_MIGRATIONS

__all__ = ["ENCLAVE_MIGRATIONS", "MIGRATIONS", "TENANT_NAME_KEY"]

_TIME = "DOUBLE PRECISION"
_CURVE_CHECK = "CHECK (curve IN ('SECP256K1', 'ED25519'))"
_METHODS = "('PASSWORD', 'PASSKEY', 'GDRIVE', 'ICLOUD', 'CUSTOM')"
_STATUS_CHECK = (
    "CHECK (status IN ('incomplete', 'STORED_CLIENT_BACKUP_SHARE_KEY', "
    "'STORED_CLIENT_BACKUP_SHARE', 'completed'))"
)
# The expression tenant names are unique by (ASCII letters folded, as SQLite's NOCASE).
TENANT_NAME_KEY = 'lower(name COLLATE "C")'

_STEPS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE clients (
            client_id   TEXT PRIMARY KEY,
            created_at  {_TIME} NOT NULL
        )""",
        f"""CREATE TABLE wallets (
            wallet_id   TEXT PRIMARY KEY,
            client_id   TEXT NOT NULL UNIQUE REFERENCES clients (client_id) ON DELETE CASCADE,
            created_at  {_TIME} NOT NULL,
            ejected_at  {_TIME}
        )""",
        f"""CREATE TABLE signing_shares (
            wallet_id              TEXT NOT NULL REFERENCES wallets (wallet_id) ON DELETE CASCADE,
            curve                  TEXT NOT NULL {_CURVE_CHECK},
            share_id               TEXT NOT NULL UNIQUE,
            public_key             BYTEA NOT NULL,
            client_public_share    BYTEA NOT NULL,
            custodian_public_share BYTEA NOT NULL,
            sealed_share           BYTEA NOT NULL,
            generation             INTEGER NOT NULL CHECK (generation >= 1),
            updated_at             {_TIME} NOT NULL,
            PRIMARY KEY (wallet_id, curve)
        )""",
        f"""CREATE TABLE backups (
            backup_id   TEXT PRIMARY KEY,
            wallet_id   TEXT NOT NULL REFERENCES wallets (wallet_id) ON DELETE CASCADE,
            method      TEXT NOT NULL CHECK (method IN {_METHODS}),
            mode        TEXT NOT NULL CHECK (mode IN ('custodian', 'self')),
            created_at  {_TIME} NOT NULL,
            UNIQUE (backup_id, wallet_id, method)
        )""",
        f"""CREATE TABLE backup_pairs (
            pair_id                 TEXT PRIMARY KEY,
            backup_id               TEXT NOT NULL,
            wallet_id               TEXT NOT NULL,
            method                  TEXT NOT NULL,
            curve                   TEXT NOT NULL {_CURVE_CHECK},
            status                  TEXT NOT NULL {_STATUS_CHECK},
            public_key              BYTEA NOT NULL,
            client_public_share     BYTEA NOT NULL,
            custodian_public_share  BYTEA NOT NULL,
            sealed_custodian_share  BYTEA,
            created_at              {_TIME} NOT NULL,
            completed_at            {_TIME},
            UNIQUE (backup_id, curve),
            CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
            FOREIGN KEY (backup_id, wallet_id, method)
                REFERENCES backups (backup_id, wallet_id, method) ON DELETE CASCADE
        )""",
        """CREATE UNIQUE INDEX backup_pairs_one_completed
            ON backup_pairs (wallet_id, method, curve) WHERE status = 'completed'""",
        "CREATE INDEX backup_pairs_wallet ON backup_pairs (wallet_id, method)",
        "CREATE INDEX backups_wallet ON backups (wallet_id, method)",
        f"""CREATE TABLE cipher_texts (
            backup_id    TEXT PRIMARY KEY REFERENCES backups (backup_id) ON DELETE CASCADE,
            cipher_text  BYTEA NOT NULL,
            stored_at    {_TIME} NOT NULL
        )""",
        f"""CREATE TABLE eject_windows (
            wallet_id      TEXT PRIMARY KEY REFERENCES wallets (wallet_id) ON DELETE CASCADE,
            authorized_at  {_TIME} NOT NULL,
            expires_at     {_TIME} NOT NULL
        )""",
        f"""CREATE TABLE locks (
            client_id    TEXT PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
            owner        TEXT NOT NULL,
            operation    TEXT NOT NULL,
            acquired_at  {_TIME} NOT NULL,
            expires_at   {_TIME} NOT NULL
        )""",
    ),
    (
        f"""CREATE TABLE tenants (
            tenant_id   TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            created_at  {_TIME} NOT NULL
        )""",
        f"CREATE UNIQUE INDEX tenants_name ON tenants (({TENANT_NAME_KEY}))",
        "ALTER TABLE clients ADD COLUMN tenant_id TEXT REFERENCES tenants (tenant_id)",
        "CREATE UNIQUE INDEX clients_client_tenant ON clients (client_id, tenant_id)",
        "CREATE INDEX clients_tenant ON clients (tenant_id, created_at)",
        f"""CREATE TABLE api_keys (
            key_id       TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            client_id    TEXT,
            kind         TEXT NOT NULL CHECK (kind IN ('admin', 'client')),
            secret_hash  BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
            created_at   {_TIME} NOT NULL,
            revoked_at   {_TIME},
            CHECK ((kind = 'admin') = (client_id IS NULL)),
            FOREIGN KEY (client_id, tenant_id)
                REFERENCES clients (client_id, tenant_id) ON DELETE CASCADE
        )""",
        """CREATE UNIQUE INDEX api_keys_one_live_client_key
            ON api_keys (client_id) WHERE kind = 'client' AND revoked_at IS NULL""",
        "CREATE INDEX api_keys_tenant ON api_keys (tenant_id, kind, revoked_at)",
        f"""CREATE TABLE audit_events (
            event_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id  TEXT REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            at         {_TIME} NOT NULL,
            kind       TEXT NOT NULL,
            subject    TEXT,
            detail     JSONB NOT NULL DEFAULT '{{}}'
        )""",
        "CREATE INDEX audit_events_tenant ON audit_events (tenant_id, at, event_id)",
    ),
    (
        f"""CREATE TABLE tenant_webhooks (
            tenant_id      TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
            base_url       TEXT NOT NULL,
            sealed_secret  BYTEA NOT NULL,
            updated_at     {_TIME} NOT NULL
        )""",
    ),
    (
        f"""CREATE TABLE sessions (
            session_id          TEXT PRIMARY KEY,
            client_id           TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
            wallet_id           TEXT NOT NULL,
            operation           TEXT NOT NULL
                                CHECK (operation IN ('key generation', 'backup', 'recovery')),
            method              TEXT CHECK (method IN {_METHODS}),
            stage               TEXT NOT NULL CHECK (stage IN ('commit', 'reveal', 'finishing')),
            share_ids           JSONB NOT NULL,
            generations         JSONB NOT NULL DEFAULT '{{}}',
            sealed_states       JSONB NOT NULL,
            client_commitments  JSONB NOT NULL DEFAULT '{{}}',
            created_at          {_TIME} NOT NULL,
            expires_at          {_TIME} NOT NULL,
            CHECK ((operation = 'key generation') = (method IS NULL)),
            CHECK ((stage = 'commit') = (client_commitments = '{{}}'::jsonb))
        )""",
        "CREATE INDEX sessions_client ON sessions (client_id, expires_at)",
        "CREATE INDEX sessions_expiry ON sessions (expires_at)",
    ),
    (
        f"""CREATE TABLE rate_limits (
            bucket        TEXT PRIMARY KEY,
            window_start  {_TIME} NOT NULL,
            hits          INTEGER NOT NULL CHECK (hits >= 0)
        )""",
        f"""CREATE TABLE idempotency_keys (
            key_id          TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            endpoint        TEXT NOT NULL,
            request_digest  BYTEA NOT NULL,
            status          INTEGER,
            body            BYTEA,
            created_at      {_TIME} NOT NULL,
            PRIMARY KEY (key_id, idempotency_key)
        )""",
        "CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at)",
    ),
)

_ENCLAVE_STEPS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE enclave_users (
            user_id      TEXT PRIMARY KEY,
            user_handle  BYTEA NOT NULL UNIQUE,
            created_at   {_TIME} NOT NULL
        )""",
        f"""CREATE TABLE enclave_credentials (
            credential_id   BYTEA PRIMARY KEY,
            user_id         TEXT NOT NULL REFERENCES enclave_users (user_id) ON DELETE CASCADE,
            public_key      BYTEA NOT NULL,
            alg             INTEGER NOT NULL,
            sign_count      BIGINT NOT NULL CHECK (sign_count >= 0),
            aaguid          TEXT NOT NULL,
            fmt             TEXT NOT NULL,
            transports      JSONB NOT NULL,
            backup_eligible BOOLEAN NOT NULL,
            backed_up       BOOLEAN NOT NULL,
            prf_salt        BYTEA NOT NULL,
            prf_enabled     BOOLEAN NOT NULL,
            created_at      {_TIME} NOT NULL,
            last_used_at    {_TIME},
            UNIQUE (credential_id, user_id)
        )""",
        "CREATE INDEX enclave_credentials_user ON enclave_credentials (user_id)",
        f"""CREATE TABLE enclave_challenges (
            challenge_hash  BYTEA PRIMARY KEY,
            user_id         TEXT NOT NULL,
            ceremony        TEXT NOT NULL CHECK (ceremony IN ('registration', 'authentication')),
            created_at      {_TIME} NOT NULL,
            expires_at      {_TIME} NOT NULL
        )""",
        "CREATE INDEX enclave_challenges_expiry ON enclave_challenges (expires_at)",
        f"""CREATE TABLE enclave_keys (
            user_id        TEXT NOT NULL,
            credential_id  BYTEA NOT NULL,
            slot           TEXT NOT NULL,
            mode           TEXT NOT NULL CHECK (mode IN ('server', 'prf')),
            sealed         BYTEA NOT NULL,
            created_at     {_TIME} NOT NULL,
            updated_at     {_TIME} NOT NULL,
            PRIMARY KEY (user_id, credential_id, slot),
            FOREIGN KEY (credential_id, user_id)
                REFERENCES enclave_credentials (credential_id, user_id) ON DELETE CASCADE
        )""",
        "CREATE INDEX enclave_keys_slot ON enclave_keys (user_id, slot)",
        f"""CREATE TABLE enclave_vault (
            slot          TEXT PRIMARY KEY,
            sealed        BYTEA,
            tries_left    INTEGER NOT NULL CHECK (tries_left >= 0),
            max_tries     INTEGER NOT NULL CHECK (max_tries BETWEEN 1 AND 255),
            generation    INTEGER NOT NULL CHECK (generation >= 1),
            created_at    {_TIME} NOT NULL,
            updated_at    {_TIME} NOT NULL,
            destroyed_at  {_TIME},
            CHECK (tries_left <= max_tries),
            CHECK ((sealed IS NULL) = (destroyed_at IS NOT NULL))
        )""",
    ),
    (
        "ALTER TABLE enclave_vault ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE enclave_vault ADD COLUMN params BYTEA NOT NULL DEFAULT ''::bytea",
        "ALTER TABLE enclave_challenges ADD COLUMN operation TEXT "
        "CHECK (operation IS NULL OR operation IN ('read', 'write'))",
        "ALTER TABLE enclave_challenges ADD COLUMN slot TEXT",
    ),
)


def _twins(
    sqlite: tuple[Migration, ...], steps: tuple[tuple[str, ...], ...]
) -> tuple[Migration, ...]:
    """The PostgreSQL migrations: each SQLite migration's version and description, with
    these steps."""
    assert len(sqlite) == len(steps), "a migration without its PostgreSQL twin"
    return tuple(Migration(m.version, m.description, s) for m, s in zip(sqlite, steps, strict=True))


MIGRATIONS: tuple[Migration, ...] = _twins(SQLITE_MIGRATIONS, _STEPS)
ENCLAVE_MIGRATIONS: tuple[Migration, ...] = _twins(SQLITE_ENCLAVE_MIGRATIONS, _ENCLAVE_STEPS)

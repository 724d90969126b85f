"""The HTTP service's shared request state on PostgreSQL: rate-limit counters and idempotency
keys; a base class of :class:`~portal_core.store.postgres.PostgresStore`, with the methods,
answers and semantics of :class:`~portal_core.store.request_sqlite.SqliteRequestTables`.

Each read-then-write holds the row it decides on (``SELECT ... FOR UPDATE``), made first
if missing (``INSERT ... ON CONFLICT DO NOTHING``, which waits for a concurrent insert of
the same key to end): hits from every worker on one bucket are counted one after another,
and of two requests claiming one idempotency key at once, one runs it.
"""

from __future__ import annotations

from portal_core.store.custodian_interface import StoreError
from portal_core.store.postgres.database import PostgresDatabase
from portal_core.store.request_sqlite import IdempotentReplay, RateDecision, _window

__all__ = ["PostgresRequestTables"]

# Times a claim retries when the key it found was released meanwhile.
_CLAIM_ATTEMPTS = 3


class PostgresRequestTables(PostgresDatabase):
    """Rate limits and idempotency keys (see the module's docstring)."""

    def rate_limit_hit(
        self, bucket: str, *, limit: int, window_s: float, now: float, cost: int = 1
    ) -> RateDecision:
        """``cost`` hits counted in the bucket's fixed window (``cost=0`` only looks),
        refused ones too, as the SQLite store's (``SqliteRequestTables.rate_limit_hit``)."""
        if cost == 0:  # a look: no write transaction
            row = self.query_one(
                "SELECT window_start, hits FROM rate_limits WHERE bucket = %s", (bucket,)
            )
            start, hits = _window(row, now, window_s, 0)
            return RateDecision(hits <= limit, hits, max(0.0, start + window_s - now))
        with self.transaction() as conn:
            # A new bucket starts as a window of no hits beginning now: the same count.
            conn.execute(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (%s, %s, 0) "
                "ON CONFLICT (bucket) DO NOTHING",
                (bucket, now),
            )
            row = conn.execute(
                "SELECT window_start, hits FROM rate_limits WHERE bucket = %s FOR UPDATE",
                (bucket,),
            ).fetchone()
            start, hits = _window(row, now, window_s, cost)
            # An upsert: a sweep may have deleted the row in between.
            conn.execute(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (%s, %s, %s) "
                "ON CONFLICT (bucket) DO UPDATE SET window_start = excluded.window_start, "
                "hits = excluded.hits",
                (bucket, start, hits),
            )
        return RateDecision(hits <= limit, hits, max(0.0, start + window_s - now))

    def rate_limit_sweep(self, older_than: float) -> int:
        """As the SQLite store's (``SqliteRequestTables.rate_limit_sweep``)."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM rate_limits WHERE window_start < %s", (older_than,))
            return cur.rowcount

    def idempotency_begin(
        self,
        key_id: str,
        idempotency_key: str,
        endpoint: str,
        digest: bytes,
        now: float,
        *,
        stale_after: float = 60.0,
    ) -> IdempotentReplay | None:
        """None when this request claimed the key (new, or a claim unanswered for
        ``stale_after`` seconds), else what the key holds, as the SQLite store's
        (``SqliteRequestTables.idempotency_begin``)."""
        for _ in range(_CLAIM_ATTEMPTS):
            with self.transaction() as conn:
                claimed = conn.execute(
                    "INSERT INTO idempotency_keys (key_id, idempotency_key, endpoint, "
                    "request_digest, created_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (key_id, idempotency_key) DO NOTHING",
                    (key_id, idempotency_key, endpoint, digest, now),
                )
                if claimed.rowcount == 1:
                    return None
                row = conn.execute(
                    "SELECT endpoint, request_digest, status, body, created_at FROM "
                    "idempotency_keys WHERE key_id = %s AND idempotency_key = %s FOR UPDATE",
                    (key_id, idempotency_key),
                ).fetchone()
                if row is None:
                    continue  # released (forgotten or swept) since: claim it again
                same = (row["endpoint"], bytes(row["request_digest"])) == (endpoint, digest)
                if not (same and row["status"] is None and now - row["created_at"] > stale_after):
                    body = None if row["body"] is None else bytes(row["body"])
                    return IdempotentReplay(same, row["status"], body)
                conn.execute(
                    "UPDATE idempotency_keys SET created_at = %s "
                    "WHERE key_id = %s AND idempotency_key = %s",
                    (now, key_id, idempotency_key),
                )
                return None
        raise StoreError("an idempotency key kept being claimed and released: retry the request")

    def idempotency_finish(
        self, key_id: str, idempotency_key: str, status: int, body: bytes
    ) -> None:
        """As the SQLite store's (``SqliteRequestTables.idempotency_finish``)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = %s, body = %s "
                "WHERE key_id = %s AND idempotency_key = %s",
                (status, body, key_id, idempotency_key),
            )

    def idempotency_forget(self, key_id: str, idempotency_key: str) -> None:
        """As the SQLite store's (``SqliteRequestTables.idempotency_forget``)."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE key_id = %s AND idempotency_key = %s",
                (key_id, idempotency_key),
            )

    def idempotency_sweep(self, older_than: float) -> int:
        """As the SQLite store's (``SqliteRequestTables.idempotency_sweep``)."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM idempotency_keys WHERE created_at < %s", (older_than,))
            return cur.rowcount

"""The HTTP service's shared request state, written once for both engines: rate-limit
counters and idempotency keys (migration 5 of :mod:`portal_core.store.custodian_migrations`
and of :mod:`portal_core.store.postgres.migrations`).

A base class of :class:`~portal_core.store.custodian_sqlite.SqliteStore` and of
:class:`~portal_core.store.postgres.PostgresStore` (through ``SqliteRequestTables`` and
``PostgresRequestTables``): every worker process of a service counts in the same rows, so a
limit holds however requests are spread over the workers, and a retried write is recognised
by whichever worker it reaches.

Each read-then-write holds the row it decides on (``self.for_update``, see
:mod:`portal_core.store.portable`), made first if missing (``INSERT ... ON CONFLICT DO
NOTHING``, which on PostgreSQL waits for a concurrent insert of the same key to end): hits
from every worker on one bucket are counted one after another, and of two requests claiming
one idempotency key at once, one runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal_core.store.custodian_interface import StoreError
from portal_core.store.portable import PortableTables

__all__ = ["IdempotentReplay", "RateDecision", "RequestTables"]

# Times a claim retries when the key it found was released meanwhile (PostgreSQL only: on
# SQLite nothing runs between the insert and the read).
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class RateDecision:
    """One hit on a bucket: allowed or not, and the seconds until its window ends."""

    allowed: bool
    hits: int
    retry_after: float


@dataclass(frozen=True)
class IdempotentReplay:
    """What an Idempotency-Key already names: ``status`` None while the first request is
    still running; ``same_request`` False when it named another request."""

    same_request: bool
    status: int | None
    body: bytes | None


def _window(row: Any, now: float, window_s: float, cost: int) -> tuple[float, int]:
    """The bucket's window start and count after ``cost`` more hits (a new window when the
    last one ended, or began in the future: a clock set back)."""
    if row is None or not 0 <= now - row["window_start"] < window_s:
        return now, cost
    return row["window_start"], row["hits"] + cost


class RequestTables(PortableTables):
    """Rate limits and idempotency keys (see the module's docstring)."""

    def rate_limit_hit(
        self, bucket: str, *, limit: int, window_s: float, now: float, cost: int = 1
    ) -> RateDecision:
        """Counts ``cost`` hits on ``bucket`` in its current fixed window of ``window_s``
        seconds and says whether its count is within ``limit`` (``cost=0`` only looks). A
        refused hit is counted too, so a client hammering a limit stays limited."""
        if cost == 0:  # a look: no write transaction
            row = self.query_one(
                "SELECT window_start, hits FROM rate_limits WHERE bucket = ?", (bucket,)
            )
            start, hits = _window(row, now, window_s, 0)
            return RateDecision(hits <= limit, hits, max(0.0, start + window_s - now))
        with self.transaction() as conn:
            # A new bucket starts as a window of no hits beginning now: the same count.
            conn.execute(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?, ?, 0) "
                "ON CONFLICT (bucket) DO NOTHING",
                (bucket, now),
            )
            row = conn.execute(
                "SELECT window_start, hits FROM rate_limits WHERE bucket = ?" + self.for_update,
                (bucket,),
            ).fetchone()
            start, hits = _window(row, now, window_s, cost)
            # An upsert: on PostgreSQL a sweep may have deleted the row in between.
            conn.execute(
                "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?, ?, ?) "
                "ON CONFLICT (bucket) DO UPDATE SET window_start = excluded.window_start, "
                "hits = excluded.hits",
                (bucket, start, hits),
            )
        return RateDecision(hits <= limit, hits, max(0.0, start + window_s - now))

    def rate_limit_sweep(self, older_than: float) -> int:
        """Deletes buckets whose window started before ``older_than``; how many."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM rate_limits WHERE window_start < ?", (older_than,))
            return int(cur.rowcount)

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
        """Claims ``idempotency_key`` for this request: None when it is new (the caller runs
        the request, then :meth:`idempotency_finish` or :meth:`idempotency_forget`), else
        what the key already holds. A claim still unanswered after ``stale_after`` seconds
        belonged to a process that died mid-request: it is taken over.

        Raises:
            StoreError: the key was released again each time it was found (PostgreSQL).
        """
        for _ in range(_CLAIM_ATTEMPTS):
            with self.transaction() as conn:
                claimed = conn.execute(
                    "INSERT INTO idempotency_keys (key_id, idempotency_key, endpoint, "
                    "request_digest, created_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (key_id, idempotency_key) DO NOTHING",
                    (key_id, idempotency_key, endpoint, digest, now),
                )
                if claimed.rowcount == 1:
                    return None
                row = conn.execute(
                    "SELECT endpoint, request_digest, status, body, created_at FROM "
                    "idempotency_keys WHERE key_id = ? AND idempotency_key = ?" + self.for_update,
                    (key_id, idempotency_key),
                ).fetchone()
                if row is None:
                    continue  # released (forgotten or swept) since: claim it again
                same = (row["endpoint"], bytes(row["request_digest"])) == (endpoint, digest)
                if not (same and row["status"] is None and now - row["created_at"] > stale_after):
                    body = None if row["body"] is None else bytes(row["body"])
                    return IdempotentReplay(same, row["status"], body)
                conn.execute(
                    "UPDATE idempotency_keys SET created_at = ? "
                    "WHERE key_id = ? AND idempotency_key = ?",
                    (now, key_id, idempotency_key),
                )
                return None
        raise StoreError("an idempotency key kept being claimed and released: retry the request")

    def idempotency_finish(
        self, key_id: str, idempotency_key: str, status: int, body: bytes
    ) -> None:
        """Records the answer a claimed key's request got."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET status = ?, body = ? "
                "WHERE key_id = ? AND idempotency_key = ?",
                (status, body, key_id, idempotency_key),
            )

    def idempotency_forget(self, key_id: str, idempotency_key: str) -> None:
        """Releases a claimed key whose request failed (a retry runs it again)."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE key_id = ? AND idempotency_key = ?",
                (key_id, idempotency_key),
            )

    def idempotency_sweep(self, older_than: float) -> int:
        """Deletes keys made before ``older_than``; how many."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (older_than,))
            return int(cur.rowcount)

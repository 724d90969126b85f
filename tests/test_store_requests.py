"""The service's shared request state in the store: rate-limit windows and idempotency keys,
as several worker processes (here: several stores and threads) see them, on SQLite and on
PostgreSQL (the ``backend`` fixture of tests/pg_cluster.py)."""

from __future__ import annotations

from pg_cluster import Backend, race
from portal_core.store.request_sqlite import IdempotentReplay


def test_a_window_counts_hits_then_starts_again(backend: Backend) -> None:
    with backend.custodian() as store:
        hits = [store.rate_limit_hit("b", limit=3, window_s=60, now=100.0 + i) for i in range(5)]
        assert [h.allowed for h in hits] == [True, True, True, False, False]
        assert hits[-1].retry_after == 56.0
        look = store.rate_limit_hit("b", limit=3, window_s=60, now=110.0, cost=0)
        assert (look.allowed, look.hits) == (False, 5)  # a look counts nothing
        assert store.rate_limit_hit("b", limit=3, window_s=60, now=160.0).hits == 1
        # A clock set back starts a new window rather than stretching the old one.
        assert store.rate_limit_hit("b", limit=3, window_s=60, now=50.0).hits == 1
        assert store.rate_limit_hit("other", limit=3, window_s=60, now=50.0).hits == 1
        assert store.rate_limit_sweep(older_than=100.0) == 2  # both windows began at 50
        assert store.rate_limit_hit("new", limit=3, window_s=60, now=1.0, cost=0).hits == 0


def test_a_limit_holds_across_stores_and_threads(backend: Backend) -> None:
    # Four stores (four workers' connections), each hammering a bucket that does not exist
    # yet: every hit is counted once, the first ones included.
    stores = [backend.custodian() for _ in range(4)]

    def hammer(i: int) -> list[bool]:
        return [
            stores[i].rate_limit_hit("guess:c", limit=30, window_s=600, now=1000.0).allowed
            for _ in range(25)
        ]

    try:
        allowed = [ok for hits in race(len(stores), hammer) for ok in hits]
        assert len(allowed) == 100 and allowed.count(True) == 30
        look = stores[0].rate_limit_hit("guess:c", limit=30, window_s=600, now=1000.0, cost=0)
        assert look.hits == 100
    finally:
        for s in stores:
            s.close()


def test_an_idempotency_key_replays_its_answer_and_refuses_another_request(
    backend: Backend,
) -> None:
    with backend.custodian() as store:
        assert store.idempotency_begin("k1", "idem", "begin_backup", b"d1", 10.0) is None
        running = store.idempotency_begin("k1", "idem", "begin_backup", b"d1", 11.0)
        assert running is not None and running.same_request and running.status is None
        store.idempotency_finish("k1", "idem", 201, b'{"session_id":"s"}')
        done = store.idempotency_begin("k1", "idem", "begin_backup", b"d1", 12.0)
        assert done is not None and (done.status, done.body) == (201, b'{"session_id":"s"}')
        other = store.idempotency_begin("k1", "idem", "begin_backup", b"d2", 12.0)
        assert other is not None and not other.same_request
        # Keys are per API key: another key's "idem" is its own.
        assert store.idempotency_begin("k2", "idem", "begin_backup", b"d1", 12.0) is None
        # A failed request's claim is released, so its retry runs.
        store.idempotency_forget("k2", "idem")
        assert store.idempotency_begin("k2", "idem", "begin_backup", b"d1", 13.0) is None
        assert store.idempotency_sweep(older_than=12.5) == 1  # k1's, made at 10


def test_a_claim_left_by_a_dead_process_is_taken_over_once_stale(backend: Backend) -> None:
    with backend.custodian() as store:
        assert store.idempotency_begin("k", "idem", "e", b"d", 0.0) is None  # then it died
        assert store.idempotency_begin("k", "idem", "e", b"d", 30.0) is not None
        assert store.idempotency_begin("k", "idem", "e", b"d", 61.0) is None  # taken over
        # Another request under the key is refused, stale or not.
        late = store.idempotency_begin("k", "idem", "e", b"x", 500.0)
        assert late is not None and not late.same_request


def test_one_of_many_requests_claiming_a_key_at_once_runs(backend: Backend) -> None:
    # Eight workers receive the same retried request at once (a new key, then a stale
    # claim): each time one claims it, the others see it running.
    stores = [backend.custodian() for _ in range(8)]
    try:
        for now in (10.0, 100.0):

            def claim(i: int, now: float = now) -> IdempotentReplay | None:
                return stores[i].idempotency_begin("k", "idem", "e", b"d", now)

            claims = race(len(stores), claim)
            assert claims.count(None) == 1, claims
            assert all(c is None or (c.same_request and c.status is None) for c in claims)
    finally:
        for s in stores:
            s.close()

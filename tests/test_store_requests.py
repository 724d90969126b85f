"""The service's shared request state in the store: rate-limit windows and idempotency keys,
as several worker processes (here: several connections and threads) see them."""

from __future__ import annotations

import threading
from pathlib import Path

from portal_core.store import SqliteStore


def test_a_window_counts_hits_then_starts_again(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
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


def test_a_limit_holds_across_connections_and_threads(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "s.db") for _ in range(4)]
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer(store: SqliteStore) -> None:
        for _ in range(25):
            ok = store.rate_limit_hit("guess:c", limit=30, window_s=600, now=1000.0).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(allowed) == 100 and allowed.count(True) == 30
    for s in stores:
        s.close()


def test_an_idempotency_key_replays_its_answer_and_refuses_another_request(
    tmp_path: Path,
) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
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


def test_a_claim_left_by_a_dead_process_is_taken_over_once_stale(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        assert store.idempotency_begin("k", "idem", "e", b"d", 0.0) is None  # then it died
        assert store.idempotency_begin("k", "idem", "e", b"d", 30.0) is not None
        assert store.idempotency_begin("k", "idem", "e", b"d", 61.0) is None  # taken over
        # Another request under the key is refused, stale or not.
        late = store.idempotency_begin("k", "idem", "e", b"x", 500.0)
        assert late is not None and not late.same_request

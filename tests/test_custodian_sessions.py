"""Protocol sessions kept in the store, not in a worker's memory: two ``LocalCustodian``
instances (two "workers", each with its own ``SqliteStore`` connections and its own KMS
session) over one SoftHSM token and one SQLite file serve the steps of the same sessions.

Covered: key generation, backup and recovery with every step on the other worker than the
one before; a worker dropped (and a real process killed) after ``exchange_commitments``,
another finishing; a worker dying in the reveal step, the session then expiring and being
ended cleanly by the other; replays and concurrent steps (forced to interleave); another
client's session id; a sealed state moved to another session or curve; an abort or an HSM
failure during the reveal step; and the database file holding no session secret in clear.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from backup_helpers import FAST, PASSWORD, Clock, Crash
from portal_core import shares
from portal_core.backup import CustodianApi, LocalCustodian, MemoryDevice, WalletClient
from portal_core.backup.api import SessionOffer
from portal_core.exceptions import (
    ShareVerificationFailed,
    WalletModificationInProgress,
)
from portal_core.store import SessionRecord, SessionStage, SqliteStore
from present import present

CURVES = ["SECP256K1", "ED25519"]


class Workers:
    """Two custodians (``a``, ``b``) over one database file and one KMS key, each with its
    own store connections and KMS session, and a clock the test moves."""

    def __init__(self, kms_a: Any, kms_b: Any, tmp: Path) -> None:
        self.kms = {"a": kms_a, "b": kms_b}
        self.db = tmp / "custodian.db"
        self.key_dir = tmp / "keys"
        self.key_dir.mkdir()
        self.key_name = f"sessions-test-{uuid.uuid4().hex[:10]}"
        self.clock = Clock()
        self.stores: list[SqliteStore] = []
        self.a = self.worker("a")
        self.b = self.worker("b")

    def worker(
        self,
        which: str,
        checkpoint: Callable[[str], None] | None = None,
        store_type: type[SqliteStore] = SqliteStore,
    ) -> LocalCustodian:
        store = store_type(self.db, checkpoint=checkpoint)
        self.stores.append(store)
        return LocalCustodian(
            self.kms[which],
            store,
            key_name=self.key_name,
            clock=self.clock,
            checkpoint=checkpoint,
            operator="custodian-op",
        )

    def client(self, custodian: Any, client_id: str, device: MemoryDevice) -> WalletClient:
        return WalletClient(
            cast(CustodianApi, custodian),
            client_id,
            device=device,
            custom_key_dir=str(self.key_dir),
            argon2=FAST,
        )

    def rows(self) -> list[Any]:
        return self.stores[0].query("SELECT * FROM sessions")

    def close(self) -> None:
        for s in self.stores:
            s.close()


class MeetingStore(SqliteStore):
    """A store whose ``get_session`` and ``advance_session`` wait at ``meet`` (when set) once
    they have run: two workers then both read a session at the same stage before either
    moves it, and both have tried to move it before either goes on. The interleaving only
    the store's compare-and-set sorts out."""

    meet: threading.Barrier | None = None

    def _meet(self) -> None:
        if self.meet is not None:
            self.meet.wait()

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = super().get_session(session_id)
        self._meet()
        return row

    def advance_session(self, session_id: str, **kwargs: Any) -> bool:
        moved = super().advance_session(session_id, **kwargs)
        self._meet()
        return moved


@pytest.fixture(scope="module")
def second_kms(hsm_env: dict[str, str]) -> Iterator[Any]:
    """Another KMS session on the same token: the second worker's HSM connection."""
    from portal_core.kms import Pkcs11Kms

    with Pkcs11Kms.from_env(hsm_env) as instance:
        yield instance


@pytest.fixture
def workers(kms: Any, second_kms: Any, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(kms, second_kms, tmp_path)
    yield w
    w.close()


class Alternating:
    """A custodian endpoint that sends each protocol step (``begin_*``,
    ``exchange_commitments``, ``exchange_reveals``) to the other worker than the step
    before, as a load balancer may; other calls go to the first worker. ``served`` lists
    (step, worker index)."""

    STEPS: tuple[str, ...] = ("begin_keygen", "begin_backup", "begin_recovery")
    STEPS += ("exchange_commitments", "exchange_reveals")

    def __init__(self, *workers: LocalCustodian) -> None:
        self.workers = workers
        self.served: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        if name not in self.STEPS:
            return getattr(self.workers[0], name)

        def step(*args: Any, **kwargs: Any) -> Any:
            i = len(self.served) % len(self.workers)
            self.served.append((name, i))
            return getattr(self.workers[i], name)(*args, **kwargs)

        return step


def keygen_by_hand(
    first: LocalCustodian, second: LocalCustodian, third: LocalCustodian, client_id: str
) -> tuple[SessionOffer, dict[str, shares.Share]]:
    """A key generation whose three custodian steps run on ``first``, ``second``, ``third``,
    with the client's parties here; returns the offer and the client's shares."""
    offer = first.begin_keygen(client_id, CURVES)
    client = {
        c: shares.KeyGen(c, shares.CLIENT, offer.session_id, wallet_id=offer.wallet_id)
        for c in CURVES
    }
    theirs = second.exchange_commitments(
        client_id, offer.session_id, {c: p.commit() for c, p in client.items()}
    )
    reveals = {c: p.reveal(theirs[c]) for c, p in client.items()}
    answer = third.exchange_reveals(client_id, offer.session_id, reveals)
    return offer, {c: p.finish(answer[c]) for c, p in client.items()}


def check_wallet(custodian: LocalCustodian, wallet_id: str, mine: dict[str, shares.Share]) -> None:
    """The custodian's records pair with the client's shares."""
    records = custodian.store.signing_shares(wallet_id)
    assert set(records) == set(mine)
    for c, share in mine.items():
        r = records[c]
        assert r.public_key == share.public_key
        assert r.client_public_share == share.public_share
        shares.check_public_shares(c, r.public_key, share.public_share, r.custodian_public_share)


class BackupByHand:
    """A backup of ``client_id``'s wallet driven step by step, the client's parties made
    from the signing shares on its device."""

    def __init__(self, custodian: LocalCustodian, client_id: str, device: MemoryDevice) -> None:
        self.client_id = client_id
        self.offer = custodian.begin_backup(client_id, "CUSTOM")
        self.sid = self.offer.session_id
        self.client = {
            c: shares.Reshare(
                shares.Share.from_secret_bytes(b),
                self.sid,
                new_kind=shares.BACKUP,
                new_share_id=self.offer.share_ids[c],
            )
            for c, b in device.load(client_id).items()
        }
        self.commitments = {c: p.commit() for c, p in self.client.items()}
        self.reveals: dict[str, bytes] = {}

    def commit(self, custodian: LocalCustodian) -> dict[str, bytes]:
        theirs = custodian.exchange_commitments(self.client_id, self.sid, self.commitments)
        self.reveals = {c: p.reveal(theirs[c]) for c, p in self.client.items()}
        return theirs

    def reveal(self, custodian: LocalCustodian) -> dict[str, shares.Share]:
        answer = custodian.exchange_reveals(self.client_id, self.sid, self.reveals)
        return {c: p.finish(answer[c]) for c, p in self.client.items()}


def new_wallet(w: Workers) -> tuple[str, MemoryDevice, WalletClient]:
    client_id = w.a.create_client()
    device = MemoryDevice()
    phone = w.client(w.a, client_id, device)
    phone.create_wallet()
    return client_id, device, phone


def session_context(s: SessionRecord, curve: str) -> dict[str, str]:
    """The KMS context a session's sealed party state is bound to (the custodian's contract:
    session, client, wallet, curve, kind ``session``)."""
    return {
        "session": s.session_id,
        "client": s.client_id,
        "wallet": s.wallet_id,
        "party": "custodian",
        "curve": curve,
        "kind": "session",
        "operation": s.operation,
    }


def assert_ended(w: Workers, client_id: str, session_id: str) -> None:
    """Nothing of the session is left: no row, no lock, no backup of its id."""
    store = w.b.store
    assert store.get_session(session_id) is None
    assert store.get_lock(client_id) is None
    assert store.get_backup(session_id) is None
    assert store.backup_pairs(session_id) == []


# -- any worker serves any step -----------------------------------------------------------


def test_key_generation_backup_and_recovery_alternate_between_two_workers(workers):
    w = workers
    endpoint = Alternating(w.a, w.b)
    client_id = w.a.create_client()
    device = MemoryDevice()
    phone = w.client(endpoint, client_id, device)
    addresses = phone.create_wallet()
    backup = phone.backup_wallet("PASSWORD", password=PASSWORD)
    assert backup.status == "completed"
    fresh = w.client(endpoint, client_id, MemoryDevice())
    assert fresh.recover_wallet("PASSWORD", password=PASSWORD) == addresses
    # Each step went to the other worker than the step before: every session's three steps
    # ran on two workers, its commitments on the other one than its start and its reveal.
    exchanges = ["exchange_commitments", "exchange_reveals"]
    assert [name for name, _ in endpoint.served] == [
        *["begin_keygen", *exchanges],
        *["begin_backup", *exchanges],
        *["begin_recovery", *exchanges],
    ]
    assert [i for _, i in endpoint.served] == [0, 1] * 4 + [0]
    assert w.rows() == []  # each finished session's row went with its record
    assert w.a.store.get_lock(client_id) is None


def test_each_step_on_any_worker_gives_a_wallet_that_pairs(workers):
    w = workers
    for order in [(w.a, w.b, w.a), (w.b, w.a, w.b), (w.a, w.a, w.b), (w.b, w.b, w.a)]:
        client_id = w.a.create_client()
        offer, mine = keygen_by_hand(*order, client_id)
        check_wallet(w.b, offer.wallet_id, mine)
        assert w.a.get_wallet(client_id).wallet_id == offer.wallet_id
    assert w.rows() == []


def test_a_worker_dropped_after_the_commitments_leaves_a_session_another_finishes(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    doomed = w.worker("a")
    run = BackupByHand(doomed, client_id, device)
    run.commit(doomed)
    # The worker is gone: its store closed, the object dropped; nothing of it is needed.
    doomed.store.close()
    del doomed
    row = present(w.b.store.get_session(run.sid))
    assert row.stage is SessionStage.REVEAL and set(row.client_commitments) == set(CURVES)
    new = run.reveal(w.b)
    assert w.b.store.get_session(run.sid) is None
    pairs = w.b.store.backup_pairs(run.sid)
    assert {p.curve: p.client_public_share for p in pairs} == {
        c: s.public_share for c, s in new.items()
    }
    w.b.abort(client_id, run.sid)  # the client stops here: its unfinished backup goes
    assert_ended(w, client_id, run.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"


CHILD = textwrap.dedent(
    """
    import json, os, sys
    from portal_core.backup import LocalCustodian
    from portal_core.kms import Pkcs11Kms
    from portal_core.store import SqliteStore

    args = json.loads(sys.argv[1])
    custodian = LocalCustodian(
        Pkcs11Kms.from_env(args["env"]), SqliteStore(args["db"]), key_name=args["key_name"],
        clock=lambda: args["now"],
    )
    commitments = {c: bytes.fromhex(m) for c, m in args["commitments"].items()}
    out = custodian.exchange_commitments(args["client_id"], args["session_id"], commitments)
    print(json.dumps({c: m.hex() for c, m in out.items()}), flush=True)
    os._exit(77)  # killed once it answered: no cleanup, no close
    """
)


def test_a_step_in_another_process_killed_after_answering(workers, hsm_env):
    w = workers
    client_id = w.a.create_client()
    offer = w.a.begin_keygen(client_id, CURVES)
    client = {
        c: shares.KeyGen(c, shares.CLIENT, offer.session_id, wallet_id=offer.wallet_id)
        for c in CURVES
    }
    args = {
        "env": hsm_env,
        "db": str(w.db),
        "key_name": w.key_name,
        "now": w.clock.now,
        "client_id": client_id,
        "session_id": offer.session_id,
        "commitments": {c: p.commit().hex() for c, p in client.items()},
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **hsm_env},
        check=False,
    )
    assert proc.returncode == 77, proc.stderr
    theirs = {c: bytes.fromhex(m) for c, m in json.loads(proc.stdout).items()}
    answer = w.b.exchange_reveals(
        client_id, offer.session_id, {c: p.reveal(theirs[c]) for c, p in client.items()}
    )
    mine = {c: p.finish(answer[c]) for c, p in client.items()}
    check_wallet(w.a, offer.wallet_id, mine)
    assert w.rows() == [] and w.a.store.get_lock(client_id) is None


# -- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "die_at",
    ["custodian.backup.finished", "custodian.backup.sealed", "store.add_backup.pair"],
)
def test_a_worker_dying_in_the_reveal_step_leaves_a_session_that_expires_cleanly(workers, die_at):
    w = workers
    client_id, device, phone = new_wallet(w)
    armed: list[str] = []

    def die(name: str) -> None:
        # A BaseException: no clean-up runs, as in a killed process.
        if name in armed:
            raise Crash(name)

    doomed = w.worker("a", checkpoint=die)
    run = BackupByHand(doomed, client_id, device)
    run.commit(w.b)
    armed.append(die_at)  # only the reveal step dies
    with pytest.raises(Crash):
        run.reveal(doomed)
    assert present(w.b.store.get_session(run.sid)).stage is SessionStage.FINISHING
    # Until it expires the session is claimed: the other worker refuses to run the step again.
    with pytest.raises(WalletModificationInProgress, match="busy"):
        run.reveal(w.b)
    with pytest.raises(WalletModificationInProgress):
        phone.backup_wallet("CUSTOM")
    w.clock.advance(w.b.lock_ttl)
    with pytest.raises(WalletModificationInProgress, match="expired"):
        run.reveal(w.b)
    assert_ended(w, client_id, run.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"


def test_expired_sessions_are_ended_by_a_new_session_or_a_sweep(workers):
    w = workers
    first, device1, phone1 = new_wallet(w)
    second, device2, _ = new_wallet(w)
    stale = BackupByHand(w.a, first, device1)
    stale.commit(w.a)
    other = BackupByHand(w.a, second, device2)  # never goes further
    w.clock.advance(w.a.lock_ttl + 1)
    assert {s.session_id for s in w.b.store.expired_sessions(w.clock.now)} == {
        stale.sid,
        other.sid,
    }
    # The client's next session ends its own expired one, not the other client's.
    assert phone1.backup_wallet("CUSTOM").status == "completed"
    assert w.b.store.get_session(stale.sid) is None
    assert w.b.store.get_session(other.sid) is not None
    with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
        stale.reveal(w.b)
    assert w.b.end_expired_sessions() == 1
    assert_ended(w, second, other.sid)
    assert w.b.end_expired_sessions() == 0


def test_a_session_met_expired_at_its_commitments_is_ended(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    run = BackupByHand(w.a, client_id, device)
    w.clock.advance(w.a.lock_ttl)
    with pytest.raises(WalletModificationInProgress, match="expired"):
        run.commit(w.b)
    assert_ended(w, client_id, run.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"


# -- one step, once -------------------------------------------------------------------------


def test_replayed_commitments_are_refused_on_either_worker(workers):
    w = workers
    client_id, device, _ = new_wallet(w)
    run = BackupByHand(w.a, client_id, device)
    first = run.commit(w.a)
    recorded = present(w.a.store.get_session(run.sid)).client_commitments
    assert recorded == run.commitments
    for worker in (w.a, w.b):
        with pytest.raises(ValueError, match="at step 'reveal', not 'commit'"):
            run.commit(worker)
    # Other commitments (a client trying to change its mind) are refused the same way.
    forged = {c: m[:-1] + bytes([m[-1] ^ 1]) for c, m in run.commitments.items()}
    with pytest.raises(ValueError, match="at step 'reveal'"):
        w.b.exchange_commitments(client_id, run.sid, forged)
    assert present(w.a.store.get_session(run.sid)).client_commitments == recorded
    # The session is unharmed: the reveal step runs, with the commitments of the first call.
    assert first and set(run.reveal(w.b)) == set(CURVES)


def at_once(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[Exception]]:
    """Runs ``calls`` in threads at once; their results, and the errors they raised."""
    results: list[Any] = []
    errors: list[Exception] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            results.append(call())
        except Exception as e:  # surfaced to the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a thread is stuck"
    return results, errors


def meeting_workers(w: Workers) -> tuple[LocalCustodian, LocalCustodian, list[str]]:
    """Two workers that both read a session before either moves it (see MeetingStore), and
    the custodian steps they ran."""
    steps: list[str] = []
    x = w.worker("a", checkpoint=steps.append, store_type=MeetingStore)
    y = w.worker("b", checkpoint=steps.append, store_type=MeetingStore)
    return x, y, steps


def meet(*workers: LocalCustodian) -> None:
    barrier = threading.Barrier(len(workers), timeout=60)
    for worker in workers:
        cast(MeetingStore, worker.store).meet = barrier


def test_two_workers_revealing_at_once_run_the_step_once(workers):
    w = workers
    client_id, device, _ = new_wallet(w)
    x, y, steps = meeting_workers(w)
    run = BackupByHand(x, client_id, device)
    run.commit(y)
    meet(x, y)
    answers, refused = at_once(
        [
            lambda: x.exchange_reveals(client_id, run.sid, run.reveals),
            lambda: y.exchange_reveals(client_id, run.sid, run.reveals),
        ]
    )
    assert len(answers) == 1 and len(refused) == 1, (answers, refused)
    assert isinstance(refused[0], WalletModificationInProgress)
    assert "busy" in str(refused[0])
    # The loser did none of the step's work: one reveal, one sealing, one record.
    assert steps.count("custodian.backup.finished") == 1, steps
    # The winner's answer finishes the client's side, against the one backup recorded.
    mine = {c: p.finish(answers[0][c]) for c, p in run.client.items()}
    pairs = w.a.store.backup_pairs(run.sid)
    assert {p.curve: p.client_public_share for p in pairs} == {
        c: s.public_share for c, s in mine.items()
    }
    assert w.rows() == []


def test_the_same_commitments_on_two_workers_at_once_are_taken_once(workers):
    w = workers
    client_id, device, _ = new_wallet(w)
    x, y, steps = meeting_workers(w)
    run = BackupByHand(x, client_id, device)
    other = {c: m[:-1] + bytes([m[-1] ^ 1]) for c, m in run.commitments.items()}
    meet(x, y)
    answers, refused = at_once(
        [
            lambda: x.exchange_commitments(client_id, run.sid, run.commitments),
            lambda: y.exchange_commitments(client_id, run.sid, other),
        ]
    )
    assert len(answers) == 1 and len(refused) == 1, (answers, refused)
    assert isinstance(refused[0], WalletModificationInProgress)
    assert "moved on" in str(refused[0])
    assert steps.count("custodian.session.committed") == 1
    recorded = present(w.a.store.get_session(run.sid)).client_commitments
    assert recorded in (run.commitments, other)
    cast(MeetingStore, x.store).meet = cast(MeetingStore, y.store).meet = None
    if recorded == run.commitments:  # the genuine ones won: the session runs on
        run.reveals = {c: p.reveal(answers[0][c]) for c, p in run.client.items()}
        assert set(run.reveal(y)) == set(CURVES)


# -- what the store holds -------------------------------------------------------------------


def test_the_database_file_holds_no_session_secret_in_clear(workers):
    w = workers
    client_id, device, _ = new_wallet(w)
    run = BackupByHand(w.a, client_id, device)
    secrets: list[bytes] = []

    def collect() -> None:
        row = present(w.a.store.get_session(run.sid))
        for curve, sealed in row.sealed_states.items():
            # The thief's prize: the suspended party (the custodian's signing share scalar,
            # nonce, seed), which only the KMS gives back.
            state = w.kms["a"].open(sealed, context=session_context(row, curve))
            party = shares.resume(state)
            assert isinstance(party, shares.Reshare) and party.curve == curve
            scalar, nonce, seed = state[-96:-64], state[-64:-32], state[-32:]
            secrets.extend([state, scalar, nonce, seed])

    collect()
    run.commit(w.b)
    collect()
    for s in w.stores:
        s.truncate_wal()
    found = b"".join(
        Path(f"{w.db}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{w.db}{suffix}").exists()
    )
    assert run.sid.encode() in found  # the row is there, and readable
    for secret in secrets:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in found
    # The record's repr shows no sealed state either.
    text = repr(present(w.a.store.get_session(run.sid)))
    assert "sealed_states" not in text and "client_commitments" not in text


def test_a_sealed_state_moved_to_another_session_or_curve_does_not_open(workers):
    w = workers
    first, device1, phone1 = new_wallet(w)
    second, device2, phone2 = new_wallet(w)
    victim = BackupByHand(w.a, first, device1)
    thief = BackupByHand(w.a, second, device2)
    stolen = present(w.a.store.get_session(victim.sid)).sealed_states
    # Someone with write access to the database puts the victim's sealed parties in their
    # own session's row (base64 JSON, as the store keeps them).
    put_states(w.a.store, thief.sid, dict(stolen))
    with pytest.raises(ShareVerificationFailed, match="does not open"):
        thief.commit(w.b)
    assert_ended(w, second, thief.sid)  # that session is over, its wallet free
    # Within one session, the two curves' states swapped do not open either.
    swapped = dict(zip(CURVES, reversed([stolen[c] for c in CURVES]), strict=True))
    put_states(w.a.store, victim.sid, swapped)
    with pytest.raises(ShareVerificationFailed, match="does not open"):
        victim.commit(w.a)
    assert_ended(w, first, victim.sid)
    assert phone1.backup_wallet("CUSTOM").status == "completed"
    assert phone2.backup_wallet("CUSTOM").status == "completed"


def put_states(store: SqliteStore, session_id: str, states: dict[str, bytes]) -> None:
    """Writes sealed states into a session's row, as someone with the database file could."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE sessions SET sealed_states = ? WHERE session_id = ?",
            (json.dumps({c: base64.b64encode(b).decode() for c, b in states.items()}), session_id),
        )


def test_a_state_of_an_earlier_session_of_the_same_wallet_does_not_open(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    earlier = BackupByHand(w.a, client_id, device)
    old = dict(present(w.a.store.get_session(earlier.sid)).sealed_states)
    w.a.abort(client_id, earlier.sid)
    later = BackupByHand(w.b, client_id, device)
    # Same client, wallet, operation and curves: only the session id tells them apart.
    put_states(w.a.store, later.sid, old)
    with pytest.raises(ShareVerificationFailed, match="does not open"):
        later.commit(w.a)
    assert_ended(w, client_id, later.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"


def test_an_abort_during_the_reveal_step_keeps_its_result_out(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    aborted: list[bool] = []

    def abort_now(name: str) -> None:
        # The client's abort arrives at the other worker while this one seals the result.
        if name == "custodian.backup.sealed":
            aborted.append(w.b.abort(client_id, run.sid))

    x = w.worker("a", checkpoint=abort_now)
    run = BackupByHand(x, client_id, device)
    run.commit(w.b)
    with pytest.raises(WalletModificationInProgress):
        run.reveal(x)
    assert aborted == [True]
    assert_ended(w, client_id, run.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"


def test_another_clients_session_id_is_refused_and_changes_nothing(workers):
    w = workers
    owner, device, _ = new_wallet(w)
    intruder, _, _ = new_wallet(w)
    run = BackupByHand(w.a, owner, device)

    def snapshot() -> tuple[Any, ...]:
        return (w.b.store.get_session(run.sid), w.b.store.get_lock(owner))

    before = snapshot()
    for worker in (w.a, w.b):
        with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
            worker.exchange_commitments(intruder, run.sid, run.commitments)
        with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
            worker.exchange_reveals(intruder, run.sid, run.commitments)
        worker.abort(intruder, run.sid)
        assert snapshot() == before
    run.commit(w.b)
    before = snapshot()
    with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
        w.a.exchange_reveals(intruder, run.sid, run.reveals)
    w.b.abort(intruder, run.sid)
    assert snapshot() == before
    assert set(run.reveal(w.a)) == set(CURVES)


def test_abort_works_from_the_store_alone_on_any_worker(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    run = BackupByHand(w.a, client_id, device)
    run.commit(w.a)
    assert w.b.abort(client_id, run.sid) is True
    assert_ended(w, client_id, run.sid)
    with pytest.raises(WalletModificationInProgress, match="unknown or has ended"):
        run.reveal(w.a)
    assert phone.backup_wallet("CUSTOM").status == "completed"


class FailingKms:
    """A KMS whose HSM has gone away for opening: seals still work, opens fail."""

    def __init__(self, kms: Any) -> None:
        self.kms = kms

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kms, name)

    def open(self, sealed: bytes, *, context: Any) -> bytes:
        raise RuntimeError("the HSM is unavailable")


def test_a_failing_hsm_leaves_the_commitments_to_retry_and_ends_a_claimed_reveal(workers):
    w = workers
    client_id, device, phone = new_wallet(w)
    w.kms["broken"] = FailingKms(w.kms["a"])
    broken = w.worker("broken")
    run = BackupByHand(w.a, client_id, device)
    # Before the commitments are taken the step can be retried, on another worker.
    with pytest.raises(RuntimeError, match="unavailable"):
        run.commit(broken)
    assert present(w.b.store.get_session(run.sid)).stage is SessionStage.COMMIT
    run.commit(w.b)
    # A claimed reveal step that fails ends the session at once: the wallet is free again
    # without waiting for the lock to expire.
    with pytest.raises(RuntimeError, match="unavailable"):
        run.reveal(broken)
    assert_ended(w, client_id, run.sid)
    assert phone.backup_wallet("CUSTOM").status == "completed"

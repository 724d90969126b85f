"""A worker killed with SIGKILL in the middle of backups under load: every backup completes or
is cleanly aborted, the store stays consistent, and the other workers keep serving.

The service runs three uvicorn workers over one SQLite file and one SoftHSM2 token; eight
devices back up their wallets in a loop, each over its own connections, while the test kills
the worker serving the most connections, and later another (the supervisor starts new ones).
A second test kills every worker in the middle of one backup, which their replacements
finish.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backup_helpers import FAST
from http_world import RunningService, running_service
from portal_core.backup import MemoryDevice, WalletClient
from portal_core.client import HttpCustodian
from portal_core.exceptions import PortalError, WalletModificationInProgress

DEVICES = 8
RUN_S = 6.0  # backups run this long in all, the kill about a third of the way in
JOIN_S = 60.0
# A session whose abort could not reach the service (its worker had just died) expires after
# this, and the next backup of its wallet aborts it.
LOCK_TTL_S = 5.0


@pytest.fixture(scope="module")
def service(
    hsm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    with running_service(
        hsm_env,
        tmp_path_factory.mktemp("faults"),
        operator="custodian-op",
        workers=3,
        lock_ttl=LOCK_TTL_S,
    ) as running:
        yield running


def _workers(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _connections(pid: int) -> int:
    """Established TCP connections a process holds (sockets in its fd table)."""
    try:
        return sum(
            1
            for fd in os.listdir(f"/proc/{pid}/fd")
            if "socket" in os.readlink(f"/proc/{pid}/fd/{fd}")
        )
    except OSError:
        return 0


def _assert_ready(service: RunningService) -> None:
    ready = httpx.get(service.base_url + "/readyz", timeout=10)
    if ready.status_code != 200:  # every worker's threads into the log, to say where
        for pid in _workers(service.process.pid):
            os.kill(pid, signal.SIGUSR1)
        time.sleep(1)
        log = service.log.read_text(errors="replace")
        raise AssertionError(f"/readyz: {ready.text}\n{log[-20000:]}")


def _backup_once_unlocked(device: WalletClient) -> None:
    """A backup, waiting (bounded) for a session its own abandoned attempt left to expire."""
    deadline = time.monotonic() + LOCK_TTL_S + 10
    while True:
        try:
            device.backup_wallet("CUSTOM")
            return
        except WalletModificationInProgress:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_worker_killed_mid_backup_leaves_a_consistent_store(
    service: RunningService, tmp_path: Path
) -> None:
    admin = service.admin()
    devices = []
    for i in range(DEVICES):
        made = admin.create_client_with_key()
        api = HttpCustodian(service.base_url, made.client_api_key, timeout_s=10.0)
        device = WalletClient(
            api, made.client_id, device=MemoryDevice(), custom_key_dir=str(tmp_path / f"k{i}"),
            argon2=FAST,
        )  # fmt: skip
        device.create_wallet()
        devices.append(device)

    done: list[int] = [0] * DEVICES
    failed: list[list[str]] = [[] for _ in range(DEVICES)]
    stop = time.monotonic() + RUN_S

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            try:
                devices[i].backup_wallet("CUSTOM")
                done[i] += 1
            except PortalError as e:  # the flow aborted what it started
                failed[i].append(type(e).__name__)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(DEVICES)]
    for t in threads:
        t.start()
    time.sleep(RUN_S / 3)
    workers = _workers(service.process.pid)
    assert len(workers) == 3, workers
    victim = max(workers, key=_connections)
    os.kill(victim, signal.SIGKILL)
    time.sleep(RUN_S / 3)
    second = max((w for w in _workers(service.process.pid) if w != victim), key=_connections)
    os.kill(second, signal.SIGKILL)
    for t in threads:
        t.join(timeout=JOIN_S)
    assert not any(t.is_alive() for t in threads), "a device hung"
    assert sum(done) > 0, failed
    assert not {victim, second} & set(_workers(service.process.pid))

    # The others kept serving (and the supervisor replaced the dead one).
    _assert_ready(service)
    for device in devices:  # every wallet can still be backed up and is recoverable
        _backup_once_unlocked(device)
        assert device.is_wallet_recoverable()

    # The store: no session or lock left, and per wallet exactly one CUSTOM backup, completed,
    # with both curves' pairs (every other one completed-and-replaced, or discarded).
    with sqlite3.connect(service.db) as db:
        clients = [d.client_id for d in devices]
        marks = ",".join("?" * len(clients))
        assert db.execute(
            f"SELECT COUNT(*) FROM sessions WHERE client_id IN ({marks})",
            clients,
        ).fetchone() == (0,)
        assert db.execute(
            f"SELECT COUNT(*) FROM locks WHERE client_id IN ({marks})",
            clients,
        ).fetchone() == (0,)
        rows = db.execute(
            "SELECT w.client_id, p.status, COUNT(*) FROM backup_pairs p JOIN wallets w "
            f"ON w.wallet_id = p.wallet_id WHERE w.client_id IN ({marks}) "
            "GROUP BY w.client_id, p.backup_id, p.status",
            clients,
        ).fetchall()
    assert sorted(rows) == sorted((c, "completed", 2) for c in clients), rows


def test_a_backup_started_on_killed_workers_is_finished_by_their_replacements(
    service: RunningService, tmp_path: Path
) -> None:
    """Every worker dies between the reshare and the backup's statuses: the backup's state
    is in the store, and the new workers finish it."""
    made = service.admin().create_client_with_key()
    killed: list[int] = []

    def kill_every_worker(step: str) -> None:
        if step != "client.backup.reshared" or killed:
            return
        killed.extend(_workers(service.process.pid))
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = [p for p in _workers(service.process.pid) if p not in killed]
            if len(fresh) == 3:
                try:
                    if httpx.get(service.base_url + "/readyz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise AssertionError("the supervisor did not replace its workers within 30 s")

    device = WalletClient(
        HttpCustodian(service.base_url, made.client_api_key),
        made.client_id,
        device=MemoryDevice(),
        custom_key_dir=str(tmp_path),
        argon2=FAST,
        checkpoint=kill_every_worker,
    )
    device.create_wallet()
    result = device.backup_wallet("CUSTOM")
    assert len(killed) == 3 and result.status == "completed"
    assert not set(killed) & set(_workers(service.process.pid))
    addresses = device.addresses()
    fresh = WalletClient(
        HttpCustodian(service.base_url, made.client_api_key),
        made.client_id,
        device=MemoryDevice(),
        custom_key_dir=str(tmp_path),
    )
    assert fresh.recover_wallet("CUSTOM") == addresses

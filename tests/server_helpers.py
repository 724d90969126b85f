"""Running servers in tests: a free 127.0.0.1 port, waiting for ``/healthz``, stopping a
server process (and its workers) for sure, and an ASGI app served in a thread of the test.

Every wait is bounded (START_TIMEOUT_S, STOP_TIMEOUT_S) and every server listens on
127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from portal_core.server.demo import free_port as free_port
from portal_core.server.demo import stop_process
from portal_core.server.receiver import SECRET_ENV, ReceiverStore
from portal_core.webhooks import HttpIntegratorStore, new_secret

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"/healthz did not answer within {START_TIMEOUT_S:.0f} s: {last!r}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops a server process and its workers within the bound (STOP_TIMEOUT_S each step)."""
    stop_process(proc, STOP_TIMEOUT_S)


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serves the ASGI ``app`` with uvicorn on a free 127.0.0.1 port in a thread of this
    process; yields its base URL; stops it on exit."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "the server thread ended before it started serving"
            assert time.monotonic() < deadline, f"not serving within {START_TIMEOUT_S:.0f} s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)
        assert not thread.is_alive(), f"the server thread did not stop in {STOP_TIMEOUT_S:.0f} s"


# -- the reference integrator receiver (portal_core.server.receiver), a real process -------


@dataclass
class Receiver:
    base: str
    secret: str
    db: Path
    log: Path
    opened: list[HttpIntegratorStore] = field(default_factory=list)

    def store(self, secret: str | None = None, **kw: Any) -> HttpIntegratorStore:
        made = HttpIntegratorStore(self.base, secret or self.secret, **kw)
        self.opened.append(made)
        return made

    def shares(self) -> int:
        with ReceiverStore(self.db) as db:
            row = db.query_one("SELECT COUNT(*) AS n FROM shares")
            assert row is not None
            return int(row["n"])


@pytest.fixture(name="receiver")
def receiver_fixture(tmp_path: Path) -> Iterator[Receiver]:
    """The reference receiver as a real server (its own process), with a fresh secret."""
    secret = new_secret()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db, log_path = tmp_path / "receiver.db", tmp_path / "receiver.log"
    cmd = [
        sys.executable, "-m", "portal_core.server.receiver",
        "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, SECRET_ENV: secret},
            start_new_session=True,
        )
    made = Receiver(base, secret, db, log_path)
    try:
        wait_healthy(base, proc)
        yield made
    finally:
        for store in made.opened:
            store.close()
        stop(proc)

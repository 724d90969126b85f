"""The custodian as a real HTTP service for the tests: a uvicorn process with two workers on
a free 127.0.0.1 port, over the session's SoftHSM token and a SQLite file of its own, and
what the flow tests need to use it the way they use a :class:`LocalCustodian`.

``app()`` is the factory the server processes run (``uvicorn --factory http_world:app``): it
builds a :class:`~portal_core.server.service.Service` from ``PKCS11_*`` (the token) and
``PORTAL_TEST_*`` (the database, the operator, the enclave's options) in the environment.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enclave_fixtures import ORIGIN, RP_ID
from portal_core.backup.api import CustodianApi
from portal_core.backup.custodian import LocalCustodian
from portal_core.client import HttpAdmin, HttpCustodian
from portal_core.store import SqliteStore
from portal_core.tenants import Tenants

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def app() -> Any:
    """The service's app, built from the environment (each worker builds its own)."""
    from portal_core.enclave import PasskeyEnclave, PinVault, SqliteEnclaveStore
    from portal_core.kms import Pkcs11Kms
    from portal_core.server.logs import configure_logging
    from portal_core.server.metrics import Metrics, TimedKms
    from portal_core.server.routes import service_app
    from portal_core.server.runtime import start_lock
    from portal_core.server.service import Limits, Service

    configure_logging()
    # SIGUSR1: every thread's stack to the log (a test that finds a worker stuck says where).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    env = os.environ
    metrics = Metrics()
    # Opened one worker at a time, as `portal-core serve` does (SoftHSM2 can fail to find a
    # token that another process is opening at that moment).
    with start_lock(str(Path(env["PORTAL_TEST_DB"]).parent)):
        kms: Any = TimedKms(Pkcs11Kms.from_env(env), metrics)
        store = SqliteStore(env["PORTAL_TEST_DB"], timeout=30.0)
        vault = passkey = None
        if env.get("PORTAL_TEST_ENCLAVE") == "1":
            enclave_store = SqliteEnclaveStore(env["PORTAL_TEST_DB"], timeout=30.0)
            vault = PinVault(kms, enclave_store, operator=env["PORTAL_TEST_OPERATOR"])
            passkey = PasskeyEnclave(
                kms, enclave_store, rp_id=RP_ID, rp_name="portal-core tests", origins=[ORIGIN]
            )
    service = Service(
        store=store,
        kms=kms,
        tenants=Tenants(store),
        operator=env["PORTAL_TEST_OPERATOR"],
        vault=vault,
        passkey=passkey,
        metrics=metrics,
        custodian_options={
            "key_name": env["PORTAL_TEST_KEY_NAME"],
            "lock_ttl": float(env["PORTAL_TEST_LOCK_TTL"]),
        },
        limits=Limits(
            guesses=(int(env["PORTAL_TEST_GUESS_LIMIT"]), 60.0),
            auth_failures=(int(env["PORTAL_TEST_AUTH_LIMIT"]), 60.0),
        ),
    )
    return service_app(service)


@dataclass
class RunningService:
    """A service process and the tenant the tests act for."""

    base_url: str
    db: Path
    key_name: str
    admin_key: str
    tenant_id: str
    process: subprocess.Popen[bytes]
    log: Path

    def admin(self, api_key: str | None = None) -> HttpAdmin:
        return HttpAdmin(self.base_url, api_key or self.admin_key)

    def new_tenant(self, name: str) -> tuple[str, str]:
        """Another tenant: ``(tenant_id, admin_api_key)``."""
        with SqliteStore(self.db) as store:
            made = Tenants(store).create_tenant(name)
        return made.tenant_id, made.admin_key.api_key


# The CustodianApi calls, each taking the client id first.
_CLIENT_CALLS = frozenset(n for n in dir(CustodianApi) if not n.startswith("_"))


@contextmanager
def running_service(
    hsm_env: dict[str, str],
    data: Path,
    *,
    operator: str,
    enclave: bool = True,
    workers: int = 2,
    guess_limit: int = 1000,
    auth_limit: int = 1000,
    lock_ttl: float = 600.0,
) -> Iterator[RunningService]:
    """Starts the service (``workers`` processes; with the enclave's vault and passkey
    endpoints unless ``enclave`` is false) and a first tenant; stops it on exit. The rate
    limits (per minute) are high unless a test is about them; ``lock_ttl``: seconds after
    which an abandoned session expires."""
    from server_helpers import free_port, stop, wait_healthy

    data.mkdir(parents=True, exist_ok=True)
    (data / "metrics").mkdir()
    db = data / "custodian.sqlite"
    with SqliteStore(db) as store:  # the schema and the tenant exist before any worker
        made = Tenants(store).create_tenant("tests")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key_name = f"service-shares-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        **hsm_env,
        "PORTAL_TEST_DB": str(db),
        "PORTAL_TEST_OPERATOR": operator,
        "PORTAL_TEST_ENCLAVE": "1" if enclave else "0",
        "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics"),
        "PORTAL_TEST_GUESS_LIMIT": str(guess_limit),
        "PORTAL_TEST_AUTH_LIMIT": str(auth_limit),
        # A key of its own: the session's token is shared with tests that check which keys
        # exist in it.
        "PORTAL_TEST_KEY_NAME": key_name,
        "PORTAL_TEST_LOCK_TTL": str(lock_ttl),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "http_world:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip
    log_path = data / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
        )
    try:
        wait_healthy(base, proc)
        yield RunningService(
            base, db, key_name, made.admin_key.api_key, made.tenant_id, proc, log_path
        )
    finally:
        stop(proc)


class HttpCustodianFacade:
    """What the flow tests call on a custodian, over HTTP: clients are made with the admin
    key, each client's calls go through an :class:`HttpCustodian` with that client's own
    key, and ``store`` is the service's database file opened by the test (to read it, or to
    play whoever can write it)."""

    _backup_context = staticmethod(LocalCustodian._backup_context)
    _signing_context = staticmethod(LocalCustodian._signing_context)

    def __init__(self, service: RunningService) -> None:
        self.service = service
        self.key_name = service.key_name
        self.admin = service.admin()
        self.keys: dict[str, str] = {}
        self._apis: dict[str, HttpCustodian] = {}
        self.store = SqliteStore(service.db)

    def __getattr__(self, name: str) -> Any:
        if name not in _CLIENT_CALLS:
            raise AttributeError(name)

        def call(client_id: str, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.api(client_id), name)(client_id, *args, **kwargs)

        return call

    def close(self) -> None:
        self.store.close()
        for api in self._apis.values():
            api.close()

    def __repr__(self) -> str:
        return f"HttpCustodianFacade({self.service.base_url!r})"

    def create_client(self) -> str:
        made = self.admin.create_client_with_key()
        self.keys[made.client_id] = made.client_api_key
        return made.client_id

    def authorize_eject(self, client_id: str) -> float:
        return self.admin.authorize_eject(client_id)

    def api(self, client_id: str) -> HttpCustodian:
        if client_id not in self._apis:
            key = self.keys.get(client_id, "pc_cli_" + "0" * 32 + "_" + "A" * 43)
            self._apis[client_id] = HttpCustodian(self.service.base_url, key)
        return self._apis[client_id]


@pytest.fixture(scope="session")
def http_service(
    hsm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The session's custodian service (two workers)."""
    from backup_helpers import CUSTODIAN_OPERATOR

    with running_service(
        hsm_env, tmp_path_factory.mktemp("service"), operator=CUSTODIAN_OPERATOR
    ) as service:
        yield service

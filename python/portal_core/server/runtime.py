"""Running the custodian's service from its :class:`~portal_core.server.config.Settings`:
the :class:`~portal_core.server.service.Service` of one worker (:func:`open_service`), the
factory each uvicorn worker calls (:func:`app_from_settings_env`), and ``portal-core
serve`` (:func:`serve`).

The embedded default, under the data directory ``D`` (made 0700 when missing):

* ``D/custodian.db``: the store (records, tenants, API key hashes, the audit trail) and,
  when the vault or the passkey enclave runs, the enclave's tables; 0600, with its
  ``-wal`` and ``-shm`` (``portal-core tenants create --data-dir D`` writes the same file);
* ``D/hsm/``: a SoftHSM2 token made on first start when no ``PKCS11_*`` variable is set,
  as ``portal-core hsm init D/hsm`` makes it (0700; its random user PIN in ``D/hsm/env``
  and its SO PIN in ``D/hsm/so-pin``, both 0600, never printed);
* ``D/start.lock``: held (``flock``) by a process while it makes the token, the schemas
  and the key-encryption keys, so workers starting at once make each exactly once. PKCS#11
  cannot create a key atomically (two processes could both make version 1): the lock is
  what keeps first starts apart.

With ``store`` set (``--store postgresql://...``), the store and the enclave's tables live
in that PostgreSQL database instead of ``D/custodian.db`` (:mod:`portal_core.store.postgres`:
its migrations run on open, under an advisory lock, so workers on several machines can
start at once); ``D`` keeps the token, the start lock and the metrics.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.applications import Starlette

from portal_core.kms import HSM_EXTRA_HINT, softhsm
from portal_core.server.config import LOG_LEVELS, ConfigError, Settings, load_settings
from portal_core.server.logs import configure_logging
from portal_core.server.metrics import Metrics, TimedKms
from portal_core.server.routes import service_app
from portal_core.server.service import Service
from portal_core.store import STORE_FILE

if TYPE_CHECKING:
    from portal_core.enclave import EnclaveStore, PasskeyEnclave
    from portal_core.kms.pkcs11 import Pkcs11Kms

__all__ = [
    "HSM_DIR",
    "LOCK_FILE",
    "SHUTDOWN_TIMEOUT_S",
    "START_LOCK_TIMEOUT_S",
    "app_from_settings_env",
    "open_service",
    "serve",
    "start_lock",
]

HSM_DIR = "hsm"
LOCK_FILE = "start.lock"
START_LOCK_TIMEOUT_S = 60.0
# Seconds uvicorn gives open connections to finish once asked to stop (SIGTERM, SIGINT).
SHUTDOWN_TIMEOUT_S = 10


@contextlib.contextmanager
def start_lock(data_dir: str, timeout: float = START_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Holds ``data_dir/start.lock`` exclusively (``flock``), waiting at most ``timeout``
    seconds for another process to let it go. The kernel drops the lock if the holder dies.

    Raises:
        ConfigError: the lock is still held after ``timeout`` seconds, or the file cannot
            be opened.
    """
    path = os.path.join(data_dir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(f"cannot open {path}: {e.strerror or type(e).__name__}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"{path} is still locked after {timeout:g} s: another process is "
                        "starting a service on this data directory, or hangs doing so"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _make_data_dir(settings: Settings) -> None:
    try:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)  # owner only when made here
    except OSError as e:
        raise ConfigError(
            f"{settings.source('data_dir')}: cannot create {settings.data_dir}: "
            f"{e.strerror or type(e).__name__}"
        ) from None


def _open_kms(settings: Settings, environ: Mapping[str, str]) -> Pkcs11Kms:
    """The HSM the ``PKCS11_*`` environment names, or the embedded token (made first if
    missing; call with the start lock held)."""
    try:
        from portal_core.kms.pkcs11 import Pkcs11Kms
    except ModuleNotFoundError as e:
        raise ImportError(f"{e}; {HSM_EXTRA_HINT}") from None
    if settings.kms == "pkcs11":
        return Pkcs11Kms.from_env(environ)
    env_file, _ = softhsm.init_token_dir(os.path.join(settings.data_dir, HSM_DIR))
    token = softhsm.read_env_file(env_file)
    # SoftHSM2 reads SOFTHSM2_CONF from the process environment when the module starts.
    os.environ["SOFTHSM2_CONF"] = token["SOFTHSM2_CONF"]
    return Pkcs11Kms.from_env({**environ, **token})


def _store_openers(settings: Settings) -> tuple[Callable[[], Any], Callable[[], EnclaveStore]]:
    """How this worker opens the custodian's store and the enclave's: SQLite in the data
    directory, or the PostgreSQL database ``store`` names, each store with a pool of at
    most ``blocking_threads`` connections (the threads that make store calls: none of them
    waits for a connection)."""
    if settings.store is None:
        from portal_core.store import SqliteStore
        from portal_core.store.enclave_sqlite import SqliteEnclaveStore

        path = os.path.join(settings.data_dir, STORE_FILE)
        return (lambda: SqliteStore(path)), (lambda: SqliteEnclaveStore(path))
    from portal_core.store.postgres import PostgresEnclaveStore, PostgresStore

    url, pool = settings.store, settings.blocking_threads
    return (
        lambda: PostgresStore(url, pool_size=pool),
        lambda: PostgresEnclaveStore(url, pool_size=pool),
    )


def open_service(settings: Settings, environ: Mapping[str, str] | None = None) -> Service:
    """One worker's :class:`Service`: the data directory, the HSM and the store (SQLite in
    the data directory, or the PostgreSQL database ``settings.store`` names) opened (each
    made on first start), the tenants, the vault and the passkey enclave when
    enabled, and every key-encryption key they seal under (made on first start, under
    :func:`start_lock`). ``environ``: where the ``PKCS11_*`` variables are read (default:
    the process's). :meth:`Service.close` closes what this opened.

    Raises:
        ConfigError: the data directory cannot be made or stays locked; the passkey
            settings are refused.
        HsmConfigError, HsmAuthError, HsmUnavailable: the HSM (see ``Pkcs11Kms``).
        StoreError, EnclaveStoreError: the store cannot be opened.
        ImportError: an extra (``hsm``, ``postgres`` for a PostgreSQL store, or ``enclave``
            for passkeys) is not installed.
    """
    from portal_core.enclave import PinVault
    from portal_core.tenants import Tenants

    env = os.environ if environ is None else environ
    _make_data_dir(settings)
    open_store, open_enclave_store = _store_openers(settings)
    closing = contextlib.ExitStack()
    try:
        with start_lock(settings.data_dir):
            metrics = Metrics()
            kms: Any = TimedKms(closing.enter_context(_open_kms(settings, env)), metrics)
            store = closing.enter_context(open_store())
            vault: PinVault | None = None
            passkey: PasskeyEnclave | None = None
            if settings.vault or settings.passkey_rp_id:
                enclave_store = open_enclave_store()
                closing.callback(enclave_store.close)
                if settings.vault:
                    vault = PinVault(
                        kms,
                        enclave_store,
                        operator=settings.operator,
                        max_tries=settings.vault_max_tries,
                    )
                if settings.passkey_rp_id:
                    passkey = _passkey(settings, kms, enclave_store)
            service = Service(
                store=store,
                kms=kms,
                tenants=Tenants(store),
                operator=settings.operator,
                vault=vault,
                passkey=passkey,
                custodian_options={
                    "eject_window": settings.eject_window,
                    "lock_ttl": settings.lock_ttl,
                },
                closing=closing,
                metrics=metrics,
            )
            service.custodian()  # its key, made here under the lock on first start
    except BaseException:
        closing.close()
        raise
    return service


def _passkey(settings: Settings, kms: Any, store: EnclaveStore) -> PasskeyEnclave:
    from portal_core.enclave import PasskeyEnclave

    try:
        return PasskeyEnclave(
            kms,
            store,
            rp_id=settings.passkey_rp_id or "",
            rp_name=settings.passkey_rp_name or "",
            origins=settings.passkey_origins,
        )
    except (ValueError, TypeError) as e:
        names = ("passkey_rp_id", "passkey_rp_name", "passkey_origins")
        raise ConfigError(f"{', '.join(map(settings.source, names))}: {e}") from None


def app_from_settings_env() -> Starlette:
    """The factory for ``uvicorn --factory portal_core.server.runtime:app_from_settings_env``
    (what ``portal-core serve`` runs in each worker): the settings from the environment
    (:func:`~portal_core.server.config.load_settings`), JSON logs on stderr, this worker's
    :class:`Service` and its app. The app's shutdown closes the service (store, enclave
    store, HSM sessions) after the app's own shutdown."""
    settings = load_settings()
    configure_logging(level=LOG_LEVELS[settings.log_level])
    service = open_service(settings)
    try:
        app = service_app(
            service,
            max_body_bytes=settings.max_body_bytes,
            blocking_threads=settings.blocking_threads,
        )
    except BaseException:
        service.close()
        raise
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        try:
            async with inner(started) as state:
                yield state
        finally:
            await anyio.to_thread.run_sync(service.close)

    app.router.lifespan_context = lifespan
    return app


def serve(settings: Settings) -> None:
    """``portal-core serve``: makes the data directory, the token, the schemas and the keys
    once here (so the workers find them), hands the settings to the workers as ``PORTAL_*``
    variables, and runs uvicorn (uvloop, httptools, TLS when configured) until SIGTERM or
    SIGINT.

    Raises:
        As :func:`open_service`.
    """
    import uvicorn

    # The workers' metrics, summed at every scrape (portal_core.server.metrics): a fresh
    # directory per start (the counters start from zero), named before prometheus_client
    # is first imported, which is when it picks where values go.
    _make_data_dir(settings)
    metrics_dir = os.path.join(settings.data_dir, "metrics")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    open_service(settings).close()
    os.environ.update(settings.environ())
    os.environ.pop("PORTAL_CONFIG", None)  # the variables hold what the file said
    uvicorn.run(
        "portal_core.server.runtime:app_from_settings_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the app writes its own request lines, without query strings
        log_level=settings.log_level,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
    )

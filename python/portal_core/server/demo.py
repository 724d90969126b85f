"""``portal-core demo --http`` (``make run``): a wallet's whole life over HTTP.

It starts the service as a real server process on a free 127.0.0.1 port with the embedded
defaults (SQLite and a SoftHSM2 token in a fresh data directory, two workers), and the
reference integrator receiver as another; makes a tenant with the command line and clients
with the admin key; then runs everything through :class:`~portal_core.client.Portal`:
create a wallet, back it up with PASSWORD and CUSTOM, back up another wallet in
self-managed mode through the receiver, lose the devices, recover with each method, and
eject after the admin authorises it. Each step is printed with its statuses and timings;
both servers are stopped at the end, whatever happened. No secret is printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LocalService", "free_port", "local_service", "run", "stop_process"]

# A passphrase the password policy accepts (long, not guessable from a dictionary).
DEMO_PASSWORD = "orbit lantern quarry velvet 42"  # noqa: S105 - the demo's, printed nowhere
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], what: str) -> None:
    import httpx

    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} (see its log)")
        try:
            if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {_START_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def _server(cmd: list[str], log_path: str, what: str, env: dict[str, str]) -> Iterator[str]:
    """Runs ``cmd`` (its port in ``{port}``) until the block ends; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - this package's own commands
            [c.format(port=port) for c in cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_healthy(base, proc, what)
        yield base
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """Stops a server started with ``start_new_session=True``: SIGTERM (uvicorn's supervisor
    stops its workers), then, after ``timeout_s``, SIGKILL to the process group it leads."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=timeout_s)


@dataclasses.dataclass(frozen=True)
class LocalService:
    """A service :func:`local_service` started: its URL, its first tenant's admin key, its
    data directory and the command line to reach that directory with."""

    base_url: str
    admin_key: str = dataclasses.field(repr=False)
    data_dir: str
    cli: tuple[str, ...]
    env: dict[str, str] = dataclasses.field(repr=False)

    def new_tenant(self, name: str) -> str:
        """Another tenant (``portal-core tenants create``): its admin key."""
        made = subprocess.run(  # noqa: S603 - this package's own command
            [*self.cli, "tenants", "create", name, "--data-dir", self.data_dir, "--json"],
            capture_output=True,
            check=True,
            env=self.env,
            timeout=60,
        )
        return str(json.loads(made.stdout)["admin_api_key"])


@contextlib.contextmanager
def local_service(data_dir: str | None = None, *, workers: int = 2) -> Iterator[LocalService]:
    """``portal-core serve`` as a real process on a free 127.0.0.1 port, with the embedded
    defaults in ``data_dir`` (else a temporary directory, removed afterwards) and a first
    tenant; stopped when the block ends. For trying the SDK, demos and integration tests;
    ``PKCS11_*`` and ``PORTAL_*`` variables of this process are not passed on."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="portal-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PKCS11_", "PORTAL_"))}
        service = LocalService("", "", os.path.join(data_dir, "custodian"), _CLI, env)
        admin_key = service.new_tenant("demo")
        base = stack.enter_context(
            _server(
                [*_CLI, "serve", "--data-dir", service.data_dir, "--port", "{port}",
                 "--workers", str(workers)],
                os.path.join(data_dir, "service.log"),
                "the service",
                env,
            )
        )  # fmt: skip
        yield dataclasses.replace(service, base_url=base, admin_key=admin_key)


_CLI = (sys.executable, "-m", "portal_core.cli")


class _Printer:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Callable[[dict[str, Any]], None]]:
        """A step: its title, each progress status as it comes, and its time."""
        self.out(f"- {title}")
        start = time.perf_counter()

        def progress(event: dict[str, Any]) -> None:
            ms = (time.perf_counter() - start) * 1000
            self.out(f"    {ms:8.1f} ms  {event['status']}")

        yield progress
        self.out(f"    done in {(time.perf_counter() - start) * 1000:.1f} ms")


def run(data_dir: str | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the demo (in ``data_dir``, else a temporary directory removed afterwards);
    returns a summary (addresses, methods, timings)."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="portal-demo-"))
        return _run(data_dir, out, stack)
    raise AssertionError("unreachable")  # pragma: no cover


def _run(data_dir: str, out: Callable[[str], None], stack: contextlib.ExitStack) -> dict[str, Any]:
    from portal_core.client import HttpAdmin, Portal
    from portal_core.server.receiver import SECRET_ENV
    from portal_core.webhooks import new_secret

    p = _Printer(out)
    service = stack.enter_context(local_service(data_dir))
    base, env = service.base_url, service.env
    out(f"service data directory: {service.data_dir} (SQLite and a SoftHSM2 token, made now)")
    out(f"service: {base} (2 workers); receiver for self-managed mode starting")
    secret = new_secret()
    receiver = stack.enter_context(
        _server(
            [sys.executable, "-m", "portal_core.server.receiver", "--host", "127.0.0.1",
             "--port", "{port}", "--db", os.path.join(data_dir, "receiver.db")],
            os.path.join(data_dir, "receiver.log"),
            "the receiver",
            {**env, SECRET_ENV: secret},
        )
    )  # fmt: skip
    admin = stack.enter_context(contextlib.closing(HttpAdmin(base, service.admin_key)))
    keys = os.path.join(data_dir, "custom-keys")  # where the integrator keeps CUSTOM keys

    def portal(key: str, device: str) -> Portal:
        made = Portal(
            api_key=key, api_host=base, device_dir=os.path.join(data_dir, device),
            custom_key_dir=keys,
        )  # fmt: skip
        return stack.enter_context(made)

    summary: dict[str, Any] = {"service": base, "receiver": receiver}
    with p.step("the integrator's backend creates a client (admin key)"):
        client = admin.create_client_with_key()
    phone = portal(client.client_api_key, "phone")
    with p.step("create the wallet (key generation over HTTP)"):
        phone.create_wallet()
    summary["addresses"] = addresses = phone.addresses()
    for curve, address in addresses.items():
        out(f"    {curve}: {address}")
    with p.step("back up with PASSWORD (Argon2id on the device)") as progress:
        phone.backup_wallet("PASSWORD", password=DEMO_PASSWORD, progress=progress)
    with p.step("back up with CUSTOM (a key the integrator keeps)") as progress:
        phone.backup_wallet("CUSTOM", progress=progress)
    out(f"    recoverable with: {', '.join(phone.available_recovery_methods())}")

    with p.step("self-managed tenant: the integrator configures its webhooks"):
        integrator_key = service.new_tenant("demo-integrator")
        integrator = stack.enter_context(contextlib.closing(HttpAdmin(base, integrator_key)))
        integrator.set_webhooks(receiver, secret)
        own = integrator.create_client_with_key()
    tablet = portal(own.client_api_key, "tablet")
    tablet.create_wallet()
    with p.step("self-managed CUSTOM backup: the custodian's shares go to the receiver"):
        result = tablet.backup_wallet("CUSTOM")
        tablet.stored_client_backup_share(True, "CUSTOM")  # the integrator stored the text

    out("- the devices are lost")
    new_phone = portal(client.client_api_key, "new-phone")
    with p.step("recover on a new device with PASSWORD") as progress:
        got = new_phone.recover_wallet("PASSWORD", password=DEMO_PASSWORD, progress=progress)
    with p.step("recover on a new device with CUSTOM") as progress:
        assert new_phone.recover_wallet("CUSTOM", progress=progress) == got == addresses
    new_tablet = portal(own.client_api_key, "new-tablet")
    with p.step("recover the self-managed wallet (its cipher text from the integrator)"):
        new_tablet.recover_wallet("CUSTOM", cipher_text=result.cipher_text)

    with p.step("eject: the admin authorises it, the device takes the private keys"):
        admin.authorize_eject(client.client_id)
        ejected = new_phone.eject_private_keys("CUSTOM")
    for curve, key in ejected.items():
        out(f"    {curve}: the private key of {key.address} (not printed)")
    summary["methods"] = ["PASSWORD", "CUSTOM", "CUSTOM (self-managed)"]
    summary["seconds"] = round(time.perf_counter() - p.t0, 3)
    out(f"done in {summary['seconds']:.2f} s; stopping the servers")
    return summary

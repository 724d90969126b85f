"""``Portal``: the device SDK over HTTP, named after the seed system's SDK.

    from portal_core.client import Portal

    portal = Portal(api_key=key, api_host="custodian.example", device_dir="wallet")
    portal.create_wallet()
    portal.backup_wallet("CUSTOM", progress=print)

It is a :class:`~portal_core.backup.WalletClient` (every flow, every check the device makes
of what the custodian says) whose custodian is an
:class:`~portal_core.client.http.HttpCustodian` with the client's API key, whose client id
is the one the key speaks for, and whose signing shares live in ``device_dir``
(:class:`~portal_core.backup.FileDevice`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from portal_core.backup.client import WalletClient
from portal_core.backup.device import FileDevice
from portal_core.backup.methods import StorageFactory
from portal_core.client.http import HttpCustodian

__all__ = ["AsyncPortal", "Portal"]


def _base_url(api_host: str) -> str:
    """``api_host`` as a base URL: a bare host (the seed's ``apiHost``) means HTTPS."""
    if not isinstance(api_host, str) or not api_host:
        raise ValueError("api_host must be a host name or a URL")
    return api_host if "://" in api_host else f"https://{api_host}"


class Portal(WalletClient):
    """The wallet of one client, through the custodian's HTTP API.

    ``api_key``: the client API key the integrator's backend got for this user
    (``POST /v1/custodians/me/clients``). ``api_host``: the custodian, a host name (HTTPS)
    or a URL. ``device_dir``: where this device keeps its signing shares (private files).
    ``http``: options of the :class:`~portal_core.client.http.Transport` (``timeout_s``,
    ``retries``, ``verify``). Further keyword arguments go to
    :class:`~portal_core.backup.WalletClient` (``storages``, ``custom_key_dir``, ``vault``,
    ``argon2``, ``password_policy``).

    Raises:
        AuthenticationFailed: the key is not accepted (checked here, with one request).
        ServiceUnavailable: the custodian cannot be reached.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_host: str,
        device_dir: str,
        http: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        custodian = HttpCustodian(_base_url(api_host), api_key, **(http or {}))
        try:
            client_id = custodian.whoami().client_id
        except BaseException:
            custodian.close()
            raise
        super().__init__(custodian, client_id, device=FileDevice(device_dir), **options)
        self._http = custodian

    def __repr__(self) -> str:
        return f"Portal(client_id={self.client_id!r}, api={self._http.transport.base_url!r})"

    def register_backup_method(self, method: str, storage: StorageFactory) -> None:
        """The seed's name for :meth:`register_storage`: where a stored-key method (GDRIVE,
        ICLOUD, PASSKEY, CUSTOM) keeps its key, one storage per key slot."""
        self.register_storage(method, storage)

    def close(self) -> None:
        """Closes the HTTP connections."""
        self._http.close()

    def __enter__(self) -> Portal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_thread(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def call(self: AsyncPortal, /, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``await``-able :meth:`Portal.{name}`, run in a worker thread."
    return call


class AsyncPortal:
    """:class:`Portal` for asyncio backends: the same flow code, each call run in a worker
    thread (``asyncio.to_thread``), so the event loop keeps serving while a backup's
    Argon2id, share arithmetic and HTTP round trips run.

    Why not a native async flow: a flow interleaves CPU-bound work in the Rust core (which
    releases the GIL) with a handful of requests, in an order the checks depend on. One
    flow written twice (sync and async) would be two codes to keep equally strict; a thread
    per call costs microseconds next to a backup's milliseconds. Progress callbacks run in
    that worker thread: use ``loop.call_soon_threadsafe`` to reach the loop from them.

        portal = await AsyncPortal.connect(api_key=key, api_host=host, device_dir=path)
        await portal.backup_wallet("CUSTOM")
    """

    def __init__(self, portal: Portal) -> None:
        self.sync = portal

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    @classmethod
    async def connect(cls, **options: Any) -> AsyncPortal:
        """A :class:`Portal` made with ``options`` (in a worker thread: it checks the key)."""
        return cls(await asyncio.to_thread(lambda: Portal(**options)))

    @property
    def client_id(self) -> str:
        return self.sync.client_id

    def register_backup_method(self, method: str, storage: StorageFactory) -> None:
        self.sync.register_backup_method(method, storage)

    create_wallet = _in_thread("create_wallet")
    addresses = _in_thread("addresses")
    backup_wallet = _in_thread("backup_wallet")
    recover_wallet = _in_thread("recover_wallet")
    verify_backup = _in_thread("verify_backup")
    is_wallet_backed_up = _in_thread("is_wallet_backed_up")
    available_recovery_methods = _in_thread("available_recovery_methods")
    is_wallet_recoverable = _in_thread("is_wallet_recoverable")
    eject_private_keys = _in_thread("eject_private_keys")
    stored_client_backup_share = _in_thread("stored_client_backup_share")
    close = _in_thread("close")

    async def __aenter__(self) -> AsyncPortal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

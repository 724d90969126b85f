"""The custodian's API over HTTP: :class:`HttpCustodian` (the device's
:class:`~portal_core.backup.api.CustodianApi`), :class:`HttpAdmin` (the integrator's backend),
:class:`HttpVault` and :class:`HttpPasskeyEnclave` (the enclave), all on one
:class:`Transport`.

The transport keeps one connection pool (httpx), sends the API key as a bearer token,
verifies TLS by default, bounds every request by a timeout, and retries a bounded number
of times with exponential backoff and jitter: any request that never reached the server
(the connection failed), and idempotent or replayable ones
(:class:`~portal_core.http_api.Endpoint`) that timed out or got ``502``/``503``/``504``. A
replayable write carries an ``Idempotency-Key`` (the same on every attempt), under which
the service keeps its answer, so a retry of a write that did reach it gets that answer
again. Other writes (those whose answer holds a secret) are not retried once they may have
reached the service: the caller decides.

A problem document becomes the exception class of its ``code`` (the one the custodian
raised, :func:`~portal_core.server.problems.exception_from_problem`), with ``status``,
``code`` and ``request_id`` attributes; HTTP-layer problems become :class:`InvalidRequest`
or :class:`ServiceUnavailable`. An answer that is not what the endpoint returns raises
:class:`MalformedResponse`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from portal_core import __version__
from portal_core.backup.api import PairInfo, SessionOffer, WalletInfo
from portal_core.enclave.passkey import CredentialInfo
from portal_core.exceptions import PortalError
from portal_core.http_api import (
    AbortResult,
    AdminKeyCreated,
    AuditEvents,
    BackupRequest,
    CipherText,
    ClientCreatedInfo,
    ClientInfo,
    ClientKeyRotated,
    CredentialResult,
    EjectAuthorized,
    EjectRequest,
    EjectShares,
    Endpoint,
    HasCredentials,
    KeygenRequest,
    KeyRead,
    KeysDeleted,
    LoginRequest,
    LoginWrite,
    Messages,
    Pairs,
    RecoveryRequest,
    Removed,
    Revoked,
    StatusUpdate,
    VaultEnroll,
    VaultRelease,
    VaultSecret,
    VaultStatusInfo,
    WebAuthnResponse,
    WebhookInfo,
    WebhookSettings,
    endpoint,
)
from portal_core.server.problems import exception_from_problem
from portal_core.wire import from_wire, to_wire

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "ApiError",
    "HttpAdmin",
    "HttpCustodian",
    "HttpPasskeyEnclave",
    "HttpVault",
    "InvalidRequest",
    "MalformedResponse",
    "ServiceUnavailable",
    "Transport",
]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3
_MAX_RETRY_AFTER_S = 5.0
_RETRY_STATUSES = frozenset({502, 503, 504})
_INVALID_CODES = frozenset(
    {"INVALID_REQUEST", "MALFORMED_JSON", "UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE"}
)


class ApiError(PortalError):
    """The custodian answered with an error this build has no class for (see ``code``)."""

    status: int = 0
    code: str = ""
    request_id: str | None = None


class InvalidRequest(ApiError, ValueError):
    """The custodian refused the request as malformed (a bug on this side)."""


class ServiceUnavailable(ApiError):
    """The custodian could not be reached, or asked to be retried later, after every retry."""


class MalformedResponse(ApiError):
    """The custodian's answer is not what the endpoint returns."""


def _tag(exc: PortalError, status: int, code: str, request_id: str | None) -> PortalError:
    exc.status = status  # type: ignore[attr-defined]
    exc.code = code  # type: ignore[attr-defined]
    exc.request_id = request_id  # type: ignore[attr-defined]
    return exc


class Transport:
    """Calls :data:`~portal_core.http_api.ENDPOINTS` on ``base_url`` with ``api_key``.

    ``timeout_s``: per request (connect, read, write and pool each). ``retries``: further
    attempts after the first (see the module's docstring). ``verify``: TLS verification
    (``True``, a CA bundle path, or an ``ssl.SSLContext``; ``False`` only for tests).
    ``client``: an httpx client to use instead of one of its own (its base URL is ignored).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = 0.1,
        verify: Any = True,
        client: httpx.Client | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty str")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"portal-core/{__version__}",
            "Accept": "application/json",
        }
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, verify=verify)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        name: str,
        body: Any = None,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """Calls endpoint ``name``: its response as the endpoint's response class (a dict
        for free-form JSON; None for no body)."""
        e = endpoint(name)
        url = self.base_url + e.path.format_map({k: _segment(v) for k, v in (path or {}).items()})
        headers = dict(self._headers)
        content = None
        if e.request is not None:
            content = json.dumps(to_wire(body), separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if e.replayable:  # one key for every attempt: a retry gets the first answer
            headers["Idempotency-Key"] = uuid.uuid4().hex
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        response = self._send(e, url, headers, content, params)
        return _parse(e, response)

    def _send(
        self,
        e: Endpoint,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        params: dict[str, str],
    ) -> httpx.Response:
        attempt = 0
        while True:
            delay: float | None = None
            try:
                response = self._client.request(
                    e.method, url, headers=headers, content=content, params=params
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure: Exception = exc  # never reached the server: always safe to retry
            except httpx.TransportError as exc:
                if not (e.idempotent or e.replayable):
                    raise _unavailable(f"{e.name}: {type(exc).__name__}, not retried") from None
                failure = exc
            else:
                retry_safe = e.idempotent or e.replayable or response.status_code == 503
                if not (retry_safe and _transient(response)):
                    return response
                failure = RuntimeError(f"HTTP {response.status_code}")
                delay = _retry_after(response)
                if attempt >= self.retries:
                    return response
            if attempt >= self.retries:
                raise _unavailable(
                    f"{e.name}: the custodian at {self.base_url} did not answer after "
                    f"{attempt + 1} attempts ({type(failure).__name__})"
                ) from None
            attempt += 1
            time.sleep(delay if delay is not None else self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311 - jitter


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ValueError(f"{value!r} cannot be a path segment")
    return httpx.URL("/" + value).raw_path.decode("ascii")[1:]


def _unavailable(message: str) -> ServiceUnavailable:
    exc = ServiceUnavailable(message)
    _tag(exc, 503, "SERVICE_UNAVAILABLE", None)
    return exc


def _transient(response: httpx.Response) -> bool:
    """A failure worth retrying: 503 (the service asks for it), or a 502/504 from something
    in front of the service (no problem document: a typed 502 such as ``FAILED_WEBHOOK``
    is the service's answer)."""
    if response.status_code == 503:
        return True
    media = response.headers.get("content-type", "").split(";", 1)[0].strip()
    return response.status_code in _RETRY_STATUSES and media != "application/problem+json"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER_S)
    return None


def _parse(e: Endpoint, response: httpx.Response) -> Any:
    rid = response.headers.get("x-request-id")
    if response.status_code >= 400:
        raise _error(response, rid)
    if response.status_code != e.status:
        raise _tag(
            MalformedResponse(f"{e.name}: status {response.status_code}, expected {e.status}"),
            response.status_code,
            "MALFORMED_RESPONSE",
            rid,
        )
    if e.response is None:
        return None
    try:
        value = response.json()
        if e.response is dict:
            if not isinstance(value, dict):
                raise ValueError("the response must be an object")
            return value
        return from_wire(e.response, value, "response")
    except ValueError as exc:
        raise _tag(
            MalformedResponse(f"{e.name}: {exc}"), response.status_code, "MALFORMED_RESPONSE", rid
        ) from None


def _error(response: httpx.Response, rid: str | None) -> PortalError:
    status = response.status_code
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("code"), str):
        cls = ServiceUnavailable if status in _RETRY_STATUSES else ApiError
        return _tag(cls(f"HTTP {status} without a problem document"), status, "", rid)
    code = problem["code"]
    exc = exception_from_problem(problem)
    if type(exc) is PortalError:
        message = str(exc)
        if code in _INVALID_CODES:
            exc = InvalidRequest(message)
        elif status == 503:
            exc = ServiceUnavailable(message)
        else:
            exc = ApiError(f"{code}: {message}" if message != code else code)
    return _tag(exc, status, code, rid)


class _Api:
    """Shared by the API classes: a transport, made from a URL and a key or given."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: Transport | None = None,
        **options: Any,
    ) -> None:
        if transport is None:
            if base_url is None or api_key is None:
                raise ValueError("give base_url and api_key, or a transport")
            transport = Transport(base_url, api_key, **options)
        self.transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transport.base_url!r})"

    def close(self) -> None:
        self.transport.close()


class HttpCustodian(_Api):
    """:class:`~portal_core.backup.api.CustodianApi` over HTTP, with a client API key.

    The key names the client: the ``client_id`` each method takes is the one the key
    speaks for (``/v1/clients/me``), and a call naming another is refused here, before
    anything is sent. :meth:`whoami` tells which it is.
    """

    _client_id: str | None = None

    def whoami(self) -> ClientInfo:
        """``GET /v1/clients/me``: the client and tenant the key speaks for."""
        info: ClientInfo = self.transport.call("get_client")
        self._client_id = info.client_id
        return info

    def _me(self, client_id: str) -> None:
        if self._client_id is None:
            self.whoami()
        if client_id != self._client_id:
            raise ValueError("this custodian's API key speaks for another client")

    def get_wallet(self, client_id: str) -> WalletInfo:
        self._me(client_id)
        info: WalletInfo = self.transport.call("get_wallet")
        return info

    def begin_keygen(self, client_id: str, curves: Sequence[str]) -> SessionOffer:
        self._me(client_id)
        offer: SessionOffer = self.transport.call("begin_keygen", KeygenRequest(list(curves)))
        return offer

    def begin_backup(self, client_id: str, method: str) -> SessionOffer:
        self._me(client_id)
        offer: SessionOffer = self.transport.call("begin_backup", BackupRequest(method))
        return offer

    def begin_recovery(self, client_id: str, backup_id: str) -> SessionOffer:
        self._me(client_id)
        offer: SessionOffer = self.transport.call("begin_recovery", RecoveryRequest(backup_id))
        return offer

    def _exchange(
        self, name: str, session_id: str, messages: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        out: Messages = self.transport.call(
            name, Messages(dict(messages)), path={"session_id": session_id}
        )
        return out.messages

    def exchange_commitments(
        self, client_id: str, session_id: str, commitments: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        self._me(client_id)
        return self._exchange("exchange_commitments", session_id, commitments)

    def exchange_reveals(
        self, client_id: str, session_id: str, reveals: Mapping[str, bytes]
    ) -> dict[str, bytes]:
        self._me(client_id)
        return self._exchange("exchange_reveals", session_id, reveals)

    def abort(self, client_id: str, session_id: str) -> bool:
        self._me(client_id)
        result: AbortResult = self.transport.call("abort", path={"session_id": session_id})
        return result.discarded

    def update_backup_status(self, client_id: str, backup_id: str, status: str) -> None:
        self._me(client_id)
        self.transport.call(
            "update_backup_status", StatusUpdate(str(status)), path={"backup_id": backup_id}
        )

    def store_cipher_text(self, client_id: str, backup_id: str, cipher_text: bytes) -> None:
        self._me(client_id)
        self.transport.call(
            "store_cipher_text", CipherText(bytes(cipher_text)), path={"backup_id": backup_id}
        )

    def get_cipher_text(self, client_id: str, backup_id: str) -> bytes:
        self._me(client_id)
        out: CipherText = self.transport.call("get_cipher_text", path={"backup_id": backup_id})
        return out.cipher_text

    def list_backup_pairs(self, client_id: str) -> list[PairInfo]:
        self._me(client_id)
        out: Pairs = self.transport.call("list_backup_pairs")
        return out.pairs

    def discard_backup(self, client_id: str, backup_id: str) -> None:
        self._me(client_id)
        self.transport.call("discard_backup", path={"backup_id": backup_id})

    def check_backup(self, client_id: str, backup_id: str) -> None:
        self._me(client_id)
        self.transport.call("check_backup", path={"backup_id": backup_id})

    def release_eject_shares(self, client_id: str, backup_id: str) -> dict[str, bytes]:
        self._me(client_id)
        out: EjectShares = self.transport.call("release_eject_shares", EjectRequest(backup_id))
        return out.shares


class HttpAdmin(_Api):
    """The integrator's backend: :class:`~portal_core.backup.api.CustodianAdmin` and the
    tenant's keys and audit trail, with an admin API key."""

    def create_client(self) -> str:
        """A new client id (its key is dropped: use :meth:`create_client_with_key`)."""
        return self.create_client_with_key().client_id

    def create_client_with_key(self) -> ClientCreatedInfo:
        """``POST /v1/custodians/me/clients``: a new client and its key, shown once."""
        made: ClientCreatedInfo = self.transport.call("create_client")
        return made

    def authorize_eject(self, client_id: str) -> float:
        out: EjectAuthorized = self.transport.call("authorize_eject", path={"client_id": client_id})
        return out.expires_at

    def rotate_client_key(self, client_id: str) -> ClientKeyRotated:
        out: ClientKeyRotated = self.transport.call(
            "rotate_client_key", path={"client_id": client_id}
        )
        return out

    def create_admin_key(self) -> AdminKeyCreated:
        out: AdminKeyCreated = self.transport.call("create_admin_key")
        return out

    def revoke_key(self, key_id: str) -> bool:
        out: Revoked = self.transport.call("revoke_key", path={"key_id": key_id})
        return out.revoked

    def set_webhooks(self, base_url: str, secret: str) -> None:
        """Self-managed mode: the custodian keeps its backup shares at the integrator's
        ``base_url`` (``/backup``, ``/backup/fetch``, ``/backup/delete``), signing with
        ``secret`` (:mod:`portal_core.webhooks`)."""
        self.transport.call("set_webhooks", WebhookSettings(base_url, secret))

    def get_webhooks(self) -> str | None:
        """The webhooks' base URL; None when the tenant is custodian-managed."""
        try:
            out: WebhookInfo = self.transport.call("get_webhooks")
        except ApiError as e:
            if e.code == "NOT_FOUND":
                return None
            raise
        return out.base_url

    def remove_webhooks(self) -> bool:
        out: Removed = self.transport.call("remove_webhooks")
        return out.removed

    def audit_events(self, *, since: float | None = None, limit: int = 100) -> AuditEvents:
        out: AuditEvents = self.transport.call(
            "audit_events", query={"since": since, "limit": limit}
        )
        return out


class HttpVault(_Api):
    """A guess-limited vault over HTTP (:class:`~portal_core.backup.password.GuessLimitedVault`),
    with the client's API key at the vault's service. ``operator``: who runs that service, as
    the integrator configures it; the backup flows check it against the custodian's keepers.
    ``owner`` is the key's client: the service takes it from the key, not from the call."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        operator: str,
        transport: Transport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(base_url, api_key, transport=transport, **options)
        self.operator = operator

    def enroll(
        self, slot: str, access_key: bytes, *, owner: str, max_tries: int, params: bytes
    ) -> bytes:
        out: VaultSecret = self.transport.call(
            "vault_enroll",
            VaultEnroll(bytes(access_key), max_tries, bytes(params)),
            path={"slot": slot},
        )
        return out.secret

    def release(self, slot: str, access_key: bytes, *, owner: str) -> bytes:
        out: VaultSecret = self.transport.call(
            "vault_release", VaultRelease(bytes(access_key)), path={"slot": slot}
        )
        return out.secret

    def status(self, slot: str, *, owner: str) -> VaultStatusInfo:
        out: VaultStatusInfo = self.transport.call("vault_status", path={"slot": slot})
        return out

    def delete(self, slot: str, *, owner: str) -> None:
        self.transport.call("vault_delete", path={"slot": slot})


class HttpPasskeyEnclave(_Api):
    """The passkey enclave over HTTP
    (:class:`~portal_core.enclave.passkey_device.PasskeyEnclaveApi`), with the client's API
    key: ``user`` is the key's client."""

    def begin_registration(self, user: str) -> dict[str, Any]:
        out: dict[str, Any] = self.transport.call("passkey_begin_registration")
        return out

    def finish_registration(self, user: str, response: Any) -> CredentialInfo:
        out: CredentialResult = self.transport.call(
            "passkey_finish_registration", WebAuthnResponse(_as_json(response))
        )
        return CredentialInfo(user=user, **dataclasses.asdict(out))

    def begin_login(self, user: str, *, operation: Any, slot: str = "default") -> dict[str, Any]:
        out: dict[str, Any] = self.transport.call(
            "passkey_begin_login", LoginRequest(str(operation), slot)
        )
        return out

    def finish_login_read(self, user: str, response: Any, *, slot: str = "default") -> bytes:
        out: KeyRead = self.transport.call(
            "passkey_finish_read", WebAuthnResponse(_as_json(response)), path={"slot": slot}
        )
        return out.key

    def finish_login_write(
        self, user: str, response: Any, key: Any, *, slot: str = "default", mode: Any = "server"
    ) -> None:
        self.transport.call(
            "passkey_finish_write",
            LoginWrite(_as_json(response), bytes(key), str(mode)),
            path={"slot": slot},
        )

    def has_credentials(self, user: str) -> bool:
        out: HasCredentials = self.transport.call("passkey_has_credentials")
        return out.has_credentials

    def delete_key(self, user: str, *, slot: str = "default") -> int:
        out: KeysDeleted = self.transport.call("passkey_delete_key", path={"slot": slot})
        return out.deleted


def _as_json(response: Any) -> dict[str, Any]:
    value = json.loads(response) if isinstance(response, str | bytes) else response
    if not isinstance(value, dict):
        raise TypeError("a WebAuthn response is a JSON object (or its text)")
    return value

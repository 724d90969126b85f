"""The ``/v1`` API: one handler per :data:`~portal_core.http_api.ENDPOINTS` entry.

Every handler runs the same way (:func:`_route`): read and check the body (in the event
loop), then, in one hop to the blocking thread pool, authenticate the bearer key, check it
is of the endpoint's kind, and call the service for the principal the key speaks for. A
client key names its own client (``/clients/me``) and nothing else: a client id never
comes from the request. An admin key reaches a client of its own tenant only
(:meth:`~portal_core.tenants.Tenants.require_tenant_client`), and the refusal is the same
whether the client is another tenant's or does not exist.

Before the call, in the same hop: refused keys are counted per client address and an
address over :attr:`Limits.auth_failures <portal_core.server.service.Limits>` is refused
first (``429``); guess-bearing endpoints (:data:`GUESSES`) count against the client's
``Limits.guesses``; a replayable write (``Endpoint.replayable``) with an ``Idempotency-Key``
claims the key in the store, and a retry gets the stored answer.

Bad input raises ``ValueError``/``TypeError`` in the core; here it becomes ``400
INVALID_REQUEST`` with the message (written for callers, never holding a secret).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal_core.enclave.errors import SecretDestroyed
from portal_core.http_api import (
    ENDPOINTS,
    AbortResult,
    AdminKeyCreated,
    AuditEventInfo,
    AuditEvents,
    CipherText,
    ClientCreatedInfo,
    ClientInfo,
    ClientKeyRotated,
    CredentialResult,
    EjectAuthorized,
    EjectShares,
    Endpoint,
    HasCredentials,
    KeyRead,
    KeysDeleted,
    Messages,
    Pairs,
    Removed,
    Revoked,
    VaultSecret,
    VaultStatusInfo,
    WebhookInfo,
)
from portal_core.server.app import create_app, run_blocking
from portal_core.server.problems import ProblemError, dumps
from portal_core.server.service import Service
from portal_core.server.wire import read_json
from portal_core.store import AuditEntry, KeyKind
from portal_core.store.request_sqlite import IdempotentReplay
from portal_core.tenants import AuthenticationFailed, NotAuthorized, Principal
from portal_core.webhooks import WebhookConfig
from portal_core.wire import from_wire, to_wire

__all__ = ["service_app", "v1_routes"]

_BEARER = "bearer "


@dataclasses.dataclass(frozen=True)
class Call:
    """What a handler gets: the service, who is calling, the checked body (an instance of
    the endpoint's request class, or None), the path parameters and the query."""

    service: Service
    who: Principal
    body: Any
    path: Mapping[str, str]
    query: Mapping[str, str]

    @property
    def client_id(self) -> str:
        assert self.who.client_id is not None  # a client key (checked before the call)
        return self.who.client_id

    def audit(self, kind: str, subject: str | None, **detail: Any) -> None:
        entry = AuditEntry(self.who.tenant_id, self.service.clock(), kind, subject, detail)
        self.service.store.append_audit(entry)


Handler = Callable[[Call], Any]


def _api_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header[: len(_BEARER)].lower() != _BEARER:
        raise ProblemError(
            "AUTHENTICATION_REQUIRED",
            "send the API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="portal-core"'},
        )
    return header[len(_BEARER) :].strip()


def _check_kind(who: Principal, kind: KeyKind) -> None:
    if who.kind is not kind:
        raise NotAuthorized(
            "this endpoint takes a client API key"
            if kind is KeyKind.CLIENT
            else "this endpoint takes an admin API key"
        )


@dataclasses.dataclass(frozen=True)
class Incoming:
    """A request as the worker thread needs it (read in the event loop)."""

    api_key: str = dataclasses.field(repr=False)
    body: Any = dataclasses.field(repr=False)
    digest: bytes  # SHA-256 of the method, path and body: what an idempotency key names
    path: Mapping[str, str]
    query: Mapping[str, str]
    address: str
    idempotency_key: str | None


def _limited(service: Service, bucket: str, limit: tuple[int, float], *, count: bool) -> None:
    hits, window = limit
    decision = service.store.rate_limit_hit(
        bucket, limit=hits, window_s=window, now=service.clock(), cost=1 if count else 0
    )
    if not decision.allowed:
        raise ProblemError(
            "RATE_LIMITED",
            f"too many requests: at most {hits} per {window:g} s; try again later",
            headers={"Retry-After": str(max(1, math.ceil(decision.retry_after)))},
        )


def _authenticate(service: Service, incoming: Incoming) -> Principal:
    """The key's principal. Failures are counted per address, and an address over the limit
    is refused before its key is looked at."""
    bucket = f"auth:{incoming.address}"
    _limited(service, bucket, service.limits.auth_failures, count=False)
    try:
        return service.tenants.authenticate(incoming.api_key)
    except AuthenticationFailed:
        _limited(service, bucket, service.limits.auth_failures, count=True)
        raise


def _invoke(service: Service, e: Endpoint, incoming: Incoming) -> bytes | None:
    """Authenticates, limits, then replays or runs the call: the response body (JSON)."""
    who = _authenticate(service, incoming)
    _check_kind(who, e.auth)
    if e.name in GUESSES:
        _limited(service, f"guess:{who.client_id}", service.limits.guesses, count=True)
    claimed = None
    if incoming.idempotency_key is not None and e.replayable:
        claimed = (who.key_id, incoming.idempotency_key)
        earlier = service.store.idempotency_begin(
            *claimed, e.name, incoming.digest, service.clock()
        )
        if earlier is not None:
            return _replay(earlier)
    try:
        result = HANDLERS[e.name](Call(service, who, incoming.body, incoming.path, incoming.query))
        out = None if e.response is None else dumps(to_wire(result))
    except BaseException as exc:
        if claimed is not None:
            service.store.idempotency_forget(*claimed)
        if isinstance(exc, ValueError | TypeError):
            raise ProblemError("INVALID_REQUEST", str(exc) or type(exc).__name__) from None
        raise
    if claimed is not None:
        service.store.idempotency_finish(*claimed, e.status, out or b"")
    return out


def _replay(earlier: IdempotentReplay) -> bytes | None:
    if not earlier.same_request:
        raise ProblemError(
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used for another request: use a new key per request",
        )
    if earlier.status is None:
        raise ProblemError(
            "IDEMPOTENCY_KEY_IN_USE",
            "the first request with this Idempotency-Key is still running: retry later",
            headers={"Retry-After": "1"},
        )
    return earlier.body or None


_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")


async def _incoming(request: Request, e: Endpoint) -> Incoming:
    api_key = _api_key(request)
    raw = b""
    body: Any = None
    if e.request is not None:
        value = await read_json(request)
        raw = await request.body()
        try:
            body = from_wire(e.request, value, "body")
        except ValueError as exc:
            raise ProblemError("INVALID_REQUEST", str(exc)) from None
    key = request.headers.get("idempotency-key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ProblemError(
            "INVALID_REQUEST", "Idempotency-Key must be 16 to 128 of A-Z a-z 0-9 - _"
        )
    digest = hashlib.sha256(b"\0".join([e.method.encode(), request.url.path.encode(), raw]))
    client = request.client
    return Incoming(
        api_key,
        body,
        digest.digest(),
        request.path_params,
        request.query_params,
        client.host if client else "unknown",
        key,
    )


def _route(service: Service, path: str, endpoints: Mapping[str, Endpoint]) -> Route:
    """One route per path, serving each of its methods' endpoints (so a 405 lists every
    method the path has in ``Allow``)."""

    async def endpoint(request: Request) -> Response:
        e = endpoints[request.method if request.method != "HEAD" else "GET"]
        request.scope["portal.endpoint"] = e.name  # the metrics' label
        incoming = await _incoming(request, e)
        out = await run_blocking(request, _invoke, service, e, incoming)
        if e.response is None:
            return Response(status_code=e.status)
        return Response(out, e.status, media_type="application/json")

    return Route(path, endpoint, methods=list(endpoints), name=path)


# -- the client's API ----------------------------------------------------------------------


def _custodian(c: Call) -> Any:
    return c.service.custodian_for(c.who.tenant_id)


def _eject(c: Call) -> EjectShares:
    shares = _custodian(c).release_eject_shares(c.client_id, c.body.backup_id)
    c.audit("eject.used", c.client_id, backup_id=c.body.backup_id)
    return EjectShares(shares)


_CLIENT: dict[str, Handler] = {
    "get_client": lambda c: ClientInfo(c.client_id, c.who.tenant_id),
    "get_wallet": lambda c: _custodian(c).get_wallet(c.client_id),
    "begin_keygen": lambda c: _custodian(c).begin_keygen(c.client_id, c.body.curves),
    "begin_backup": lambda c: _custodian(c).begin_backup(c.client_id, c.body.method),
    "begin_recovery": lambda c: _custodian(c).begin_recovery(c.client_id, c.body.backup_id),
    "exchange_commitments": lambda c: Messages(
        _custodian(c).exchange_commitments(c.client_id, c.path["session_id"], c.body.messages)
    ),
    "exchange_reveals": lambda c: Messages(
        _custodian(c).exchange_reveals(c.client_id, c.path["session_id"], c.body.messages)
    ),
    "abort": lambda c: AbortResult(_custodian(c).abort(c.client_id, c.path["session_id"])),
    "update_backup_status": lambda c: _custodian(c).update_backup_status(
        c.client_id, c.path["backup_id"], c.body.status
    ),
    "store_cipher_text": lambda c: _custodian(c).store_cipher_text(
        c.client_id, c.path["backup_id"], c.body.cipher_text
    ),
    "get_cipher_text": lambda c: CipherText(
        _custodian(c).get_cipher_text(c.client_id, c.path["backup_id"])
    ),
    "list_backup_pairs": lambda c: Pairs(_custodian(c).list_backup_pairs(c.client_id)),
    "discard_backup": lambda c: _custodian(c).discard_backup(c.client_id, c.path["backup_id"]),
    "check_backup": lambda c: _custodian(c).check_backup(c.client_id, c.path["backup_id"]),
    "release_eject_shares": _eject,
}


# -- the integrator's backend --------------------------------------------------------------


def _own_client(c: Call) -> str:
    client_id = c.path["client_id"]
    c.service.tenants.require_tenant_client(c.who, client_id)
    return client_id


def _create_client(c: Call) -> ClientCreatedInfo:
    made = c.service.tenants.create_client(c.who.tenant_id, by=c.who)
    return ClientCreatedInfo(made.client_id, made.client_key.key_id, made.client_key.api_key)


def _authorize_eject(c: Call) -> EjectAuthorized:
    client_id = _own_client(c)
    expires = _custodian(c).authorize_eject(client_id)
    c.audit("eject.authorized", client_id, by=c.who.key_id, expires_at=expires)
    return EjectAuthorized(client_id, expires)


def _rotate(c: Call) -> ClientKeyRotated:
    client_id = _own_client(c)
    issued = c.service.tenants.rotate_client_key(c.who.tenant_id, client_id, by=c.who)
    return ClientKeyRotated(issued.key_id, issued.api_key)


def _admin_key(c: Call) -> AdminKeyCreated:
    issued = c.service.tenants.create_admin_key(c.who.tenant_id, by=c.who)
    return AdminKeyCreated(issued.key_id, issued.api_key)


def _query_number(c: Call, name: str, *, integer: bool = False) -> float | None:
    """A query parameter's finite number (``None`` when absent); ValueError otherwise."""
    text = c.query.get(name)
    if text is None:
        return None
    kind = "an integer" if integer else "a number"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be {kind}") from None
    if abs(value) > 2**53 or not math.isfinite(value):  # (the int test first: no overflow)
        raise ValueError(f"query parameter {name!r} is out of range")
    return value


def _audit_events(c: Call) -> AuditEvents:
    limit = _query_number(c, "limit", integer=True)
    events = c.service.tenants.audit_events(
        c.who.tenant_id,
        since=_query_number(c, "since"),
        limit=100 if limit is None else int(limit),
        by=c.who,
    )
    return AuditEvents(
        [AuditEventInfo(e.event_id, e.at, e.kind, e.subject, dict(e.detail)) for e in events]
    )


def _get_webhooks(c: Call) -> WebhookInfo:
    config = c.service.webhooks.get(c.who.tenant_id, by=c.who)
    if config is None:
        raise ProblemError("NOT_FOUND", "this tenant has no webhooks: it is custodian-managed")
    return WebhookInfo(config.base_url)


_ADMIN: dict[str, Handler] = {
    "set_webhooks": lambda c: c.service.webhooks.configure(
        c.who.tenant_id, WebhookConfig(c.body.base_url, c.body.secret), by=c.who
    ),
    "get_webhooks": _get_webhooks,
    "remove_webhooks": lambda c: Removed(c.service.webhooks.remove(c.who.tenant_id, by=c.who)),
    "create_client": _create_client,
    "authorize_eject": _authorize_eject,
    "rotate_client_key": _rotate,
    "create_admin_key": _admin_key,
    "revoke_key": lambda c: Revoked(
        c.service.tenants.revoke_key(c.who.tenant_id, c.path["key_id"], by=c.who)
    ),
    "audit_events": _audit_events,
}


# -- the enclave ---------------------------------------------------------------------------


def _vault(c: Call) -> Any:
    if c.service.vault is None:
        raise ProblemError("NOT_FOUND", "this service runs no vault")
    return c.service.vault


def _passkey(c: Call) -> Any:
    if c.service.passkey is None:
        raise ProblemError("NOT_FOUND", "this service runs no passkey enclave")
    return c.service.passkey


def _vault_release(c: Call) -> VaultSecret:
    slot = c.path["slot"]
    try:
        return VaultSecret(_vault(c).release(slot, c.body.access_key, owner=c.client_id))
    except SecretDestroyed:
        c.audit("vault.secret_destroyed", c.client_id, slot=slot)
        raise


def _vault_status(c: Call) -> VaultStatusInfo:
    s = _vault(c).status(c.path["slot"], owner=c.client_id)
    return VaultStatusInfo(s.slot, s.tries_left, s.max_tries, s.destroyed, s.params)


def _credential(c: Call) -> CredentialResult:
    info = _passkey(c).finish_registration(c.client_id, c.body.response)
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(CredentialResult)}
    return CredentialResult(**fields)


_ENCLAVE: dict[str, Handler] = {
    "vault_enroll": lambda c: VaultSecret(
        _vault(c).enroll(
            c.path["slot"],
            c.body.access_key,
            owner=c.client_id,
            max_tries=c.body.max_tries,
            params=c.body.params,
        )
    ),
    "vault_release": _vault_release,
    "vault_status": _vault_status,
    "vault_delete": lambda c: _vault(c).delete(c.path["slot"], owner=c.client_id),
    "passkey_begin_registration": lambda c: _passkey(c).begin_registration(c.client_id),
    "passkey_finish_registration": _credential,
    "passkey_has_credentials": lambda c: HasCredentials(_passkey(c).has_credentials(c.client_id)),
    "passkey_begin_login": lambda c: _passkey(c).begin_login(
        c.client_id, operation=c.body.operation, slot=c.body.slot
    ),
    "passkey_finish_read": lambda c: KeyRead(
        _passkey(c).finish_login_read(c.client_id, c.body.response, slot=c.path["slot"])
    ),
    "passkey_finish_write": lambda c: _passkey(c).finish_login_write(
        c.client_id, c.body.response, c.body.key, slot=c.path["slot"], mode=c.body.mode
    ),
    "passkey_delete_key": lambda c: KeysDeleted(
        _passkey(c).delete_key(c.client_id, slot=c.path["slot"])
    ),
}

HANDLERS: Mapping[str, Handler] = {**_CLIENT, **_ADMIN, **_ENCLAVE}
# The guess-bearing endpoints: limited per client (Service.limits.guesses).
GUESSES = frozenset({"vault_release", "passkey_finish_read", "passkey_finish_write"})


def v1_routes(service: Service) -> list[BaseRoute]:
    """The routes of every endpoint of :data:`~portal_core.http_api.ENDPOINTS`."""
    missing = {e.name for e in ENDPOINTS} ^ set(HANDLERS)
    if missing:  # pragma: no cover - a table and its handlers out of step
        raise RuntimeError(f"endpoints without a handler (or the reverse): {sorted(missing)}")
    by_path: dict[str, dict[str, Endpoint]] = {}
    for e in ENDPOINTS:
        by_path.setdefault(e.path, {})[e.method] = e
    return [_route(service, path, endpoints) for path, endpoints in by_path.items()]


def service_app(service: Service, **app_options: Any) -> Starlette:
    """The custodian's ASGI app over ``service``: the plumbing endpoints of
    :func:`~portal_core.server.create_app` and the ``/v1`` API. ``app_options`` go to
    :func:`~portal_core.server.create_app` (``max_body_bytes``, ``blocking_threads``, ...)."""
    return create_app(
        readiness=service.readiness,
        routes=v1_routes(service),
        metrics=service.metrics,
        **app_options,
    )

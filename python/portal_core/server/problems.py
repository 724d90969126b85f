"""Errors on the wire: RFC 9457 problem documents with a stable ``code`` per typed error.

:data:`ERROR_CODES` maps every public :class:`~portal_core.exceptions.PortalError` subclass
(the primitives, the backup flows, the KMS, the enclave, the store) to an HTTP status and a
code. An exception takes the entry of the first class of its method resolution order that
has one, so a subclass without an entry of its own answers as its nearest listed ancestor,
and anything else as :class:`PortalError` itself: ``500 INTERNAL``.
:data:`EXCEPTION_FOR_CODE` is the inverse, for the client SDK to raise the same class the
custodian raised (:func:`exception_from_problem`).

Codes are part of the API: once published, a code keeps its meaning and its class; a new
error gets a new code. Codes the seed system already uses keep its names
(``PASSWORD_REQUIRED``, ``UNSUPPORTED_STORAGE_METHOD``, ``NO_VALID_BACKUP``,
``WALLET_MODIFICATION_IN_PROGRESS``, ``WALLET_NOT_FOUND``, ``EJECT_NOT_AUTHORIZED``,
``FAILED_WEBHOOK``).

A problem's ``detail`` is the exception's message for client errors (4xx): those messages
never hold a key, password, PIN or share, and say what to fix. Server errors (5xx) carry no
``detail``: their messages name tokens, libraries and database states the client has no use
for; the server's log has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal_core import tenants
from portal_core.backup import errors as flow
from portal_core.enclave import errors as enclave
from portal_core.exceptions import InvalidEnvelope, InvalidShare, InvalidTag, PortalError
from portal_core.kms import errors as kms
from portal_core.store import StoreError
from portal_core.webhooks import FailedWebhook

__all__ = [
    "ERROR_CODES",
    "EXCEPTION_FOR_CODE",
    "HTTP_CODES",
    "PROBLEM_MEDIA_TYPE",
    "RESERVED_CODES",
    "ErrorCode",
    "ProblemError",
    "error_code",
    "exception_from_problem",
    "problem_body",
    "problem_type",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ErrorCode:
    """The HTTP status and the stable code a typed error answers with. ``fields``: public
    attributes of the exception copied into the problem document (e.g. ``tries_left``)."""

    status: int
    code: str
    fields: tuple[str, ...] = ()


# The table. Statuses: 400 the request is malformed; 403 refused (authorisation, a WebAuthn
# check, a wrong PIN); 404 the thing does not exist (for this client); 409 it conflicts with
# the current state; 410 gone for good; 422 well-formed but does not verify or fails a
# policy; 500 the server's own state or configuration; 503 try again later.
ERROR_CODES: Mapping[type[PortalError], ErrorCode] = {
    PortalError: ErrorCode(500, "INTERNAL"),
    # -- primitives (portal_core.exceptions) ---------------------------------------------
    # The custodian opens only what it sealed itself: a tag failure there is its own data.
    InvalidTag: ErrorCode(500, "INVALID_TAG"),
    InvalidEnvelope: ErrorCode(400, "INVALID_ENVELOPE"),
    InvalidShare: ErrorCode(422, "INVALID_SHARE"),
    # -- backup, recovery and eject flows (portal_core.backup.errors) --------------------
    flow.PasswordRequired: ErrorCode(400, "PASSWORD_REQUIRED"),
    flow.WeakPassword: ErrorCode(422, "WEAK_PASSWORD"),
    flow.VaultNotIndependent: ErrorCode(422, "VAULT_NOT_INDEPENDENT"),
    flow.UnsupportedBackupMethod: ErrorCode(400, "UNSUPPORTED_STORAGE_METHOD"),
    flow.NoValidBackup: ErrorCode(404, "NO_VALID_BACKUP"),
    flow.DecryptFailed: ErrorCode(422, "DECRYPT_FAILED"),
    flow.KdfParametersRefused: ErrorCode(422, "KDF_PARAMETERS_REFUSED"),
    flow.ShareVerificationFailed: ErrorCode(422, "SHARE_VERIFICATION_FAILED"),
    flow.CustodianMismatch: ErrorCode(422, "CUSTODIAN_MISMATCH"),
    flow.EjectNotAuthorized: ErrorCode(403, "EJECT_NOT_AUTHORIZED"),
    flow.WalletModificationInProgress: ErrorCode(409, "WALLET_MODIFICATION_IN_PROGRESS"),
    flow.WalletNotFound: ErrorCode(404, "WALLET_NOT_FOUND"),
    flow.DeviceReplaced: ErrorCode(409, "DEVICE_REPLACED"),
    flow.WalletAlreadyExists: ErrorCode(409, "WALLET_ALREADY_EXISTS"),
    flow.DeviceStoreError: ErrorCode(500, "DEVICE_STORE_ERROR"),
    # The integrator's webhook (self-managed mode) failed, timed out or refused the custodian.
    FailedWebhook: ErrorCode(502, "FAILED_WEBHOOK"),
    # -- KMS (portal_core.kms.errors) ----------------------------------------------------
    kms.KmsError: ErrorCode(500, "KMS_ERROR"),
    kms.KeyNotFound: ErrorCode(500, "KMS_KEY_NOT_FOUND"),
    kms.KeyAlreadyExists: ErrorCode(409, "KMS_KEY_ALREADY_EXISTS"),
    kms.KeyVersionRetired: ErrorCode(500, "KMS_KEY_VERSION_RETIRED"),
    kms.HsmUnavailable: ErrorCode(503, "HSM_UNAVAILABLE"),
    kms.HsmAuthError: ErrorCode(500, "HSM_AUTH_FAILED"),
    kms.HsmConfigError: ErrorCode(500, "HSM_MISCONFIGURED"),
    kms.MalformedBlob: ErrorCode(500, "KMS_MALFORMED_BLOB"),
    kms.BlobKeyNotFound: ErrorCode(500, "KMS_BLOB_KEY_NOT_FOUND"),
    # -- enclave: passkeys and the PIN vault (portal_core.enclave.errors) ----------------
    enclave.EnclaveError: ErrorCode(500, "ENCLAVE_ERROR"),
    enclave.EnclaveStoreError: ErrorCode(500, "ENCLAVE_STORE_ERROR"),
    enclave.MalformedResponse: ErrorCode(400, "MALFORMED_WEBAUTHN_RESPONSE"),
    enclave.ChallengeRejected: ErrorCode(403, "CHALLENGE_REJECTED"),
    enclave.VerificationFailed: ErrorCode(403, "WEBAUTHN_VERIFICATION_FAILED"),
    enclave.OriginMismatch: ErrorCode(403, "ORIGIN_MISMATCH"),
    enclave.RpIdMismatch: ErrorCode(403, "RP_ID_MISMATCH"),
    enclave.UserPresenceMissing: ErrorCode(403, "USER_PRESENCE_MISSING"),
    enclave.UserVerificationMissing: ErrorCode(403, "USER_VERIFICATION_MISSING"),
    enclave.SignCountNotIncreasing: ErrorCode(403, "SIGN_COUNT_NOT_INCREASING"),
    enclave.PrfOutputExposed: ErrorCode(400, "PRF_OUTPUT_EXPOSED"),
    enclave.UnknownCredential: ErrorCode(403, "UNKNOWN_CREDENTIAL"),
    enclave.CredentialNotOwned: ErrorCode(403, "CREDENTIAL_NOT_OWNED"),
    enclave.CredentialAlreadyRegistered: ErrorCode(409, "CREDENTIAL_ALREADY_REGISTERED"),
    enclave.NoCredentials: ErrorCode(404, "NO_CREDENTIALS"),
    enclave.KeyNotStored: ErrorCode(404, "KEY_NOT_STORED"),
    enclave.SealedRecordInvalid: ErrorCode(500, "SEALED_RECORD_INVALID"),
    enclave.PrfUnavailable: ErrorCode(422, "PRF_UNAVAILABLE"),
    enclave.VaultError: ErrorCode(500, "VAULT_ERROR"),
    enclave.VaultSlotNotFound: ErrorCode(404, "VAULT_SLOT_NOT_FOUND"),
    enclave.VaultSlotExists: ErrorCode(409, "VAULT_SLOT_EXISTS"),
    enclave.WrongAccessKey: ErrorCode(403, "WRONG_ACCESS_KEY", ("tries_left",)),
    enclave.SecretDestroyed: ErrorCode(410, "VAULT_SECRET_DESTROYED"),
    # -- store (portal_core.store) --------------------------------------------------------
    StoreError: ErrorCode(500, "STORE_ERROR"),
    # -- tenants and API keys (portal_core.tenants) ---------------------------------------
    tenants.AuthenticationFailed: ErrorCode(401, "AUTHENTICATION_FAILED"),
    tenants.NotAuthorized: ErrorCode(403, "NOT_AUTHORIZED"),
    tenants.TenantExists: ErrorCode(409, "TENANT_EXISTS"),
    tenants.UnknownTenant: ErrorCode(404, "TENANT_NOT_FOUND"),
    tenants.UnknownClient: ErrorCode(404, "CLIENT_NOT_FOUND"),
    tenants.UnknownKey: ErrorCode(404, "API_KEY_NOT_FOUND"),
    tenants.LastAdminKey: ErrorCode(409, "LAST_ADMIN_KEY"),
}

# Codes with no exception class yet, kept so that no other error takes them.
RESERVED_CODES: Mapping[str, int] = {}

# Problems of the HTTP layer itself (no PortalError behind them).
HTTP_CODES: Mapping[str, int] = {
    "MALFORMED_JSON": 400,
    "INVALID_REQUEST": 400,
    "AUTHENTICATION_REQUIRED": 401,
    "NOT_FOUND": 404,
    "IDEMPOTENCY_KEY_IN_USE": 409,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "RATE_LIMITED": 429,
    "METHOD_NOT_ALLOWED": 405,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "NOT_READY": 503,
}

EXCEPTION_FOR_CODE: Mapping[str, type[PortalError]] = {
    entry.code: cls for cls, entry in ERROR_CODES.items()
}

_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _check_tables() -> None:
    codes = [e.code for e in ERROR_CODES.values()] + [*RESERVED_CODES, *HTTP_CODES]
    dupes = {c for c in codes if codes.count(c) > 1}
    if dupes:  # pragma: no cover - a programming error, caught on import
        raise RuntimeError(f"problem codes used twice: {sorted(dupes)}")


_check_tables()


class ProblemError(Exception):
    """A problem of the HTTP layer (malformed JSON, a bad field, a body too large, ...):
    raised by handlers and the plumbing, answered as a problem document with its status,
    code and detail. Never a :class:`PortalError`: the flows do not raise it."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if code not in HTTP_CODES:
            raise ValueError(f"unknown HTTP-layer problem code {code!r}")
        super().__init__(detail or code)
        self.code = code
        self.status = HTTP_CODES[code]
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def error_code(exc: BaseException) -> ErrorCode:
    """The table entry of ``exc``: that of the first class of its MRO with one;
    ``500 INTERNAL`` for anything that is not a PortalError."""
    for cls in type(exc).__mro__:
        entry = ERROR_CODES.get(cls)
        if entry is not None:
            return entry
    return ERROR_CODES[PortalError]


def problem_type(code: str) -> str:
    """The problem's ``type`` URI: a stable, non-dereferenceable URN per code."""
    return "urn:portal-core:problem:" + code.lower().replace("_", "-")


def problem_body(
    status: int,
    code: str,
    detail: str | None = None,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem document as a dict: ``type``, ``title``, ``status``, ``detail``
    (only when given), and the extensions ``code`` and ``request_id``."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if request_id:
        body["request_id"] = request_id
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return body


def portal_problem(exc: PortalError, request_id: str | None = None) -> dict[str, Any]:
    """The problem document of a typed error (see the module's note on ``detail``)."""
    entry = error_code(exc)
    detail = str(exc) if entry.status < 500 else None
    extra = {name: getattr(exc, name) for name in entry.fields if hasattr(exc, name)}
    return problem_body(entry.status, entry.code, detail, request_id, extra)


def exception_from_problem(problem: Mapping[str, Any]) -> PortalError:
    """The exception a client raises for a problem document the custodian sent: the class
    of its ``code`` (PortalError for a code this build does not know, a reserved code or an
    HTTP-layer one), with the ``detail`` as message and the code's fields restored where
    the class takes them."""
    code = problem.get("code")
    cls = EXCEPTION_FOR_CODE.get(code, PortalError) if isinstance(code, str) else PortalError
    detail = problem.get("detail")
    message = detail if isinstance(detail, str) and detail else str(code or "unknown error")
    try:
        exc = cls(message)
    except TypeError:  # a class whose constructor builds its message from its fields
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
    entry = ERROR_CODES.get(cls)
    for name in entry.fields if entry else ():
        if name in problem:
            setattr(exc, name, problem[name])
    return exc


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON, as every response of the server is encoded."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

"""portal_core.server's error table: every public PortalError has a stable code, the codes
are unique, the inverse table round-trips, and each error answers as its problem document.
Unknown exceptions answer 500 INTERNAL with nothing of the exception in the response."""

from __future__ import annotations

import asyncio
import inspect
import json

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

import portal_core.backup.errors
import portal_core.enclave
import portal_core.enclave.errors
import portal_core.exceptions
import portal_core.kms
import portal_core.kms.errors
import portal_core.store
import portal_core.tenants
from portal_core.exceptions import PortalError
from portal_core.server import (
    ERROR_CODES,
    EXCEPTION_FOR_CODE,
    HTTP_CODES,
    PROBLEM_MEDIA_TYPE,
    RESERVED_CODES,
    create_app,
    error_code,
    exception_from_problem,
)

MODULES = [
    portal_core.exceptions,
    portal_core.backup.errors,
    portal_core.kms,
    portal_core.kms.errors,
    portal_core.enclave,
    portal_core.enclave.errors,
    portal_core.store,
    portal_core.tenants,
]


def exported_errors() -> set[type[PortalError]]:
    """Every PortalError subclass (and PortalError) the public modules export."""
    found: set[type[PortalError]] = set()
    for module in MODULES:
        for name in module.__all__:
            if name == "Pkcs11Kms":  # imported lazily (needs the hsm extra); not an error
                continue
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, PortalError):
                found.add(obj)
    return found


# The published codes. Changing a row breaks clients: add rows, never edit them.
SNAPSHOT = {
    "PortalError": (500, "INTERNAL"),
    "InvalidTag": (500, "INVALID_TAG"),
    "InvalidEnvelope": (400, "INVALID_ENVELOPE"),
    "InvalidShare": (422, "INVALID_SHARE"),
    "PasswordRequired": (400, "PASSWORD_REQUIRED"),
    "WeakPassword": (422, "WEAK_PASSWORD"),
    "VaultNotIndependent": (422, "VAULT_NOT_INDEPENDENT"),
    "UnsupportedBackupMethod": (400, "UNSUPPORTED_STORAGE_METHOD"),
    "NoValidBackup": (404, "NO_VALID_BACKUP"),
    "DecryptFailed": (422, "DECRYPT_FAILED"),
    "KdfParametersRefused": (422, "KDF_PARAMETERS_REFUSED"),
    "ShareVerificationFailed": (422, "SHARE_VERIFICATION_FAILED"),
    "CustodianMismatch": (422, "CUSTODIAN_MISMATCH"),
    "EjectNotAuthorized": (403, "EJECT_NOT_AUTHORIZED"),
    "WalletModificationInProgress": (409, "WALLET_MODIFICATION_IN_PROGRESS"),
    "WalletNotFound": (404, "WALLET_NOT_FOUND"),
    "DeviceReplaced": (409, "DEVICE_REPLACED"),
    "WalletAlreadyExists": (409, "WALLET_ALREADY_EXISTS"),
    "DeviceStoreError": (500, "DEVICE_STORE_ERROR"),
    "FailedWebhook": (502, "FAILED_WEBHOOK"),
    "KmsError": (500, "KMS_ERROR"),
    "KeyNotFound": (500, "KMS_KEY_NOT_FOUND"),
    "KeyAlreadyExists": (409, "KMS_KEY_ALREADY_EXISTS"),
    "KeyVersionRetired": (500, "KMS_KEY_VERSION_RETIRED"),
    "HsmUnavailable": (503, "HSM_UNAVAILABLE"),
    "HsmAuthError": (500, "HSM_AUTH_FAILED"),
    "HsmConfigError": (500, "HSM_MISCONFIGURED"),
    "MalformedBlob": (500, "KMS_MALFORMED_BLOB"),
    "BlobKeyNotFound": (500, "KMS_BLOB_KEY_NOT_FOUND"),
    "EnclaveError": (500, "ENCLAVE_ERROR"),
    "EnclaveStoreError": (500, "ENCLAVE_STORE_ERROR"),
    "MalformedResponse": (400, "MALFORMED_WEBAUTHN_RESPONSE"),
    "ChallengeRejected": (403, "CHALLENGE_REJECTED"),
    "VerificationFailed": (403, "WEBAUTHN_VERIFICATION_FAILED"),
    "OriginMismatch": (403, "ORIGIN_MISMATCH"),
    "RpIdMismatch": (403, "RP_ID_MISMATCH"),
    "UserPresenceMissing": (403, "USER_PRESENCE_MISSING"),
    "UserVerificationMissing": (403, "USER_VERIFICATION_MISSING"),
    "SignCountNotIncreasing": (403, "SIGN_COUNT_NOT_INCREASING"),
    "PrfOutputExposed": (400, "PRF_OUTPUT_EXPOSED"),
    "UnknownCredential": (403, "UNKNOWN_CREDENTIAL"),
    "CredentialNotOwned": (403, "CREDENTIAL_NOT_OWNED"),
    "CredentialAlreadyRegistered": (409, "CREDENTIAL_ALREADY_REGISTERED"),
    "NoCredentials": (404, "NO_CREDENTIALS"),
    "KeyNotStored": (404, "KEY_NOT_STORED"),
    "SealedRecordInvalid": (500, "SEALED_RECORD_INVALID"),
    "PrfUnavailable": (422, "PRF_UNAVAILABLE"),
    "VaultError": (500, "VAULT_ERROR"),
    "VaultSlotNotFound": (404, "VAULT_SLOT_NOT_FOUND"),
    "VaultSlotExists": (409, "VAULT_SLOT_EXISTS"),
    "WrongAccessKey": (403, "WRONG_ACCESS_KEY"),
    "SecretDestroyed": (410, "VAULT_SECRET_DESTROYED"),
    "StoreError": (500, "STORE_ERROR"),
    "AuthenticationFailed": (401, "AUTHENTICATION_FAILED"),
    "NotAuthorized": (403, "NOT_AUTHORIZED"),
    "TenantExists": (409, "TENANT_EXISTS"),
    "UnknownTenant": (404, "TENANT_NOT_FOUND"),
    "UnknownClient": (404, "CLIENT_NOT_FOUND"),
    "UnknownKey": (404, "API_KEY_NOT_FOUND"),
    "LastAdminKey": (409, "LAST_ADMIN_KEY"),
}


def class_name(cls: type) -> str:
    return cls.__name__


CLASSES = sorted(ERROR_CODES, key=class_name)


def test_every_exported_error_has_its_own_entry():
    missing = sorted(c.__qualname__ for c in exported_errors() if c not in ERROR_CODES)
    assert not missing, f"PortalError classes without a code in ERROR_CODES: {missing}"


def test_table_lists_only_exported_errors():
    stale = sorted(c.__qualname__ for c in ERROR_CODES if c not in exported_errors())
    assert not stale, f"ERROR_CODES rows for classes no public module exports: {stale}"


def test_codes_match_the_snapshot():
    table = {cls.__name__: (e.status, e.code) for cls, e in ERROR_CODES.items()}
    assert len(table) == len(ERROR_CODES), "two error classes share a name"
    assert table == SNAPSHOT


def test_codes_are_unique_and_well_formed():
    codes = [e.code for e in ERROR_CODES.values()] + [*RESERVED_CODES, *HTTP_CODES]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert code.isupper() and code.replace("_", "").isalpha(), code
    assert RESERVED_CODES == {}  # FAILED_WEBHOOK, once reserved, is FailedWebhook's now


def test_seed_names_are_kept():
    codes = {e.code for e in ERROR_CODES.values()} | set(RESERVED_CODES)
    for seed in (
        "PASSWORD_REQUIRED",
        "UNSUPPORTED_STORAGE_METHOD",
        "NO_VALID_BACKUP",
        "WALLET_MODIFICATION_IN_PROGRESS",
        "WALLET_NOT_FOUND",
        "EJECT_NOT_AUTHORIZED",
        "FAILED_WEBHOOK",
    ):
        assert seed in codes


def test_subclasses_take_their_most_specific_entry():
    e = portal_core.enclave.errors
    flow = portal_core.backup.errors
    # Listed classes: their own row, even with several listed ancestors.
    assert error_code(e.NoCredentials("x")).code == "NO_CREDENTIALS"  # also a NoValidBackup
    assert error_code(e.WrongAccessKey("s", 2)).code == "WRONG_ACCESS_KEY"
    assert error_code(portal_core.kms.MalformedBlob("x")).code == "KMS_MALFORMED_BLOB"

    # Unlisted subclasses: the nearest listed ancestor.
    class LateWalletError(flow.WalletNotFound):
        pass

    class LateStoreError(portal_core.store.StoreError):
        pass

    class Unlisted(PortalError):
        pass

    assert error_code(LateWalletError("x")).code == "WALLET_NOT_FOUND"
    assert error_code(LateStoreError("x")).code == "STORE_ERROR"
    assert error_code(Unlisted("x")).code == "INTERNAL"
    assert error_code(ValueError("x")).code == "INTERNAL"


def sample(cls: type[PortalError]) -> PortalError:
    """An instance of ``cls`` whatever its constructor takes."""
    if cls is portal_core.kms.KeyVersionRetired:
        return cls("custodian", 1, 3)
    if cls is portal_core.enclave.errors.WrongAccessKey:
        return cls("w1.b1", 4)
    return cls(f"a {cls.__name__} happened")


@pytest.mark.parametrize("cls", CLASSES, ids=class_name)
def test_round_trip_code_to_class(cls):
    entry = ERROR_CODES[cls]
    assert EXCEPTION_FOR_CODE[entry.code] is cls
    exc = sample(cls)
    problem = {"code": entry.code, "detail": str(exc), "tries_left": 4}
    back = exception_from_problem(problem)
    assert type(back) is cls
    assert str(back) == str(exc)
    if cls is portal_core.enclave.errors.WrongAccessKey:
        assert back.tries_left == 4  # type: ignore[attr-defined]


def test_unknown_reserved_and_http_codes_give_portal_error():
    for code in ("NO_SUCH_CODE", "NOT_FOUND", *RESERVED_CODES, None, 7):
        back = exception_from_problem({"code": code, "detail": "x"})
        assert type(back) is PortalError


def serve(raise_it: BaseException):
    """An app with one endpoint, ``GET /boom``, that raises ``raise_it``."""

    async def boom(request: Request):
        raise raise_it

    return create_app(routes=[Route("/boom", boom)])


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(asyncio.wait_for(go(), timeout=30))


@pytest.mark.parametrize("cls", CLASSES, ids=class_name)
def test_each_error_answers_its_problem(cls):
    exc = sample(cls)
    r = call(serve(exc), "GET", "/boom", headers={"X-Request-Id": "req-1"})
    entry = ERROR_CODES[cls]
    assert r.status_code == entry.status
    assert r.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = r.json()
    assert body["code"] == entry.code
    assert body["status"] == entry.status
    assert body["type"] == "urn:portal-core:problem:" + entry.code.lower().replace("_", "-")
    assert body["request_id"] == "req-1"
    if entry.status < 500:
        assert body["detail"] == str(exc)
    else:  # server errors say nothing of their cause
        assert "detail" not in body
        assert str(exc) not in r.text
    assert type(exception_from_problem(body)) is cls


def test_wrong_access_key_carries_tries_left():
    r = call(serve(portal_core.enclave.errors.WrongAccessKey("w1.b1", 3)), "GET", "/boom")
    assert r.status_code == 403
    assert r.json()["tries_left"] == 3


SECRET_MESSAGE = "the database password is hunter2-do-not-show"


@pytest.mark.parametrize(
    "exc",
    [RuntimeError(SECRET_MESSAGE), KeyError(SECRET_MESSAGE), AssertionError(SECRET_MESSAGE)],
    ids=lambda e: type(e).__name__,
)
def test_unknown_exception_is_internal_without_detail(exc):
    r = call(serve(exc), "GET", "/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = r.json()
    assert body["code"] == "INTERNAL"
    assert set(body) == {"type", "title", "status", "code", "request_id"}
    text = r.text
    for leak in ("hunter2", "Traceback", type(exc).__name__, "test_server_errors", 'File "'):
        assert leak not in text
    assert json.loads(text) == body

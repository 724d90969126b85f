"""Server-side key release: passkey-gated keys (WebAuthn) and guess-limited PIN secrets.

    from portal_core.enclave import PasskeyEnclave, PinVault, SqliteEnclaveStore
    from portal_core.kms import Pkcs11Kms

    kms = Pkcs11Kms.from_env()
    store = SqliteEnclaveStore("custodian.db")      # may share the custodian store's file
    enclave = PasskeyEnclave(kms, store, rp_id="example.com", rp_name="Example",
                             origins=["https://example.com"])
    options = enclave.begin_registration("user-1")  # -> navigator.credentials.create()
    enclave.finish_registration("user-1", response)
    # A login is for one operation on one slot: its assertion serves nothing else.
    options = enclave.begin_login("user-1", operation="read", slot="w1.b1")
    key = enclave.finish_login_read("user-1", response, slot="w1.b1")

    vault = PinVault(kms, store, operator="custodian-1")  # SVR2-style, docs/vault.md
    secret = vault.enroll(slot, access_key, owner="user-1", max_tries=10, params=digest)
    secret = vault.release(slot, access_key, owner="user-1")  # a wrong key spends a try;
                                                    # another owner finds no slot

The passkey half needs the ``webauthn`` package (``pip install 'portal-core-mpc[enclave]'``);
the vault half does not. Designs and threat models: ``docs/passkey.md``, ``docs/vault.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from portal_core import DISTRIBUTION
from portal_core.enclave._common import DEFAULT_SLOT, SealingKms
from portal_core.enclave.errors import (
    ChallengeRejected,
    CredentialAlreadyRegistered,
    CredentialNotOwned,
    EnclaveError,
    EnclaveStoreError,
    KeyNotStored,
    MalformedResponse,
    NoCredentials,
    OriginMismatch,
    PrfOutputExposed,
    PrfUnavailable,
    RpIdMismatch,
    SealedRecordInvalid,
    SecretDestroyed,
    SignCountNotIncreasing,
    UnknownCredential,
    UserPresenceMissing,
    UserVerificationMissing,
    VaultError,
    VaultSlotExists,
    VaultSlotNotFound,
    VerificationFailed,
    WrongAccessKey,
)
from portal_core.enclave.pin import PinParts, derive_key, stretch_pin
from portal_core.enclave.records import (
    Ceremony,
    ChallengeRecord,
    CredentialRecord,
    KeyMode,
    KeyRecord,
    LoginOperation,
    UserRecord,
    VaultRecord,
)
from portal_core.enclave.store import EnclaveStore
from portal_core.enclave.vault import DEFAULT_MAX_TRIES, PinVault, VaultStatus

if TYPE_CHECKING:
    from portal_core.store.enclave_sqlite import SqliteEnclaveStore

# Names loaded on first use. The passkey modules import the webauthn package, which the
# vault does without. The SQLite store lives with the rest of the SQL in portal_core.store
# and imports this package's records and errors: importing it here, eagerly, would find it
# half-initialised whenever portal_core.store.enclave_sqlite is the first module imported.
_LAZY = {
    "SqliteEnclaveStore": "portal_core.store.enclave_sqlite",
    "SUPPORTED_ALGORITHMS": "portal_core.enclave.passkey",
    "CredentialInfo": "portal_core.enclave.passkey",
    "PasskeyEnclave": "portal_core.enclave.passkey",
    "PasskeyDevice": "portal_core.enclave.passkey_device",
    "PasskeyEnclaveApi": "portal_core.enclave.passkey_device",
    "PasskeyKeyStorage": "portal_core.enclave.passkey_device",
    "passkey_storage": "portal_core.enclave.passkey_device",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portal_core.enclave' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as e:
        if e.name != "webauthn" and not (e.name or "").startswith("webauthn."):
            raise
        raise ImportError(
            f"portal_core.enclave.{name} needs the webauthn package: "
            f"pip install '{DISTRIBUTION}[enclave]'"
        ) from e
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MAX_TRIES",
    "DEFAULT_SLOT",
    "SUPPORTED_ALGORITHMS",
    "Ceremony",
    "ChallengeRecord",
    "ChallengeRejected",
    "CredentialAlreadyRegistered",
    "CredentialInfo",
    "CredentialNotOwned",
    "CredentialRecord",
    "EnclaveError",
    "EnclaveStore",
    "EnclaveStoreError",
    "KeyMode",
    "KeyNotStored",
    "KeyRecord",
    "LoginOperation",
    "MalformedResponse",
    "NoCredentials",
    "OriginMismatch",
    "PasskeyDevice",
    "PasskeyEnclave",
    "PasskeyEnclaveApi",
    "PasskeyKeyStorage",
    "PinParts",
    "PinVault",
    "PrfOutputExposed",
    "PrfUnavailable",
    "RpIdMismatch",
    "SealedRecordInvalid",
    "SealingKms",
    "SecretDestroyed",
    "SignCountNotIncreasing",
    "SqliteEnclaveStore",
    "UnknownCredential",
    "UserPresenceMissing",
    "UserRecord",
    "UserVerificationMissing",
    "VaultError",
    "VaultRecord",
    "VaultSlotExists",
    "VaultSlotNotFound",
    "VaultStatus",
    "VerificationFailed",
    "WrongAccessKey",
    "derive_key",
    "stretch_pin",
]

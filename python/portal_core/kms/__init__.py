"""Key-encryption keys in a PKCS#11 HSM (SoftHSM2 by default), and sealing under them.

``Pkcs11Kms`` keeps named, versioned AES-256 KEKs inside the token and seals data under them
through a key hierarchy (docs/kms.md): one HSM call serves many blobs, while every blob still
traces back to a KEK that never leaves the HSM.

    from portal_core.kms import Pkcs11Kms
    kms = Pkcs11Kms.from_env()              # PKCS11_MODULE, PKCS11_TOKEN_LABEL, PKCS11_USER_PIN
    kms.create_key("custodian")
    blob = kms.seal("custodian", share, context={"wallet": wallet_id, "party": "custodian"})
    share = kms.open(blob, context={"wallet": wallet_id, "party": "custodian"})
"""

from __future__ import annotations

from portal_core.kms.blob import BlobInfo, inspect
from portal_core.kms.errors import (
    BlobKeyNotFound,
    HsmAuthError,
    HsmConfigError,
    HsmUnavailable,
    InvalidTag,
    KeyAlreadyExists,
    KeyNotFound,
    KeyVersionRetired,
    KmsError,
    MalformedBlob,
)
from portal_core.kms.pkcs11 import DataKey, KeyInfo, Pkcs11Kms
from portal_core.kms.profiles import PROFILES, Profile, get_profile

__all__ = [
    "PROFILES",
    "BlobInfo",
    "BlobKeyNotFound",
    "DataKey",
    "HsmAuthError",
    "HsmConfigError",
    "HsmUnavailable",
    "InvalidTag",
    "KeyAlreadyExists",
    "KeyInfo",
    "KeyNotFound",
    "KeyVersionRetired",
    "KmsError",
    "MalformedBlob",
    "Pkcs11Kms",
    "Profile",
    "get_profile",
    "inspect",
]

"""Key-encryption keys in a PKCS#11 HSM (SoftHSM2 by default), and sealing under them.

``Pkcs11Kms`` keeps named, versioned AES-256 KEKs inside the token and seals data under them
through a key hierarchy (docs/kms.md): one HSM call serves many blobs, while every blob still
traces back to a KEK that never leaves the HSM.

    from portal_core.kms import Pkcs11Kms
    kms = Pkcs11Kms.from_env()              # PKCS11_MODULE, PKCS11_TOKEN_LABEL, PKCS11_USER_PIN
    kms.create_key("custodian")
    blob = kms.seal("custodian", share, context={"wallet": wallet_id, "party": "custodian"})
    share = kms.open(blob, context={"wallet": wallet_id, "party": "custodian"})

Code that only types against a KMS uses the Protocols of :mod:`portal_core.kms.contract`
(``SealingKms``, ``KeyAdmin``, ``KeyedSealingKms``), the errors, blob inspection and the
profiles: none of them needs python-pkcs11 (the ``hsm`` extra). ``Pkcs11Kms`` does, and is
imported when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portal_core import DISTRIBUTION
from portal_core.kms.blob import BlobInfo, inspect
from portal_core.kms.contract import DataKey, KeyAdmin, KeyedSealingKms, KeyInfo, SealingKms
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
from portal_core.kms.profiles import PROFILES, Profile, get_profile

if TYPE_CHECKING:
    from portal_core.kms.pkcs11 import Pkcs11Kms

__all__ = [
    "PROFILES",
    "BlobInfo",
    "BlobKeyNotFound",
    "DataKey",
    "HsmAuthError",
    "HsmConfigError",
    "HsmUnavailable",
    "InvalidTag",
    "KeyAdmin",
    "KeyAlreadyExists",
    "KeyInfo",
    "KeyNotFound",
    "KeyVersionRetired",
    "KeyedSealingKms",
    "KmsError",
    "MalformedBlob",
    "Pkcs11Kms",
    "Profile",
    "SealingKms",
    "get_profile",
    "inspect",
]

# The one name that needs python-pkcs11 (the ``hsm`` extra).
HSM_EXTRA_HINT = f"install the HSM extra: pip install '{DISTRIBUTION}[hsm]'"


def __getattr__(name: str) -> Any:
    if name != "Pkcs11Kms":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from portal_core.kms.pkcs11 import Pkcs11Kms
    except ModuleNotFoundError as e:
        package = {"pkcs11": "python-pkcs11", "cffi": "cffi"}.get(e.name or "")
        if package is None:
            raise
        raise ImportError(
            f"portal_core.kms.Pkcs11Kms needs {package}: {HSM_EXTRA_HINT}", name=e.name
        ) from e
    return Pkcs11Kms

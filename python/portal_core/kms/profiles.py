"""Vendor profiles: how each HSM does the two logical operations the KMS needs.

The KMS asks an HSM for exactly two things: *wrap* a 32-byte intermediate key under a KEK
(binding the blob header as authenticated data where the mechanism allows) and *unwrap* it
again. Mechanism numbers, who generates the AES-GCM IV, and which errors mean "authentication
failed" differ per vendor, so they live here and never at the call sites. A profile's ``wrap``
names one of the mechanisms of :mod:`portal_core.kms.mechanisms`, which does the calls.

Only ``softhsm`` and ``softhsm-kwp`` run in this project's tests (SoftHSM2 2.6.1). The
``cloudhsm`` and ``luna`` profiles are written from the vendors' PKCS#11 documentation and have
not been run against those devices: check them on your hardware (``portal-core hsm check``)
before relying on them. Both refuse to run when the HSM does not behave as documented.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from portal_core.kms.errors import HsmConfigError

__all__ = ["PROFILES", "Profile", "get_profile"]

# PKCS#11 mechanism numbers (v2.40 / v3.0 and vendor headers).
CKM_AES_GCM = 0x00001087
CKM_AES_KEY_WRAP_PAD = 0x0000210A  # SoftHSM2 implements RFC 5649 under this number
CKM_AES_KEY_WRAP_KWP = 0x0000210B  # RFC 5649 in PKCS#11 v3.0
CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD = 0x8000216F  # AWS CloudHSM's RFC 5649 variant

Wrap = Literal["aes-gcm", "aes-kwp"]
IvSource = Literal["host", "hsm-param", "hsm-appended"]


@dataclass(frozen=True)
class Profile:
    """How one HSM family wraps and unwraps the intermediate keys.

    ``wrap``: ``"aes-gcm"`` encrypts the intermediate key with C_Encrypt(CKM_AES_GCM), the blob
    header as AAD; ``"aes-kwp"`` wraps it with RFC 5649 key wrap (no AAD: the header is then
    bound by key derivation, see docs/kms.md).

    ``gcm_iv``: ``"host"`` draws the 96-bit IV on the host; ``"hsm-param"`` lets the HSM write
    the IV it generated into ``CK_GCM_PARAMS.pIv``; ``"hsm-appended"`` reads the HSM-generated
    IV from the end of the C_Encrypt output.

    ``tag_failures``: names of python-pkcs11 exceptions the module raises when unwrapping fails
    authentication (SoftHSM2 reports a bad GCM tag as CKR_GENERAL_ERROR).
    """

    name: str
    wrap: Wrap
    gcm_iv: IvSource
    gcm_iv_len: int
    gcm_mechanism: int
    kwp_mechanism: int
    tag_failures: tuple[str, ...]
    max_sessions: int | None
    tested: bool
    source: str

    def __post_init__(self) -> None:
        if self.wrap not in ("aes-gcm", "aes-kwp"):
            raise HsmConfigError(f"profile {self.name!r}: unknown wrap {self.wrap!r}")
        if self.gcm_iv not in ("host", "hsm-param", "hsm-appended"):
            raise HsmConfigError(f"profile {self.name!r}: unknown IV source {self.gcm_iv!r}")
        if not 12 <= self.gcm_iv_len <= 16:
            raise HsmConfigError(f"profile {self.name!r}: GCM IV length must be 12 to 16 bytes")


_STANDARD_TAG_FAILURES = ("EncryptedDataInvalid", "EncryptedDataLenRange", "WrappedKeyInvalid")

_SOFTHSM = Profile(
    name="softhsm",
    wrap="aes-gcm",
    gcm_iv="host",
    gcm_iv_len=12,
    gcm_mechanism=CKM_AES_GCM,
    kwp_mechanism=CKM_AES_KEY_WRAP_PAD,
    tag_failures=(*_STANDARD_TAG_FAILURES, "GeneralError"),
    max_sessions=None,
    tested=True,
    source="SoftHSM2 2.6.1, run by this project's tests",
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        _SOFTHSM,
        replace(
            _SOFTHSM,
            name="softhsm-kwp",
            wrap="aes-kwp",
            source="SoftHSM2 2.6.1 with RFC 5649 key wrap, run by this project's tests",
        ),
        Profile(
            name="cloudhsm",
            wrap="aes-gcm",
            gcm_iv="hsm-param",
            gcm_iv_len=12,
            gcm_mechanism=CKM_AES_GCM,
            kwp_mechanism=CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD,
            tag_failures=_STANDARD_TAG_FAILURES,
            max_sessions=None,
            tested=False,
            source=(
                "AWS CloudHSM Client SDK 5 documentation: the HSM ignores a caller's GCM IV and "
                "writes the 12-byte IV it generated into CK_GCM_PARAMS.pIv; RFC 5649 key wrap "
                "is the vendor mechanism 0x8000216F (CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD). "
                "Not run against CloudHSM by this project."
            ),
        ),
        Profile(
            name="luna",
            wrap="aes-gcm",
            gcm_iv="hsm-appended",
            gcm_iv_len=16,
            gcm_mechanism=CKM_AES_GCM,
            kwp_mechanism=CKM_AES_KEY_WRAP_KWP,
            tag_failures=_STANDARD_TAG_FAILURES,
            max_sessions=None,
            tested=False,
            source=(
                "Thales Luna 7 SDK documentation for CKM_AES_GCM: in FIPS mode the HSM generates "
                "a 16-byte IV and appends it to the ciphertext (firmware before 7.9.3 with "
                "ulIvLen = 16, ulIvBits = 128); RFC 5649 key wrap is CKM_AES_KWP (0x210B). For "
                "a partition outside FIPS mode, use a copy of this profile with gcm_iv='host'. "
                "Not run against a Luna HSM by this project."
            ),
        ),
    )
}


def get_profile(profile: str | Profile) -> Profile:
    """The profile named ``profile`` (or ``profile`` itself if it already is one).

    Raises:
        HsmConfigError: an unknown profile name.
    """
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise HsmConfigError(f"unknown HSM profile {profile!r} (known: {known})") from None

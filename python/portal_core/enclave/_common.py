"""What the passkey enclave and the PIN vault share: the KMS they seal with, argument
checks, and the opening of sealed records."""

from __future__ import annotations

import re
from collections.abc import Mapping

from portal_core.enclave.errors import SealedRecordInvalid
from portal_core.exceptions import InvalidTag
from portal_core.kms import SealingKms  # the KMS the enclave seals with (kms/contract.py)

__all__ = ["DEFAULT_SLOT", "SealingKms", "check_slot", "check_user", "open_sealed"]

DEFAULT_SLOT = "default"
# The alphabet of the backup flows' key slots (``<wallet id>.<backup id>``): no separators,
# no leading dot, so a slot can name a file or a URL path segment as it is.
_SLOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_MAX_USER_LEN = 256


def check_user(user: object, *, what: str = "the user id") -> str:
    """Raises TypeError / ValueError for a user id that is not a short printable str
    (``what`` names the argument in the message: a vault owner or operator is checked
    the same way)."""
    if not isinstance(user, str):
        raise TypeError(f"{what} must be a str, not {type(user).__name__}")
    if not 1 <= len(user) <= _MAX_USER_LEN or not user.isprintable():
        raise ValueError(f"{what} must be 1 to {_MAX_USER_LEN} printable characters")
    return user


def check_slot(slot: object) -> str:
    """Raises TypeError / ValueError for a slot name outside ``[A-Za-z0-9][A-Za-z0-9._-]*``."""
    if not isinstance(slot, str):
        raise TypeError(f"the slot must be a str, not {type(slot).__name__}")
    if not _SLOT.fullmatch(slot):
        raise ValueError(
            f"invalid slot name {slot!r}: 1 to 200 of A-Z a-z 0-9 . _ -, starting with a "
            "letter or digit"
        )
    return slot


def open_sealed(kms: SealingKms, sealed: bytes, context: Mapping[str, str], what: str) -> bytes:
    """Opens a sealed record, turning an authentication failure into a typed error that
    says which record failed (HSM outages and retired key versions pass through)."""
    try:
        return kms.open(sealed, context=context)
    except InvalidTag:
        raise SealedRecordInvalid(
            f"the sealed {what} does not open under its KMS key with its context: it was "
            "altered, or moved from another record"
        ) from None

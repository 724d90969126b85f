"""PRF mode, the device's side: a key wrapped under the passkey's PRF output.

WebAuthn L3 §10.1.4 (``prf``) lets a relying party have the authenticator evaluate a
pseudo-random function bound to the credential: the client hashes each input as
``SHA-256("WebAuthn PRF" || 0x00 || input)`` and the authenticator returns
``HMAC-SHA-256(CredRandom, hashed input)`` through CTAP2's ``hmac-secret`` extension
(CTAP 2.1). The output never leaves the device unless the client sends it.

Here the device derives a wrapping key from that output (HKDF-SHA256, RFC 5869) and seals
the backup key under it with the core envelope (key-committing, docs/envelope.md), with
user, credential and slot bound as context. The enclave stores only the wrapped value
(and seals it under its HSM KEK as well): the server alone, HSM included, can never open
it, and the device alone does not have it. docs/passkey.md compares the two modes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from portal_core import envelope, kdf
from portal_core.backup.errors import DecryptFailed
from portal_core.exceptions import InvalidEnvelope, InvalidTag

__all__ = ["PRF_KEY_ID", "split_prf_output", "unwrap_key", "wrap_key"]

# The envelope key id of PRF-wrapped keys: the enclave checks it, to refuse a raw key
# written in PRF mode by mistake.
PRF_KEY_ID = "passkey-prf/v1"
_WRAP_INFO = b"portal-core enclave v1: passkey PRF output -> key-wrapping key"
_MIN_PRF_OUTPUT = 32  # hmac-secret outputs are 32 bytes (CTAP 2.1)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the PRF output is not base64url") from None


def _wrapping_key(prf_output: Any) -> bytes:
    output = bytes(memoryview(prf_output).cast("B"))
    if len(output) < _MIN_PRF_OUTPUT:
        raise ValueError(f"a PRF output has at least {_MIN_PRF_OUTPUT} bytes")
    return kdf.hkdf_sha256(output, info=_WRAP_INFO, length=envelope.KEY_LEN)


def _context(user: str, credential_id: bytes, slot: str) -> dict[str, str]:
    return {
        "purpose": "portal-core passkey PRF-wrapped key",
        "user": user,
        "credential": _b64url(bytes(credential_id)),
        "slot": slot,
    }


def wrap_key(prf_output: Any, key: Any, *, user: str, credential_id: bytes, slot: str) -> bytes:
    """``key`` sealed under a key derived from the passkey's PRF output, for the enclave to
    keep (``finish_login_write(..., mode="prf")``).

    Raises:
        ValueError / TypeError: a PRF output shorter than 32 bytes, a bad key.
    """
    return envelope.seal(
        _wrapping_key(prf_output),
        key,
        context=_context(user, credential_id, slot),
        key_id=PRF_KEY_ID,
    )


def unwrap_key(
    prf_output: Any, wrapped: Any, *, user: str, credential_id: bytes, slot: str
) -> bytes:
    """The key inside a value made by :func:`wrap_key` with the same PRF output, user,
    credential and slot.

    Raises:
        DecryptFailed: another passkey's PRF output, another user, credential or slot, or
            a value altered (by the server or anyone on the way).
    """
    try:
        return envelope.open(
            _wrapping_key(prf_output), wrapped, context=_context(user, credential_id, slot)
        )
    except (InvalidTag, InvalidEnvelope):
        raise DecryptFailed(
            "the PRF-wrapped key does not open with this passkey's PRF output (another "
            "passkey, user or slot, or an altered value)"
        ) from None


def split_prf_output(response: Mapping[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """Separates a ``navigator.credentials.get()`` response (``toJSON()``) into what may
    be sent to the enclave and the PRF output, which must stay on the device.

    Returns a copy of the response without ``clientExtensionResults.prf.results`` (and
    without the older ``hmacGetSecret`` output), and the first PRF output or None.

    Raises:
        ValueError: a PRF output that is not base64url.
    """
    out = dict(response)
    ext = out.get("clientExtensionResults")
    if not isinstance(ext, Mapping):
        return out, None
    ext = dict(ext)
    output: bytes | None = None
    prf = ext.get("prf")
    if isinstance(prf, Mapping):
        prf = dict(prf)
        results = prf.pop("results", None)
        if isinstance(results, Mapping) and results.get("first") is not None:
            first = results["first"]
            output = _unb64url(first) if isinstance(first, str) else bytes(first)
        ext["prf"] = prf
    ext.pop("hmacGetSecret", None)
    out["clientExtensionResults"] = ext
    return out, output

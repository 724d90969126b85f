"""The client backup document and its cipher text (format: ``docs/backup.md``).

One JSON document holds every curve's client backup share; it is sealed once, with the
method's key, in a :mod:`portal_core.envelope` whose context binds the client id, the
wallet id, the backup id, each curve's pair id and the method, plus the method's public
parameters (Argon2id salt and costs). The context is readable without the key, so a
recovery can find its parameters and refuse a cipher text of another wallet by name; it is
authenticated by the key, so it cannot be altered without the envelope failing to open.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from portal_core import envelope
from portal_core.backup.errors import DecryptFailed
from portal_core.backup.methods import KeyBinding
from portal_core.exceptions import InvalidEnvelope

__all__ = ["DOCUMENT_VERSION", "CipherTextInfo", "cipher_context", "decode", "encode", "read_info"]

DOCUMENT_FORMAT = "portal-core client backup"
DOCUMENT_VERSION = 1
_PURPOSE = "client-backup"
# Method parameters may only add keys with these prefixes: they cannot shadow the ids.
_PARAM_PREFIXES = ("kdf", "key.", "vault")


def _pairs_field(pair_ids: Mapping[str, str]) -> str:
    return ",".join(f"{curve}:{pid}" for curve, pid in sorted(pair_ids.items()))


def cipher_context(
    binding: KeyBinding, pair_ids: Mapping[str, str], params: Mapping[str, str]
) -> dict[str, str]:
    """The envelope context of a backup's cipher text. The operators that keep the
    backup's halves are bound too, when named (``envelope.inspect`` shows them)."""
    ctx = {
        "purpose": _PURPOSE,
        "version": str(DOCUMENT_VERSION),
        "client": binding.client_id,
        "wallet": binding.wallet_id,
        "backup": binding.backup_id,
        "method": binding.method,
        "pairs": _pairs_field(pair_ids),
    }
    if binding.keepers.custodian is not None:
        ctx["custodian"] = binding.keepers.custodian
    if binding.keepers.cipher_text is not None:
        ctx["cipher_text_keeper"] = binding.keepers.cipher_text
    for key, value in params.items():
        if not key.startswith(_PARAM_PREFIXES) or key in ctx:
            raise ValueError(f"method parameter {key!r} is not allowed in the context")
        ctx[key] = value
    return ctx


@dataclass(frozen=True)
class CipherTextInfo:
    """What a cipher text's header says (unauthenticated until the envelope opens)."""

    client_id: str
    wallet_id: str
    backup_id: str
    method: str
    pair_ids: dict[str, str]
    context: dict[str, str]

    def binding(self) -> KeyBinding:
        return KeyBinding(self.client_id, self.wallet_id, self.backup_id, self.method)


def read_info(cipher_text: bytes) -> CipherTextInfo:
    """Reads a cipher text's header.

    Raises:
        DecryptFailed: not an envelope, or not a portal-core client backup.
    """
    if not isinstance(cipher_text, bytes | bytearray | memoryview):
        raise TypeError("cipher_text must be bytes")
    try:
        ctx = dict(envelope.inspect(cipher_text)["context"])
    except InvalidEnvelope as e:
        raise DecryptFailed(f"the cipher text is not a sealed backup: {e}") from None
    if ctx.get("purpose") != _PURPOSE:
        raise DecryptFailed("the cipher text is not a portal-core client backup")
    if ctx.get("version") != str(DOCUMENT_VERSION):
        raise DecryptFailed(
            f"the cipher text is backup format version {ctx.get('version')!r}; this build "
            f"reads version {DOCUMENT_VERSION}"
        )
    try:
        pairs = dict(item.split(":", 1) for item in ctx["pairs"].split(","))
        return CipherTextInfo(
            ctx["client"], ctx["wallet"], ctx["backup"], ctx["method"], pairs, ctx
        )
    except (KeyError, ValueError):
        raise DecryptFailed("the cipher text's header lacks its ids") from None


def encode(binding: KeyBinding, shares: Mapping[str, tuple[str, bytes]]) -> bytearray:
    """The JSON document: ``shares`` maps each curve to ``(pair id, serialized share)``."""
    doc = {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "wallet_id": binding.wallet_id,
        "backup_id": binding.backup_id,
        "shares": {
            curve: {"pair_id": pid, "share": base64.b64encode(data).decode("ascii")}
            for curve, (pid, data) in sorted(shares.items())
        },
    }
    return bytearray(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def decode(plaintext: bytes | bytearray, binding: KeyBinding) -> dict[str, tuple[str, bytes]]:
    """The shares of an opened document, by curve: ``(pair id, serialized share)``.

    Raises:
        DecryptFailed: the document is malformed or names another wallet or backup (only a
            bug could do that: the envelope context already bound them).
    """
    try:
        doc = json.loads(bytes(plaintext).decode("utf-8"))
        if doc["format"] != DOCUMENT_FORMAT or doc["version"] != DOCUMENT_VERSION:
            raise ValueError("format")
        if doc["wallet_id"] != binding.wallet_id or doc["backup_id"] != binding.backup_id:
            raise ValueError("ids")
        return {
            curve: (entry["pair_id"], base64.b64decode(entry["share"], validate=True))
            for curve, entry in doc["shares"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        # No detail: the document holds shares, and a parser's message could quote them.
        raise DecryptFailed("the backup document inside the cipher text is malformed") from None

"""The sealed envelope (format and vectors: docs/envelope.md)."""

from collections.abc import Buffer, Iterable, Mapping, Sequence
from typing import TypedDict

KEY_LEN: int
VERSION: int

class EnvelopeInfo(TypedDict):
    version: int
    suite: str
    key_id: str
    context: dict[str, str]
    plaintext_length: int

Context = Mapping[str, str] | None

def seal(key: Buffer, plaintext: Buffer, *, context: Context = None, key_id: str = "") -> bytes:
    """Seals ``plaintext`` under a 32-byte key, binding ``context``; fresh salt each call.

    Raises:
        ValueError: a key that is not 32 bytes, a key id over 255 bytes, a context
            encoding over 65535 bytes.
        TypeError: a non-buffer key or plaintext, or a context that is not dict[str, str].
    """

def open(key: Buffer, sealed: Buffer, *, context: Context = None) -> bytes:
    """Opens an envelope sealed under ``key`` with the same ``context``.

    Raises:
        portal_core.exceptions.InvalidTag: wrong key, wrong context or tampering.
        portal_core.exceptions.InvalidEnvelope: malformed, truncated, or unknown version.
        ValueError: a key that is not 32 bytes.
    """

def inspect(sealed: Buffer) -> EnvelopeInfo:
    """The header (version, suite, key id, context, plaintext length); no key needed.

    Raises:
        portal_core.exceptions.InvalidEnvelope: malformed, truncated, or unknown version.
    """

def seal_many(
    key: Buffer,
    plaintexts: Iterable[Buffer] | Buffer,
    *,
    context: Context | Sequence[Context] = None,
    key_id: str = "",
) -> list[bytes]:
    """Seals every item on all cores with the GIL released.

    ``plaintexts`` is a sequence of bytes-like objects or a 2-D C-contiguous uint8 array
    (one item per row). ``context`` is one context for all, or a list of one per item.

    Raises:
        ValueError: as :func:`seal`, or a context list of the wrong length.
        TypeError: as :func:`seal`.
    """

def open_many(
    key: Buffer,
    sealed: Iterable[Buffer] | Buffer,
    *,
    context: Context | Sequence[Context] = None,
) -> list[bytes]:
    """Opens every envelope on all cores; all succeed or the call raises and returns nothing.

    Raises:
        portal_core.exceptions.InvalidTag: an item failed; the message names its index.
        portal_core.exceptions.InvalidEnvelope: an item is malformed; the message names it.
        ValueError: as :func:`open`, or a context list of the wrong length.
    """

"""The sealed envelope (format and vectors: docs/envelope.md)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

from typing_extensions import Buffer

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
    prefix: Buffer | None = None,
) -> list[bytes]:
    """Seals every item on all cores with the GIL released.

    ``plaintexts`` is a sequence of bytes-like objects or a 2-D C-contiguous uint8 array
    (one item per row). ``context`` is one context for all, or a list of one per item.
    ``prefix`` (e.g. a caller's own header) is written before every envelope; the envelope
    does not authenticate it.

    Raises:
        ValueError: as :func:`seal`, or a context list of the wrong length.
        TypeError: as :func:`seal`.
    """

def open_many(
    key: Buffer,
    sealed: Iterable[Buffer] | Buffer,
    *,
    context: Context | Sequence[Context] = None,
    skip: int = 0,
) -> list[bytes]:
    """Opens every envelope on all cores; all succeed or the call raises and returns nothing.

    The first ``skip`` bytes of every item (a caller's own header) are ignored.

    Raises:
        portal_core.exceptions.InvalidTag: an item failed; the message names its index.
        portal_core.exceptions.InvalidEnvelope: an item is malformed; the message names it.
        ValueError: as :func:`open`, or a context list of the wrong length.
    """

def reseal(old_key: Buffer, sealed: Buffer, new_key: Buffer, *, key_id: str = "") -> bytes:
    """Moves an envelope to ``new_key`` without the plaintext leaving the core.

    Opens ``sealed`` under ``old_key`` with the context stored in its header, then seals
    the same plaintext and context under ``new_key`` with a fresh salt and ``key_id``.

    Raises:
        portal_core.exceptions.InvalidTag: wrong ``old_key`` or tampering.
        portal_core.exceptions.InvalidEnvelope: malformed, truncated, or unknown version.
        ValueError: a key that is not 32 bytes, a key id over 255 bytes.
    """

def reseal_many(
    old_key: Buffer,
    sealed: Iterable[Buffer] | Buffer,
    new_key: Buffer,
    *,
    key_id: str = "",
    skip: int = 0,
    prefix: Buffer | None = None,
) -> list[bytes]:
    """:func:`reseal` for every envelope, on all cores with the GIL released.

    ``skip`` and ``prefix`` are as in :func:`open_many` and :func:`seal_many`: the first
    ``skip`` bytes of every item are ignored, and ``prefix`` is written before every new
    envelope. All or nothing: if any item fails the call raises and returns nothing.

    Raises:
        portal_core.exceptions.InvalidTag: an item failed; the message names its index.
        portal_core.exceptions.InvalidEnvelope: an item is malformed; the message names it.
        ValueError: as :func:`reseal`.
    """

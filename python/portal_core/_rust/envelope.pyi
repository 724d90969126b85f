"""The sealed envelope (format and vectors: docs/envelope.md)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer

__all__ = [
    "KEY_LEN",
    "VERSION",
    "inspect",
    "open",
    "open_many",
    "open_many_array",
    "open_many_into",
    "reseal",
    "reseal_many",
    "seal",
    "seal_many",
    "seal_many_array",
    "seal_many_into",
]

# ``key_id=None`` is the empty key id, as the core takes it.

KEY_LEN: int
VERSION: int

class EnvelopeInfo(TypedDict):
    version: int
    suite: str
    key_id: str
    context: dict[str, str]
    plaintext_length: int

Context = Mapping[str, str] | None
# The items of a batch: bytes-like objects, or the rows of a 2-D uint8 array (numpy's stubs
# declare ndarray a Buffer only for Python 3.12 and later, hence the array named as well).
# Private, as they are type-only names with nothing at run time to compare them with.
_Items = Iterable[Buffer] | Buffer | NDArray[np.uint8]
# A batch's output, written in place: a writable C-contiguous 2-D uint8 array or memoryview.
_Rows = NDArray[np.uint8] | memoryview

def seal(
    key: Buffer, plaintext: Buffer, *, context: Context = None, key_id: str | None = None
) -> bytes:
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
    key_id: str | None = None,
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

def seal_many_array(
    key: Buffer,
    plaintexts: _Items,
    *,
    context: Context | Sequence[Context] = None,
    key_id: str | None = None,
    prefix: Buffer | None = None,
) -> NDArray[np.uint8]:
    """:func:`seal_many` into one new C-contiguous 2-D uint8 numpy array, one envelope a row.

    One allocation for the whole batch instead of one ``bytes`` object per item. Every
    item must seal to the same length (items of one length under contexts of one encoded
    length). No items give an array of no rows.

    Raises:
        ValueError: as :func:`seal_many`, or items that seal to different lengths.
        TypeError: as :func:`seal_many`.
        ImportError: numpy is not installed.
    """

def open_many_array(
    key: Buffer,
    sealed: _Items,
    *,
    context: Context | Sequence[Context] = None,
    skip: int = 0,
) -> NDArray[np.uint8]:
    """:func:`open_many` into one new C-contiguous 2-D uint8 numpy array, one plaintext a row.

    Every plaintext must be the same length. All or nothing, as :func:`open_many`.

    Raises:
        portal_core.exceptions.InvalidTag: an item failed; the message names its index.
        portal_core.exceptions.InvalidEnvelope: an item is malformed; the message names it.
        ValueError: as :func:`open_many`, or a plaintext of another length than item 0's
            (the message names the item).
        ImportError: numpy is not installed.
    """

def seal_many_into(
    key: Buffer,
    plaintexts: _Items,
    out: _Rows,
    *,
    context: Context | Sequence[Context] = None,
    key_id: str | None = None,
    prefix: Buffer | None = None,
) -> None:
    """:func:`seal_many` into the rows of the caller's array; allocates nothing.

    ``out`` is a writable C-contiguous 2-D uint8 buffer (a numpy array, or a memoryview
    cast to two dimensions) with one row per item, each row exactly ``prefix`` plus the
    item's envelope. It must not share memory with any input. Every argument is checked
    before anything is written; if sealing then fails, ``out`` is left zeroed.

    Raises:
        TypeError: an ``out`` that is not a writable uint8 buffer, or as :func:`seal_many`.
        ValueError: an ``out`` that is not 2-D, not C-contiguous, of the wrong number of rows,
            of the wrong row length, or sharing memory with an input; or as :func:`seal_many`.
    """

def open_many_into(
    key: Buffer,
    sealed: _Items,
    out: _Rows,
    *,
    context: Context | Sequence[Context] = None,
    skip: int = 0,
) -> None:
    """:func:`open_many` into the rows of the caller's array; allocates nothing.

    ``out`` is as in :func:`seal_many_into`, each row exactly one item's plaintext. Every
    argument is checked before anything is written (item 0's plaintext length among them);
    if any item then fails, ``out`` is left zeroed and the call raises, naming the first
    failing item as :func:`open_many` does.

    Raises:
        portal_core.exceptions.InvalidTag: an item failed; the message names its index.
        portal_core.exceptions.InvalidEnvelope: an item is malformed; the message names it.
        TypeError: an ``out`` that is not a writable uint8 buffer.
        ValueError: an ``out`` that is not 2-D, not C-contiguous, of the wrong number of rows,
            of the wrong row length, or sharing memory with an input; an item whose plaintext
            does not fit its row (named); or as :func:`open_many`.
    """

def reseal(old_key: Buffer, sealed: Buffer, new_key: Buffer, *, key_id: str | None = None) -> bytes:
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
    key_id: str | None = None,
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

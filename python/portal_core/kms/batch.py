"""Batches: many blobs per call, sealed, opened or rewrapped on all cores by the Rust core.

A batch is grouped by blob header, that is by intermediate key: each group costs at most one
HSM call and one call into the core (``envelope.seal_many`` / ``open_many`` /
``reseal_many``, which release the GIL). Opening and rewrapping are all or nothing: when the
core refuses a group, the items are tried one by one only to name the first failing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag
from portal_core.kms.blob import header_len
from portal_core.kms.cache import Intermediate
from portal_core.kms.contract import Context
from portal_core.kms.errors import MalformedBlob
from portal_core.kms.hierarchy import KeyHierarchy

if TYPE_CHECKING:  # collections.abc.Buffer is new in 3.12; typing_extensions is no dependency
    from typing_extensions import Buffer

__all__ = ["open_many", "rewrap_many", "seal_many"]

# Distinct headers matched by scanning a batch before parsing the rest one by one.
_SCANNED_HEADERS = 8


def _header_of(item: bytes | bytearray, index: int) -> bytes:
    try:
        return bytes(item[: header_len(item)])
    except MalformedBlob as e:
        e.add_note(f"batch item {index}")
        raise


class _Rows(Protocol):
    """A batch that can be measured and sliced as it is: a sequence of bytes-like objects,
    or a 2-D uint8 array whose slices are arrays of rows."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> Iterable[Buffer] | Buffer: ...


def _sliceable(items: Iterable[Buffer]) -> TypeGuard[_Rows]:
    """Whether ``items`` is used as it is (indexable), rather than copied into a list."""
    return hasattr(items, "__getitem__")


def _group(sealed: Iterable[Buffer]) -> tuple[list[bytes | bytearray], dict[bytes, list[int]]]:
    """The blobs of a batch, grouped by header (that is, by intermediate key).

    A batch usually holds a few intermediate keys, so each header found is matched against
    the remaining blobs with ``startswith``, in C, rather than parsing every header in
    Python; past a few distinct headers the rest are parsed one by one. A header is
    self-delimiting, so a blob that starts with a header has that header.
    """
    items = [b if isinstance(b, bytes | bytearray) else bytes(b) for b in sealed]
    groups: dict[bytes, list[int]] = {}
    pending = list(range(len(items)))
    while pending:
        if len(groups) >= _SCANNED_HEADERS:
            for i in pending:
                groups.setdefault(_header_of(items[i], i), []).append(i)
            break
        header = _header_of(items[pending[0]], pending[0])
        same = [i for i in pending if items[i].startswith(header)]
        groups[header] = same
        if len(same) == len(pending):
            break
        pending = [i for i in pending if not items[i].startswith(header)]
    return items, groups


def _group_key(hierarchy: KeyHierarchy, header: bytes, first: int) -> Intermediate:
    try:
        return hierarchy.opening_key(header)
    except Exception as e:
        e.add_note(f"batch item {first}")
        raise


def _first_failure(attempt: Callable[[int], None], indices: list[int]) -> Exception:
    """After a group failed in the core: which item, as the error to raise."""
    for i in indices:
        try:
            attempt(i)
        except InvalidTag:
            return InvalidTag(f"item {i} failed authentication")
        except InvalidEnvelope as e:
            return MalformedBlob(f"item {i}: KMS blob holds a malformed envelope: {e}")
    return InvalidTag(f"an item among {indices[:5]}... failed authentication")


def _per_item(context: Context | Sequence[Context], n: int) -> list[Context] | None:
    """``context`` if it is one per item (a list), its length checked; None if it is one
    context for all items (anything else is passed to the core, which refuses it)."""
    if not isinstance(context, list):
        return None
    if len(context) != n:
        raise ValueError(f"got {len(context)} contexts for {n} items")
    return context


def _one(context: Context | Sequence[Context]) -> Context:
    """``context`` as the one context of every item: only after the core took it as such,
    which it does for a dict or None alone."""
    if context is None or isinstance(context, Mapping):
        return context
    raise TypeError("context must be a dict[str, str] or None, or a list of one per item")


def seal_many(
    hierarchy: KeyHierarchy,
    name: str,
    plaintexts: Iterable[Buffer],
    context: Context | Sequence[Context],
) -> list[bytes]:
    """``plaintexts`` sealed under the newest version of ``name`` (``Pkcs11Kms.seal_many``)."""
    items: _Rows = plaintexts if _sliceable(plaintexts) else list(plaintexts)
    n = len(items)
    contexts = _per_item(context, n)
    out: list[bytes] = []
    pos = 0
    while pos < n:
        cur, take = hierarchy.sealing_key(name, n - pos)
        ctx = contexts[pos : pos + take] if contexts is not None else context
        out.extend(
            envelope.seal_many(
                cur.key,
                items[pos : pos + take],
                context=ctx,
                key_id=cur.key_id,
                prefix=cur.header,
            )
        )
        pos += take
    return out


def open_many(
    hierarchy: KeyHierarchy, sealed: Iterable[Buffer], context: Context | Sequence[Context]
) -> list[bytes]:
    """The plaintexts of a batch of blobs, all or nothing (``Pkcs11Kms.open_many``)."""
    items, groups = _group(sealed)
    n = len(items)
    contexts = _per_item(context, n)
    out: list[Any] = [None] * n
    for header, indices in groups.items():
        entry = _group_key(hierarchy, header, indices[0])
        ctx = [contexts[i] for i in indices] if contexts is not None else context
        batch = items if len(indices) == n else [items[i] for i in indices]
        try:
            opened = envelope.open_many(entry.key, batch, context=ctx, skip=len(header))
        except (InvalidTag, InvalidEnvelope):

            def attempt(i: int, key: bytes = entry.key, skip: int = len(header)) -> None:
                ctx_i = contexts[i] if contexts is not None else _one(context)
                envelope.open(key, memoryview(items[i])[skip:], context=ctx_i)

            raise _first_failure(attempt, indices) from None
        if len(indices) == n:
            return opened
        for i, plaintext in zip(indices, opened, strict=True):
            out[i] = plaintext
    return out


def rewrap_many(hierarchy: KeyHierarchy, sealed: Iterable[Buffer]) -> list[bytes]:
    """A batch of blobs moved to the newest versions of their keys, all or nothing, the
    plaintexts never leaving the core (``Pkcs11Kms.rewrap_many``)."""
    items, groups = _group(sealed)
    out: list[Any] = [None] * len(items)
    for header, indices in groups.items():
        old = _group_key(hierarchy, header, indices[0])
        pos = 0
        while pos < len(indices):
            cur, take = hierarchy.sealing_key(old.key_name, len(indices) - pos)
            chunk = indices[pos : pos + take]
            try:
                moved = envelope.reseal_many(
                    old.key,
                    [items[i] for i in chunk],
                    cur.key,
                    key_id=cur.key_id,
                    skip=len(header),
                    prefix=cur.header,
                )
            except (InvalidTag, InvalidEnvelope):

                def attempt(i: int, key: bytes = old.key, skip: int = len(header)) -> None:
                    envelope.reseal(key, memoryview(items[i])[skip:], key)

                raise _first_failure(attempt, chunk) from None
            for i, blob_ in zip(chunk, moved, strict=True):
                out[i] = blob_
            pos += take
    return out

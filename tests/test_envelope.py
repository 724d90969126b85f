"""The sealed envelope: published vectors, an independent peer, tampering, batches."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import Buffer

import envelope_reference as ref
from numpy_buffer import as_buffer
from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag, PortalError

VECTORS = Path(__file__).parent / "vectors" / "envelope_v1.json"
KEY = bytes(range(32))
CTX = {"wallet": "w-1", "curve": "ED25519", "party": "client"}

contexts = st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=5)


def test_vector_file_is_what_the_reference_makes():
    assert json.loads(VECTORS.read_text("utf-8")) == ref.vectors()


@pytest.mark.parametrize("vector", ref.vectors()["vectors"], ids=lambda v: v["name"])
def test_published_vectors_open_and_inspect(vector):
    key, sealed = bytes.fromhex(vector["key"]), bytes.fromhex(vector["sealed"])
    pt = bytes.fromhex(vector["plaintext"])
    assert envelope.open(key, sealed, context=vector["context"]) == pt
    info = envelope.inspect(sealed)
    assert info["version"] == envelope.VERSION == 1
    assert info["key_id"] == vector["key_id"]
    assert info["context"] == vector["context"]
    assert info["plaintext_length"] == len(pt)
    assert "AES-256-GCM" in info["suite"]


@settings(max_examples=60, deadline=None)
@given(pt=st.binary(max_size=3000), ctx=contexts, kid=st.text(max_size=20))
def test_sealed_by_portal_opens_with_the_reference(pt, ctx, kid):
    key = os.urandom(32)
    sealed = envelope.seal(key, pt, context=ctx, key_id=kid)
    assert ref.open_(key, sealed) == (ctx, kid, pt)
    assert envelope.open(key, sealed, context=dict(reversed(list(ctx.items())))) == pt


def test_fresh_salt_every_time():
    a = envelope.seal(KEY, b"same", context=CTX)
    b = envelope.seal(KEY, b"same", context=CTX)
    assert a != b
    assert envelope.open(KEY, a, context=CTX) == envelope.open(KEY, b, context=CTX) == b"same"


def test_buffers_of_every_kind():
    pt = b"share bytes" * 10
    kinds: list[Callable[[bytes], Buffer]] = [
        bytes,
        bytearray,
        memoryview,
        lambda b: as_buffer(np.frombuffer(b, dtype=np.uint8)),
    ]
    for kind in kinds:
        sealed = envelope.seal(kind(KEY), kind(pt), context=CTX)
        assert envelope.open(kind(KEY), kind(sealed), context=CTX) == pt


def test_opens_under_exactly_one_key():
    sealed = envelope.seal(KEY, b"x" * 40, context=CTX)
    for _ in range(50):
        with pytest.raises(InvalidTag):
            envelope.open(os.urandom(32), sealed, context=CTX)


@pytest.mark.parametrize(
    "other",
    [
        {**CTX, "wallet": "w-2"},
        {k: v for k, v in CTX.items() if k != "party"},
        {**CTX, "extra": ""},
        {},
        None,
    ],
)
def test_other_context_fails(other):
    sealed = envelope.seal(KEY, b"share", context=CTX)
    with pytest.raises(InvalidTag):
        envelope.open(KEY, sealed, context=other)


def test_none_and_empty_context_are_the_same():
    assert envelope.open(KEY, envelope.seal(KEY, b"a"), context={}) == b"a"
    assert envelope.open(KEY, envelope.seal(KEY, b"a", context={})) == b"a"


def test_every_bit_flip_and_truncation_fails():
    sealed = envelope.seal(KEY, b"0123456789abcdef" * 2, context=CTX, key_id="k1")
    for i in range(len(sealed)):
        for bit in range(8):
            bad = bytearray(sealed)
            bad[i] ^= 1 << bit
            with pytest.raises((InvalidTag, InvalidEnvelope)):
                envelope.open(KEY, bytes(bad), context=CTX)
    for n in range(len(sealed)):
        with pytest.raises((InvalidTag, InvalidEnvelope)):
            envelope.open(KEY, sealed[:n], context=CTX)
    with pytest.raises((InvalidTag, InvalidEnvelope)):
        envelope.open(KEY, sealed + b"\0", context=CTX)


def test_malformed_headers_are_invalid_envelopes():
    sealed = envelope.seal(KEY, b"abc", context=CTX)
    with pytest.raises(InvalidEnvelope, match="magic"):
        envelope.inspect(b"XX" + sealed[2:])
    with pytest.raises(InvalidEnvelope, match="version 2"):
        envelope.open(KEY, sealed[:2] + b"\x02" + sealed[3:], context=CTX)
    with pytest.raises(InvalidEnvelope, match="suite 9"):
        envelope.inspect(sealed[:3] + b"\x09" + sealed[4:])
    with pytest.raises(InvalidEnvelope, match="truncated"):
        envelope.inspect(sealed[:40])
    assert issubclass(InvalidEnvelope, PortalError)


def test_bad_arguments():
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.seal(b"k" * 16, b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.open(b"k" * 31, envelope.seal(KEY, b"x"))
    with pytest.raises(TypeError):
        envelope.seal("k" * 32, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        envelope.seal(KEY, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        envelope.seal(KEY, b"x", context=[("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        envelope.seal(KEY, b"x", context={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="255"):
        envelope.seal(KEY, b"x", key_id="k" * 256)
    with pytest.raises(ValueError, match="65535"):
        envelope.seal(KEY, b"x", context={"a": "v" * 70_000})


def test_errors_and_outputs_never_show_the_key():
    sealed = envelope.seal(KEY, b"secret", context=CTX)
    calls: list[Callable[[], bytes]] = [
        lambda: envelope.open(os.urandom(32), sealed, context=CTX),
        lambda: envelope.open(KEY[:31], sealed, context=CTX),
        lambda: envelope.open(KEY, sealed[:50], context=CTX),
    ]
    for call in calls:
        with pytest.raises(Exception) as info:
            call()
        text = str(info.value) + repr(info.value)
        assert KEY.hex() not in text and "secret" not in text
    assert KEY not in sealed and KEY.hex() not in str(envelope.inspect(sealed))


def test_seal_many_round_trip_with_every_input_form():
    shares = [os.urandom(n) for n in (0, 1, 31, 1024, 5000)] * 40
    sealed = envelope.seal_many(KEY, shares, context=CTX, key_id="batch")
    assert len(sealed) == len(shares)
    assert len(set(sealed)) == len(sealed)
    assert envelope.open_many(KEY, sealed, context=CTX) == shares
    assert [envelope.open(KEY, s, context=CTX) for s in sealed[:5]] == shares[:5]
    assert envelope.inspect(sealed[0])["key_id"] == "batch"
    mixed: list[Buffer] = [
        bytearray(shares[1]),
        memoryview(shares[2]),
        as_buffer(np.frombuffer(shares[3], np.uint8)),
    ]
    assert envelope.open_many(KEY, envelope.seal_many(KEY, mixed), context=None) == shares[1:4]
    assert envelope.seal_many(KEY, []) == [] and envelope.open_many(KEY, []) == []


def test_seal_many_numpy_rows():
    rows = np.frombuffer(os.urandom(300 * 64), dtype=np.uint8).reshape(300, 64)
    sealed = envelope.seal_many(KEY, rows, context=CTX)
    assert envelope.open_many(KEY, sealed, context=CTX) == [r.tobytes() for r in rows]
    with pytest.raises(ValueError, match="2-D"):
        envelope.seal_many(KEY, np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        envelope.seal_many(KEY, rows[:, ::2])


def test_per_item_contexts():
    ctxs = [{"wallet": f"w{i}"} for i in range(100)]
    shares = [os.urandom(32) for _ in ctxs]
    sealed = envelope.seal_many(KEY, shares, context=ctxs)
    assert envelope.open_many(KEY, sealed, context=ctxs) == shares
    assert envelope.inspect(sealed[7])["context"] == {"wallet": "w7"}
    with pytest.raises(InvalidTag, match="item 0"):
        envelope.open_many(KEY, sealed, context=ctxs[1:] + ctxs[:1])
    with pytest.raises(ValueError, match="contexts"):
        envelope.seal_many(KEY, shares, context=ctxs[:5])


def test_open_many_fails_whole_naming_the_first_bad_item():
    shares = [os.urandom(64) for _ in range(500)]
    sealed = envelope.seal_many(KEY, shares, context=CTX)
    sealed[321] = sealed[321][:-1] + bytes([sealed[321][-1] ^ 1])
    sealed[400] = sealed[400][:-1] + bytes([sealed[400][-1] ^ 1])
    with pytest.raises(InvalidTag, match="item 321"):
        envelope.open_many(KEY, sealed, context=CTX)
    sealed[10] = b"garbage"
    with pytest.raises(InvalidEnvelope, match="item 10"):
        envelope.open_many(KEY, sealed, context=CTX)
    with pytest.raises(TypeError):
        envelope.seal_many(KEY, [b"ok", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        envelope.seal_many(KEY, 12)  # type: ignore[arg-type]


# -- the array forms: one contiguous 2-D uint8 array out, made by the call or the caller's ----

ROWS = np.frombuffer(os.urandom(1500 * 96), dtype=np.uint8).reshape(1500, 96)
TAG_LEN, SALT_COMMIT_INDEX_LEN = 16, 32 + 32 + 4


def _sealed_width(width: int, context: dict[str, str] | None = None, key_id: str = "") -> int:
    """The row length of envelopes of ``width``-byte items."""
    one = envelope.seal_many_array(
        KEY, np.zeros((1, width), np.uint8), context=context, key_id=key_id
    )
    return int(one.shape[1])


def _before_salt(sealed: bytes, plaintext_len: int) -> bytes:
    """Magic, version, suite, key id and context: the bytes that are the same every time."""
    return sealed[: len(sealed) - TAG_LEN - plaintext_len - SALT_COMMIT_INDEX_LEN]


def test_seal_many_array_rows_open_as_the_list_api_would() -> None:
    arr = envelope.seal_many_array(KEY, ROWS, context=CTX, key_id="kid")
    listed = envelope.seal_many(KEY, ROWS, context=CTX, key_id="kid")
    assert arr.dtype == np.uint8 and arr.ndim == 2 and arr.flags.c_contiguous
    assert arr.shape == (len(ROWS), len(listed[0]))
    assert {_before_salt(bytes(r), 96) for r in arr} == {_before_salt(s, 96) for s in listed}
    assert len({bytes(r) for r in arr}) == len(arr)
    # Each API opens what the other sealed, to the same bytes.
    plain = [r.tobytes() for r in ROWS]
    assert envelope.open_many(KEY, arr, context=CTX) == plain
    assert envelope.open_many(KEY, [bytes(r) for r in arr], context=CTX) == plain
    opened = envelope.open_many_array(KEY, listed, context=CTX)
    assert opened.dtype == np.uint8 and opened.flags.c_contiguous
    assert [r.tobytes() for r in opened] == envelope.open_many(KEY, listed, context=CTX) == plain
    assert np.array_equal(envelope.open_many_array(KEY, arr, context=CTX), ROWS)


def test_array_forms_take_lists_of_equal_items_and_refuse_unequal_ones() -> None:
    items = [os.urandom(40) for _ in range(30)]
    arr = envelope.seal_many_array(KEY, items, context=CTX)
    assert arr.shape == (30, _sealed_width(40, context=CTX))
    assert envelope.open_many(KEY, arr, context=CTX) == items
    assert [r.tobytes() for r in envelope.open_many_array(KEY, list(arr), context=CTX)] == items
    with pytest.raises(ValueError, match=r"item 0 seals to .* but item 2"):
        envelope.seal_many_array(KEY, [b"a", b"b", b"cc"])
    sealed = envelope.seal_many(KEY, [b"x" * 10, b"y" * 10, b"z" * 11])
    with pytest.raises(ValueError, match="item 2"):
        envelope.open_many_array(KEY, sealed)


def test_into_forms_write_what_the_list_api_opens() -> None:
    out = np.full((len(ROWS), _sealed_width(96, context=CTX, key_id="k")), 0xAA, np.uint8)
    envelope.seal_many_into(KEY, ROWS, out, context=CTX, key_id="k")
    assert envelope.open_many(KEY, out, context=CTX) == [r.tobytes() for r in ROWS]
    assert envelope.inspect(out[7])["key_id"] == "k"
    plain = np.full(ROWS.shape, 0x55, np.uint8)
    envelope.open_many_into(KEY, out, plain, context=CTX)
    assert np.array_equal(plain, ROWS)
    # What the list API sealed, opened into a 2-D memoryview as well as an ndarray.
    listed = envelope.seal_many(KEY, [r.tobytes() for r in ROWS[:20]], context=CTX)
    view = memoryview(bytearray(20 * 96)).cast("B", (20, 96))
    envelope.open_many_into(KEY, listed, view, context=CTX)
    assert bytes(view) == ROWS[:20].tobytes()


def test_array_forms_with_prefix_skip_and_per_item_contexts() -> None:
    ctxs = [{"wallet": f"w{i:04d}"} for i in range(len(ROWS))]
    head = b"HDR1"
    arr = envelope.seal_many_array(KEY, ROWS, context=ctxs, prefix=head)
    assert (arr[:, :4] == np.frombuffer(head, np.uint8)).all()
    assert envelope.inspect(arr[9, 4:].tobytes())["context"] == {"wallet": "w0009"}
    assert envelope.open_many(KEY, arr, context=ctxs, skip=4) == [r.tobytes() for r in ROWS]
    assert np.array_equal(envelope.open_many_array(KEY, arr, context=ctxs, skip=4), ROWS)
    out = np.empty_like(arr)
    envelope.seal_many_into(KEY, ROWS, out, context=ctxs, prefix=head)
    assert (out[:, :4] == np.frombuffer(head, np.uint8)).all()
    plain = np.empty_like(ROWS)
    envelope.open_many_into(KEY, out, plain, context=ctxs, skip=4)
    assert np.array_equal(plain, ROWS)
    with pytest.raises(InvalidTag, match="item 0"):
        envelope.open_many_array(KEY, arr, context=ctxs[1:] + ctxs[:1], skip=4)
    with pytest.raises(ValueError, match="contexts"):
        envelope.seal_many_array(KEY, ROWS, context=ctxs[:3])
    with pytest.raises(ValueError, match="seals to"):
        envelope.seal_many_array(KEY, ROWS[:2], context=[{"a": "b"}, {"a": "bc"}])


def test_empty_batches() -> None:
    assert envelope.seal_many_array(KEY, []).shape == (0, 0)
    assert envelope.open_many_array(KEY, []).shape == (0, 0)
    no_rows = np.zeros((0, 96), np.uint8)
    assert envelope.seal_many_array(KEY, no_rows, context=CTX).shape == (0, _sealed_width(96, CTX))
    envelope.seal_many_into(KEY, no_rows, np.zeros((0, 7), np.uint8))
    envelope.open_many_into(KEY, [], np.zeros((0, 7), np.uint8))


def _wrong_outs(rows: int, width: int) -> list[tuple[object, type[Exception], str]]:
    """Outputs for ``rows`` items of ``width`` bytes, each wrong in one way."""
    read_only = np.zeros((rows, width), np.uint8)
    read_only.flags.writeable = False
    wide = np.zeros((rows, 2 * width), np.uint8)
    return [
        (np.zeros((rows, width), np.float32), TypeError, "dtype uint8, not float32"),
        (np.zeros((rows, width), np.int8), TypeError, "dtype uint8, not int8"),
        (np.zeros((rows, width), np.bool_), TypeError, "dtype uint8, not bool"),
        ([[0] * width] * rows, TypeError, "writable 2-D uint8 array, not list"),
        (bytes(rows * width), TypeError, "writable"),
        (read_only, TypeError, "writable"),
        (bytearray(rows * width), ValueError, "2-D"),
        (np.zeros(rows * width, np.uint8), ValueError, "2-D"),
        (np.zeros((rows, width, 1), np.uint8), ValueError, "2-D"),
        (wide[:, ::2], ValueError, "C-contiguous"),
        (np.asfortranarray(np.zeros((rows, width), np.uint8)), ValueError, "C-contiguous"),
        (np.zeros((rows + 1, width), np.uint8), ValueError, f"{rows + 1} rows for {rows} items"),
        (np.zeros((rows - 1, width), np.uint8), ValueError, f"{rows - 1} rows for {rows} items"),
        (np.zeros((rows, width + 1), np.uint8), ValueError, f"rows are {width + 1} bytes"),
        (np.zeros((rows, width - 1), np.uint8), ValueError, f"rows are {width - 1} bytes"),
    ]


def test_seal_many_into_refuses_wrong_outputs() -> None:
    for out, error, message in _wrong_outs(10, _sealed_width(96, context=CTX)):
        with pytest.raises(error, match=message):
            envelope.seal_many_into(KEY, ROWS[:10], out, context=CTX)  # type: ignore[arg-type]


def test_open_many_into_refuses_wrong_arguments_and_leaves_out_untouched() -> None:
    sealed = envelope.seal_many_array(KEY, ROWS[:10], context=CTX)
    for out, error, message in _wrong_outs(10, 96):
        with pytest.raises(error, match=message):
            envelope.open_many_into(KEY, sealed, out, context=CTX)  # type: ignore[arg-type]
    kept = np.full((10, 96), 7, np.uint8)
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.open_many_into(KEY[:31], sealed, kept, context=CTX)
    with pytest.raises(ValueError, match="contexts"):
        envelope.open_many_into(KEY, sealed, kept, context=[CTX, CTX])
    with pytest.raises(InvalidEnvelope, match=r"item 0: .*skip"):
        envelope.open_many_into(KEY, sealed, kept, context=CTX, skip=sealed.shape[1] + 1)
    with pytest.raises(TypeError, match="dict"):
        envelope.seal_many_into(KEY, ROWS[:10], kept, context=7)  # type: ignore[arg-type]
    assert (kept == 7).all()
    sealed_out = np.full(sealed.shape, 7, np.uint8)
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.seal_many_into(KEY[:16], ROWS[:10], sealed_out, context=CTX)
    with pytest.raises(ValueError, match="255"):
        envelope.seal_many_into(KEY, ROWS[:10], sealed_out, context=CTX, key_id="k" * 256)
    assert (sealed_out == 7).all()


def test_open_many_into_zeroes_the_output_when_an_item_fails() -> None:
    sealed = envelope.seal_many_array(KEY, ROWS, context=CTX)
    bad = sealed.copy()
    bad[1234, -1] ^= 1
    out = np.full(ROWS.shape, 0x5A, np.uint8)
    with pytest.raises(InvalidTag, match="item 1234"):
        envelope.open_many_into(KEY, bad, out, context=CTX)
    assert not out.any()
    out[:] = 0x5A
    with pytest.raises(InvalidTag, match="item 0"):
        envelope.open_many_into(os.urandom(32), sealed, out, context=CTX)
    assert not out.any()
    out[:] = 0x5A
    with pytest.raises(InvalidTag, match="item 0"):
        envelope.open_many_into(KEY, sealed, out, context={"other": "context"})
    assert not out.any()
    # A malformed item, and one whose plaintext does not fit its row: the item is named.
    garbled = sealed.copy()
    garbled[600, :2] = np.frombuffer(b"XX", np.uint8)
    out[:] = 0x5A
    with pytest.raises(InvalidEnvelope, match="item 600"):
        envelope.open_many_into(KEY, garbled, out, context=CTX)
    assert not out.any()
    mixed = envelope.seal_many(KEY, [b"a" * 96] * 5 + [b"b" * 95], context=CTX)
    six = np.full((6, 96), 0x5A, np.uint8)
    with pytest.raises(ValueError, match="item 5: output must be 95 bytes"):
        envelope.open_many_into(KEY, mixed, six, context=CTX)
    assert not six.any()
    with pytest.raises(InvalidTag, match="item 1234"):
        envelope.open_many_array(KEY, bad, context=CTX)


def test_outputs_may_not_share_memory_with_inputs() -> None:
    width = _sealed_width(96)
    memory = bytearray(10 * width)
    out = memoryview(memory).cast("B", (10, width))
    items_inside_out = [memoryview(memory)[i * width : i * width + 96] for i in range(10)]
    with pytest.raises(ValueError, match="share memory"):
        envelope.seal_many_into(KEY, items_inside_out, out)
    sealed = envelope.seal_many_array(KEY, ROWS[:10])
    over_sealed = sealed.reshape(-1)[: 10 * 96].reshape(10, 96)
    with pytest.raises(ValueError, match="share memory"):
        envelope.open_many_into(KEY, sealed, over_sealed)
    plain_memory = bytearray(10 * 96)
    plain = memoryview(plain_memory).cast("B", (10, 96))
    with pytest.raises(ValueError, match="share memory"):
        envelope.open_many_into(memoryview(plain_memory)[:32], sealed, plain)
    assert not any(plain_memory)

"""The sealed envelope: published vectors, an independent peer, tampering, batches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envelope_reference as ref
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
    for kind in (bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)):
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
        envelope.seal("k" * 32, b"x")
    with pytest.raises(TypeError):
        envelope.seal(KEY, "text")
    with pytest.raises(TypeError, match="dict"):
        envelope.seal(KEY, b"x", context=[("a", "b")])
    with pytest.raises(TypeError, match="str"):
        envelope.seal(KEY, b"x", context={"a": 1})
    with pytest.raises(ValueError, match="255"):
        envelope.seal(KEY, b"x", key_id="k" * 256)
    with pytest.raises(ValueError, match="65535"):
        envelope.seal(KEY, b"x", context={"a": "v" * 70_000})


def test_errors_and_outputs_never_show_the_key():
    sealed = envelope.seal(KEY, b"secret", context=CTX)
    for call in (
        lambda: envelope.open(os.urandom(32), sealed, context=CTX),
        lambda: envelope.open(KEY[:31], sealed, context=CTX),
        lambda: envelope.open(KEY, sealed[:50], context=CTX),
    ):
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
    mixed = [bytearray(shares[1]), memoryview(shares[2]), np.frombuffer(shares[3], np.uint8)]
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
        envelope.seal_many(KEY, [b"ok", "not bytes"])
    with pytest.raises(TypeError):
        envelope.seal_many(KEY, 12)

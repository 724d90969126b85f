"""envelope.reseal / reseal_many: moving envelopes to another key inside the core."""

from __future__ import annotations

import os

import pytest

from portal_core import envelope
from portal_core.exceptions import InvalidEnvelope, InvalidTag

OLD, NEW = os.urandom(32), os.urandom(32)
CTX = {"wallet": "w-1", "curve": "ED25519", "party": "custodian"}


def test_reseal_moves_to_the_new_key_and_keeps_the_context():
    sealed = envelope.seal(OLD, b"custodian share", context=CTX, key_id="kek/v1")
    moved = envelope.reseal(OLD, sealed, NEW, key_id="kek/v2")
    info = envelope.inspect(moved)
    assert info["key_id"] == "kek/v2" and info["context"] == CTX
    assert envelope.open(NEW, moved, context=CTX) == b"custodian share"
    with pytest.raises(InvalidTag):
        envelope.open(OLD, moved, context=CTX)
    with pytest.raises(InvalidTag):
        envelope.open(NEW, moved, context={**CTX, "wallet": "w-2"})
    assert envelope.reseal(OLD, bytearray(sealed), memoryview(NEW)) != moved  # fresh salt


def test_reseal_refuses_a_wrong_key_tampering_and_bad_arguments():
    sealed = envelope.seal(OLD, b"share", context=CTX)
    with pytest.raises(InvalidTag):
        envelope.reseal(NEW, sealed, NEW)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(InvalidTag):
        envelope.reseal(OLD, bytes(tampered), NEW)
    with pytest.raises(InvalidEnvelope):
        envelope.reseal(OLD, b"PC\x09" + sealed[3:], NEW)
    with pytest.raises(ValueError):
        envelope.reseal(OLD, sealed, NEW[:31])
    with pytest.raises(ValueError):
        envelope.reseal(OLD, sealed, NEW, key_id="k" * 256)
    with pytest.raises(TypeError):
        envelope.reseal(OLD, "not bytes", NEW)  # type: ignore[arg-type]


def test_reseal_many_is_all_or_nothing_and_names_the_item():
    shares = [os.urandom(64) for _ in range(300)]
    contexts = [{**CTX, "wallet": f"w{i}"} for i in range(300)]
    sealed = envelope.seal_many(OLD, shares, context=contexts)
    moved = envelope.reseal_many(OLD, sealed, NEW, key_id="new")
    assert envelope.open_many(NEW, moved, context=contexts) == shares
    assert {envelope.inspect(m)["key_id"] for m in moved} == {"new"}
    assert envelope.reseal_many(OLD, [], NEW) == []
    sealed[250] = sealed[250][:-1] + bytes([sealed[250][-1] ^ 1])
    with pytest.raises(InvalidTag, match="item 250"):
        envelope.reseal_many(OLD, sealed, NEW)


def test_a_callers_header_is_written_and_skipped():
    header = b"HDR:" + os.urandom(20)
    shares = [os.urandom(40) for _ in range(100)]
    blobs = envelope.seal_many(OLD, shares, context=CTX, key_id="k", prefix=header)
    assert all(b.startswith(header) for b in blobs)
    assert envelope.open(OLD, blobs[0][len(header) :], context=CTX) == shares[0]
    assert envelope.open_many(OLD, blobs, context=CTX, skip=len(header)) == shares
    new_header = b"NEW"
    moved = envelope.reseal_many(OLD, blobs, NEW, key_id="k2", skip=len(header), prefix=new_header)
    assert all(m.startswith(new_header) for m in moved)
    assert envelope.open_many(NEW, moved, context=CTX, skip=3) == shares
    assert envelope.seal_many(OLD, shares, context=CTX, prefix=b"")[0][:2] == b"PC"
    with pytest.raises(InvalidEnvelope, match="item 1"):
        envelope.open_many(OLD, [blobs[0], b"short"], context=CTX, skip=len(header))
    with pytest.raises(InvalidEnvelope):  # skipping too little leaves a foreign header
        envelope.open_many(OLD, blobs, context=CTX, skip=len(header) - 1)

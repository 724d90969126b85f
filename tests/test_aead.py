"""The AEAD classes against ``cryptography``'s: output, buffers, ``*_into``, errors, keys, threads.

AESGCM, AESGCMSIV, ChaCha20Poly1305, AESCCM (every tag length), AESOCB3 and AESSIV (with its
list of associated data items) are checked byte for byte against their ``cryptography``
namesakes. XChaCha20Poly1305 has no such peer; it is checked against a
reference built here from ``cryptography``'s ChaCha20 and ChaCha20Poly1305 (HChaCha20 +
ChaCha20-Poly1305, the XChaCha construction), which is itself first checked against the
Wycheproof XChaCha file.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from threading import Barrier

import numpy as np
import pytest
from cryptography import exceptions as peer_exceptions
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import aead as peer
from cryptography.hazmat.primitives.ciphers.algorithms import ChaCha20
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import Buffer

from numpy_buffer import as_buffer
from portal_core import aead, envelope
from portal_core.exceptions import InvalidTag, PortalError
from wycheproof import load

TAG = 16
# Inputs at least this long run with the GIL released (crates/portal-py/src/buffers.rs).
DETACH_MIN = 2048


# -- a reference XChaCha20-Poly1305 from cryptography's primitives ---------------------------

_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha §2.2), from one ChaCha20 block.

    A ChaCha20 block is the state after 20 rounds plus the initial state; HChaCha20 is
    words 0-3 and 12-15 of the state after the rounds. cryptography's ChaCha20 takes the
    16 bytes of state words 12-15 (counter || nonce) as its nonce, so subtracting the known
    initial words from the block recovers them.
    """
    block = Cipher(ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    words = struct.unpack("<16I", block)
    initial = _SIGMA + struct.unpack("<4I", nonce16)
    out = [(w - i) & 0xFFFFFFFF for w, i in zip(words[:4] + words[12:], initial, strict=True)]
    return struct.pack("<8I", *out)


def xchacha_reference(key: bytes, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
    """XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.3): ChaCha20-Poly1305 under a subkey."""
    subkey = hchacha20(key, nonce[:16])
    return peer.ChaCha20Poly1305(subkey).encrypt(bytes(4) + nonce[16:], data, aad)


class XChaChaReference:
    """The reference with the peer classes' interface (encrypt only)."""

    def __init__(self, key: bytes) -> None:
        self._key = bytes(key)

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        return xchacha_reference(self._key, bytes(nonce), bytes(data), aad)


# -- what each class accepts --------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    cls: type
    peer: type | None  # cryptography's class, None for XChaCha20Poly1305
    key_lens: tuple[int, ...]
    nonce_min: int
    nonce_max: int

    @property
    def nonce_len(self) -> int:
        """The usual nonce length."""
        return 24 if self.nonce_min == 24 else 12

    def reference(self, key: bytes):
        """An object whose ``encrypt`` gives the expected output."""
        return self.peer(key) if self.peer else XChaChaReference(key)

    def __str__(self) -> str:
        return self.cls.__name__


SPECS = [
    Spec(aead.AESGCM, peer.AESGCM, (16, 24, 32), 8, 128),
    Spec(aead.AESGCMSIV, peer.AESGCMSIV, (16, 24, 32), 12, 12),
    Spec(aead.ChaCha20Poly1305, peer.ChaCha20Poly1305, (32,), 12, 12),
    Spec(aead.XChaCha20Poly1305, None, (32,), 24, 24),
    Spec(aead.AESCCM, peer.AESCCM, (16, 24, 32), 7, 13),
    Spec(aead.AESOCB3, peer.AESOCB3, (16, 24, 32), 12, 15),
]
# The classes whose generate_key takes a bit length (128, 192 or 256), and the ChaCha ones.
AES_SPECS = [s for s in SPECS if s.key_lens == (16, 24, 32)]
CHACHA_SPECS = [s for s in SPECS if s.key_lens == (32,)]
PEERED = [s for s in SPECS if s.peer]
# Every (class, key length): AES-192-GCM-SIV runs on a separate engine from the rest.
KEYED = [pytest.param(s, n, id=f"{s}-{n * 8}") for s in SPECS for n in s.key_lens]


def _ids(spec: Spec) -> str:
    return str(spec)


def _random_avoiding(n: int, exclude: bytes) -> bytes:
    """``n`` random bytes with none of the byte values in ``exclude``."""
    out = b""
    while len(out) < n:
        out += bytes(b for b in os.urandom(n) if b not in exclude)
    return out[:n]


def _plaintext(n: int) -> bytes:
    """``n`` random bytes with no zero and no 0xA5 (the markers the tests look for)."""
    return _random_avoiding(n, b"\x00\xa5")


@st.composite
def _inputs(draw, spec: Spec, max_data: int = 600):
    key_len = draw(st.sampled_from(spec.key_lens))
    nonce_len = draw(st.integers(spec.nonce_min, spec.nonce_max))
    key = draw(st.binary(min_size=key_len, max_size=key_len))
    nonce = draw(st.binary(min_size=nonce_len, max_size=nonce_len))
    data = draw(st.binary(max_size=max_data))
    aad = draw(st.none() | st.binary(max_size=100))
    return key, nonce, data, aad


# -- the reference itself --------------------------------------------------------------------


def test_xchacha_reference_reproduces_wycheproof():
    cases = [
        c
        for c in load("xchacha20_poly1305_test.json")
        if c.result == "valid" and len(c.hex("iv")) == 24
    ]
    assert len(cases) >= 200
    for c in cases:
        sealed = xchacha_reference(c.hex("key"), c.hex("iv"), c.hex("msg"), c.hex("aad"))
        assert sealed == c.hex("ct") + c.hex("tag"), f"tcId {c.tc_id}"


# -- byte-identical output -----------------------------------------------------------------


@pytest.mark.parametrize("spec", PEERED, ids=_ids)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_cryptography(spec, data):
    key, nonce, pt, aad = data.draw(_inputs(spec))
    ours, theirs = spec.cls(key), spec.peer(key)
    sealed = ours.encrypt(nonce, pt, aad)
    assert sealed == theirs.encrypt(nonce, pt, aad)
    assert theirs.decrypt(nonce, sealed, aad) == pt
    assert ours.decrypt(nonce, theirs.encrypt(nonce, pt, aad), aad) == pt
    buf = bytearray(len(pt) + TAG)
    assert ours.encrypt_into(nonce, pt, aad, buf) == len(buf)
    assert buf == sealed


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_xchacha_matches_reference(data):
    spec = SPECS[3]
    key, nonce, pt, aad = data.draw(_inputs(spec))
    ours = aead.XChaCha20Poly1305(key)
    sealed = ours.encrypt(nonce, pt, aad)
    assert sealed == xchacha_reference(key, nonce, pt, aad)
    assert ours.decrypt(nonce, sealed, aad) == pt
    other = bytes([nonce[0] ^ 1]) + nonce[1:]
    assert ours.encrypt(other, pt, aad) != sealed


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip(spec, data):
    key, nonce, pt, aad = data.draw(_inputs(spec))
    cipher = spec.cls(key)
    sealed = bytearray(len(pt) + TAG)
    assert cipher.encrypt_into(nonce, pt, aad, sealed) == len(sealed)
    assert cipher.decrypt(nonce, sealed, aad) == pt
    back = bytearray(len(pt))
    assert cipher.decrypt_into(nonce, sealed, aad, back) == len(pt)
    assert back == pt


@pytest.mark.parametrize(("spec", "key_len"), KEYED)
@pytest.mark.parametrize("size", [0, 1, DETACH_MIN - 1, DETACH_MIN, DETACH_MIN + 1, 70_001])
def test_sizes_around_the_gil_threshold(spec, key_len, size):
    key, nonce, pt, aad = os.urandom(key_len), os.urandom(spec.nonce_len), os.urandom(size), b"a"
    ours = spec.cls(key)
    sealed = ours.encrypt(nonce, pt, aad)
    assert sealed == spec.reference(key).encrypt(nonce, pt, aad)
    assert ours.decrypt(nonce, sealed, aad) == pt


@pytest.mark.parametrize("nonce_len", [8, 12, 13, 16, 64, 127, 128])
def test_aesgcm_nonce_lengths(nonce_len):
    for key_len in (16, 24, 32):
        key, nonce, pt = os.urandom(key_len), os.urandom(nonce_len), os.urandom(50)
        sealed = aead.AESGCM(key).encrypt(nonce, pt, None)
        assert sealed == peer.AESGCM(key).encrypt(nonce, pt, None)


# -- buffer types ----------------------------------------------------------------------------

BUFFER_TYPES: dict[str, Callable[[bytes], Buffer]] = {
    "bytearray": bytearray,
    "memoryview": memoryview,
    "memoryview-bytearray": lambda b: memoryview(bytearray(b)),
    "numpy": lambda b: as_buffer(np.frombuffer(b, dtype=np.uint8).copy()),
    "numpy-readonly": lambda b: as_buffer(np.frombuffer(b, dtype=np.uint8)),
}
ARGS = ("key", "nonce", "data", "aad")


def _strided(b: bytes) -> np.ndarray:
    """A non-contiguous numpy view holding the bytes of ``b``."""
    return np.repeat(np.frombuffer(b, dtype=np.uint8), 2)[::2]


def _sample(spec: Spec) -> dict[str, bytes]:
    return {
        "key": os.urandom(spec.key_lens[-1]),
        "nonce": os.urandom(spec.nonce_len),
        "data": os.urandom(40),
        "aad": os.urandom(9),
    }


@pytest.mark.parametrize("kind", BUFFER_TYPES)
@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_every_argument_takes_buffers(spec, kind):
    convert = BUFFER_TYPES[kind]
    args = _sample(spec)
    expected = spec.reference(args["key"]).encrypt(args["nonce"], args["data"], args["aad"])
    for changed in (*ARGS, "all"):
        a = {k: convert(v) if changed in (k, "all") else v for k, v in args.items()}
        cipher = spec.cls(a["key"])
        assert cipher.encrypt(a["nonce"], a["data"], a["aad"]) == expected, changed
        sealed = convert(expected) if changed in ("data", "all") else expected
        assert cipher.decrypt(a["nonce"], sealed, a["aad"]) == args["data"], changed


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_non_contiguous_buffers_raise_value_error(spec):
    args = _sample(spec)
    for arg in ARGS:
        for strided in (_strided(args[arg]), memoryview(args[arg] * 2)[::2]):
            a = {**args, arg: strided}
            with pytest.raises(ValueError, match="contiguous"):
                spec.cls(a["key"]).encrypt(a["nonce"], a["data"], a["aad"])
    cipher = spec.cls(args["key"])
    out = _strided(bytes(len(args["data"]) + TAG))
    with pytest.raises(ValueError, match="contiguous"):
        cipher.encrypt_into(args["nonce"], args["data"], args["aad"], out)


# -- encrypt_into / decrypt_into -------------------------------------------------------------

OUTPUT_TYPES: dict[str, Callable[[int], Buffer]] = {
    "bytearray": bytearray,
    "memoryview": lambda n: memoryview(bytearray(n)),
    "memoryview-slice": lambda n: memoryview(bytearray(n + 7))[3 : 3 + n],
    "numpy": lambda n: as_buffer(np.zeros(n, dtype=np.uint8)),
}


@pytest.mark.parametrize("kind", OUTPUT_TYPES)
@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_into_writes_every_writable_buffer(spec, kind):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    expected = cipher.encrypt(a["nonce"], a["data"], a["aad"])
    out = OUTPUT_TYPES[kind](len(expected))
    assert cipher.encrypt_into(a["nonce"], a["data"], a["aad"], out) == len(expected)
    assert bytes(out) == expected
    back = OUTPUT_TYPES[kind](len(a["data"]))
    assert cipher.decrypt_into(a["nonce"], expected, a["aad"], back) == len(a["data"])
    assert bytes(back) == a["data"]


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_into_requires_the_exact_length(spec):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    sealed = cipher.encrypt(a["nonce"], a["data"], a["aad"])
    calls = [
        (cipher.encrypt_into, a["data"], len(sealed)),
        (cipher.decrypt_into, sealed, len(a["data"])),
    ]
    for fn, data, want in calls:
        for size in (0, want - 1, want + 1, 2 * want):
            buf = bytearray(b"\xa5" * size)
            with pytest.raises(ValueError) as err:
                fn(a["nonce"], data, a["aad"], buf)
            assert str(err.value) == f"buffer must be {want} bytes"
            assert buf == b"\xa5" * size, "a refused buffer was written"
            if spec.peer:
                with pytest.raises(ValueError) as theirs:
                    getattr(spec.peer(a["key"]), fn.__name__)(a["nonce"], data, a["aad"], buf)
                assert str(theirs.value) == str(err.value)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_into_rejects_read_only_buffers(spec):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    n = len(a["data"]) + TAG
    frozen = np.zeros(n, dtype=np.uint8)
    frozen.flags.writeable = False
    for buf in (bytes(n), memoryview(bytes(n)), frozen):
        with pytest.raises(TypeError, match="writable"):
            cipher.encrypt_into(a["nonce"], a["data"], a["aad"], buf)
        if spec.peer:
            with pytest.raises(TypeError):
                spec.peer(a["key"]).encrypt_into(a["nonce"], a["data"], a["aad"], buf)


@pytest.mark.parametrize(("spec", "key_len"), KEYED)
@pytest.mark.parametrize("size", [0, 1, 100, DETACH_MIN + 100])
def test_into_in_place(spec, key_len, size):
    key, nonce, pt, aad = os.urandom(key_len), os.urandom(spec.nonce_len), os.urandom(size), b"x"
    cipher = spec.cls(key)
    expected = spec.reference(key).encrypt(nonce, pt, aad)

    buf = bytearray(pt) + bytearray(TAG)  # plaintext at the front, room for the tag
    assert cipher.encrypt_into(nonce, memoryview(buf)[:size], aad, buf) == size + TAG
    assert buf == expected

    assert cipher.decrypt_into(nonce, buf, aad, memoryview(buf)[:size]) == size
    assert buf[:size] == pt


@pytest.mark.parametrize(("spec", "key_len"), KEYED)
@pytest.mark.parametrize("size", [64, DETACH_MIN + 100])
def test_into_nonce_and_aad_read_from_the_output_buffer(spec, key_len, size):
    """A nonce or AAD that is a view of the output buffer is used as it was before the call."""
    key, pt = os.urandom(key_len), os.urandom(size)
    n = spec.nonce_len
    cipher = spec.cls(key)

    buf = bytearray(os.urandom(size + TAG))
    nonce, aad = memoryview(buf)[:n], memoryview(buf)[n : n + 30]
    expected = spec.reference(key).encrypt(bytes(nonce), pt, bytes(aad))
    cipher.encrypt_into(nonce, pt, aad, buf)
    assert buf == expected

    out = bytearray(os.urandom(size))
    nonce, aad = memoryview(out)[:n], memoryview(out)[n : n + 30]
    sealed = spec.reference(key).encrypt(bytes(nonce), pt, bytes(aad))
    cipher.decrypt_into(nonce, sealed, aad, out)
    assert out == pt


def _tampered(spec: Spec, key: bytes, nonce: bytes, sealed: bytes, aad: bytes):
    """(name, key, nonce, sealed, aad) variants that must all fail authentication."""

    def flip(b: bytes, i: int) -> bytes:
        return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]

    wrong_key = bytes(len(key)) if any(key) else b"\x01" * len(key)
    return [
        ("ciphertext", key, nonce, flip(sealed, 0), aad),
        ("tag", key, nonce, flip(sealed, len(sealed) - 1), aad),
        ("nonce", key, flip(nonce, len(nonce) - 1), sealed, aad),
        ("aad", key, nonce, sealed, flip(aad, 0)),
        ("aad-dropped", key, nonce, sealed, None),
        ("aad-extended", key, nonce, sealed, aad + b"\x00"),
        ("key", wrong_key, nonce, sealed, aad),
        ("truncated", key, nonce, sealed[:-1], aad),
    ]


@pytest.mark.parametrize(("spec", "key_len"), KEYED)
@pytest.mark.parametrize("size", [40, DETACH_MIN + 100])
def test_tampering_raises_invalid_tag_and_leaves_no_plaintext(spec, key_len, size):
    key, nonce, pt = os.urandom(key_len), os.urandom(spec.nonce_len), _plaintext(size)
    aad = b"header"
    sealed = spec.cls(key).encrypt(nonce, pt, aad)
    for name, k, n, s, a in _tampered(spec, key, nonce, sealed, aad):
        cipher = spec.cls(k)
        with pytest.raises(InvalidTag) as err:
            cipher.decrypt(n, s, a)
        assert isinstance(err.value, PortalError)
        assert str(err.value) == "", "an authentication failure carries no detail"
        for out in (bytearray(b"\xa5" * (len(s) - TAG)), np.full(len(s) - TAG, 0xA5, np.uint8)):
            with pytest.raises(InvalidTag):
                cipher.decrypt_into(n, s, a, out)
            got = bytes(out)
            # The core zeroes the buffer; no byte of the plaintext (which has no zeros) remains.
            assert got == bytes(len(got)), name
            assert not set(got) & set(pt), name
        if spec.peer:
            with pytest.raises(peer_exceptions.InvalidTag):
                spec.peer(k).decrypt(n, s, a)

    # In place: the ciphertext itself is the output buffer.
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(InvalidTag):
        spec.cls(key).decrypt_into(nonce, bad, aad, memoryview(bad)[:size])
    assert bad[:size] == bytes(size)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_data_shorter_than_a_tag_raises_invalid_tag(spec):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    for n in range(TAG):
        with pytest.raises(InvalidTag):
            cipher.decrypt(a["nonce"], bytes(n), a["aad"])
        with pytest.raises(InvalidTag):
            cipher.decrypt_into(a["nonce"], bytes(n), a["aad"], bytearray(0))
        if spec.peer:
            with pytest.raises(peer_exceptions.InvalidTag):
                spec.peer(a["key"]).decrypt(a["nonce"], bytes(n), a["aad"])


# -- argument errors -------------------------------------------------------------------------


def _same_error(ours: Callable[..., object], theirs: Callable[..., object] | None, exc: type):
    """Both calls raise ``exc``; returns the two exceptions (the second None without a peer).

    The calls take no argument; they are typed ``Callable[..., object]`` because mypy cannot
    infer a lambda that binds a loop variable as a default (``lambda b=bad: ...``) against
    ``Callable[[], object]``.
    """
    with pytest.raises(exc) as mine:
        ours()
    if theirs is None:
        return mine.value, None
    with pytest.raises(exc) as other:
        theirs()
    return mine.value, other.value


BAD_KEY_LENS = (0, 1, 8, 15, 17, 20, 31, 33, 64)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_wrong_key_length_raises_value_error(spec):
    for n in BAD_KEY_LENS:
        if n in spec.key_lens:
            continue
        key = os.urandom(n)
        mine, theirs = _same_error(
            lambda k=key: spec.cls(k), spec.peer and (lambda k=key: spec.peer(k)), ValueError
        )
        if theirs is not None:
            assert str(mine) == str(theirs)
        else:
            assert "32 bytes" in str(mine)


def _bad_nonce_lens(spec: Spec) -> list[int]:
    return [
        n
        for n in (0, 1, 7, 8, 11, 13, 16, 23, 25, 32, 129, 200)
        if not (spec.nonce_min <= n <= spec.nonce_max)
    ]


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_wrong_nonce_length_raises_value_error(spec):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    theirs = spec.peer(a["key"]) if spec.peer else None
    sealed = cipher.encrypt(a["nonce"], a["data"], a["aad"])
    for n in _bad_nonce_lens(spec):
        nonce = os.urandom(n)
        calls = {
            "encrypt": (a["data"],),
            "decrypt": (sealed,),
            "encrypt_into": (a["data"], bytearray(len(sealed))),
            "decrypt_into": (sealed, bytearray(len(a["data"]))),
        }
        for name, (data, *buf) in calls.items():
            args = (nonce, data, a["aad"], *buf)
            mine, other = _same_error(
                partial(getattr(cipher, name), *args),
                theirs and partial(getattr(theirs, name), *args),
                ValueError,
            )
            assert "Nonce must be" in str(mine), (name, n)
            # AESGCMSIV's wording differs from cryptography's ("... 12 bytes long"); the
            # other two peers word it identically.
            if other is not None and spec.cls is not aead.AESGCMSIV:
                assert str(mine) == str(other), (name, n)


NOT_BUFFERS = ("text", 12, 1.5, [1, 2], object())


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_wrong_types_raise_type_error(spec):
    a = _sample(spec)
    cipher = spec.cls(a["key"])
    theirs = spec.peer(a["key"]) if spec.peer else None
    for bad in (*NOT_BUFFERS, None):
        _same_error(
            lambda b=bad: spec.cls(b), spec.peer and (lambda b=bad: spec.peer(b)), TypeError
        )
        for arg in ("nonce", "data"):
            kw = {**a, arg: bad}
            _same_error(
                lambda kw=kw: cipher.encrypt(kw["nonce"], kw["data"], kw["aad"]),
                theirs and (lambda kw=kw: theirs.encrypt(kw["nonce"], kw["data"], kw["aad"])),
                TypeError,
            )
            with pytest.raises(TypeError, match=arg):
                cipher.decrypt(kw["nonce"], kw["data"], kw["aad"])
    for bad in NOT_BUFFERS:  # None is allowed as associated_data
        _same_error(
            lambda b=bad: cipher.encrypt(a["nonce"], a["data"], b),
            theirs and (lambda b=bad: theirs.encrypt(a["nonce"], a["data"], b)),
            TypeError,
        )
        with pytest.raises(TypeError):
            cipher.encrypt_into(a["nonce"], a["data"], None, bad)
    with pytest.raises(TypeError):
        cipher.encrypt_into(a["nonce"], a["data"], None, None)
    # numpy arrays that are not bytes
    with pytest.raises(TypeError):
        cipher.encrypt(a["nonce"], np.zeros(4, dtype=np.float64), None)


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", AES_SPECS, ids=_ids)
def test_generate_key_with_bit_length(spec):
    for bits in (128, 192, 256):
        k1, k2 = spec.cls.generate_key(bits), spec.cls.generate_key(bits)
        assert isinstance(k1, bytes)
        assert len(k1) == len(k2) == bits // 8
        assert k1 != k2
        assert any(k1)
        cipher = spec.cls(k1)
        assert cipher.decrypt(b"n" * 12, cipher.encrypt(b"n" * 12, b"data", None), None)


@pytest.mark.parametrize("spec", CHACHA_SPECS, ids=_ids)
def test_generate_key_chacha(spec):
    k1, k2 = spec.cls.generate_key(), spec.cls.generate_key()
    assert len(k1) == len(k2) == 32
    assert k1 != k2
    spec.cls(k1)
    with pytest.raises(TypeError):
        spec.cls.generate_key(256)
    if spec.peer:
        with pytest.raises(TypeError):
            spec.peer.generate_key(256)


@pytest.mark.parametrize("spec", AES_SPECS, ids=_ids)
def test_generate_key_bad_bit_length(spec):
    for bits in (0, 1, 64, 127, 129, 255, 384, 512, True, -128, 2**70):
        with pytest.raises(ValueError) as err:
            spec.cls.generate_key(bits)
        if bits in (0, 1, 64, 127, 129, 255, 384, 512, True):  # cryptography: same error
            with pytest.raises(ValueError) as theirs:
                spec.peer.generate_key(bits)
            assert str(err.value) == str(theirs.value)
    for bad in ("128", 128.0, None, b"\x80", [128]):
        _same_error(
            lambda b=bad: spec.cls.generate_key(b),
            lambda b=bad: spec.peer.generate_key(b),
            TypeError,
        )
    _same_error(spec.cls.generate_key, spec.peer.generate_key, TypeError)


@pytest.mark.parametrize(("spec", "key_len"), KEYED)
def test_repr_hides_the_key(spec, key_len):
    key = _random_avoiding(key_len, b"\x00")
    cipher = spec.cls(key)
    shown = repr(cipher) + str(cipher) + format(cipher)
    assert spec.cls.__name__ in shown
    for form in (
        key.hex(),
        key.hex().upper(),
        key.decode("latin-1"),
        repr(key)[2:-1],
        base64.b64encode(key).decode(),
        key[:8].hex(),
    ):
        assert form not in shown


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_one_object_from_four_threads(spec):
    """Four threads share one keyed object on inputs large enough to release the GIL."""
    key = os.urandom(32)
    cipher, reference = spec.cls(key), spec.reference(key)
    jobs = [
        (os.urandom(spec.nonce_len), os.urandom(DETACH_MIN + 1 + 997 * i), os.urandom(i))
        for i in range(16)
    ]
    expected = [reference.encrypt(*job) for job in jobs]
    start = Barrier(4, timeout=60)

    def work(t: int) -> int:
        start.wait()
        checked = 0
        for _ in range(10):
            for i in range(t, len(jobs), 4):
                nonce, pt, aad = jobs[i]
                sealed = cipher.encrypt(nonce, pt, aad)
                assert sealed == expected[i], (t, i)
                out = bytearray(len(pt))
                assert cipher.decrypt_into(nonce, sealed, aad, out) == len(pt)
                assert out == pt, (t, i)
                checked += 1
        return checked

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(work, range(4)))
    assert done == [40, 40, 40, 40]


# -- AESCCM's tag lengths and length limit -----------------------------------------------------

CCM_TAG_LENGTHS = (4, 6, 8, 10, 12, 14, 16)


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_aesccm_every_tag_length_matches_cryptography(data):
    key, nonce, pt, aad = data.draw(_inputs(SPECS[4]))
    tag_length = data.draw(st.sampled_from(CCM_TAG_LENGTHS))
    ours, theirs = aead.AESCCM(key, tag_length), peer.AESCCM(key, tag_length=tag_length)
    sealed = ours.encrypt(nonce, pt, aad)
    assert sealed == theirs.encrypt(nonce, pt, aad)
    assert len(sealed) == len(pt) + tag_length
    assert ours.decrypt(nonce, theirs.encrypt(nonce, pt, aad), aad) == pt
    buf = bytearray(len(pt) + tag_length)
    assert ours.encrypt_into(nonce, pt, aad, buf) == len(buf)
    assert buf == sealed
    back = bytearray(len(pt))
    assert ours.decrypt_into(nonce, sealed, aad, back) == len(pt)
    assert back == pt
    i = data.draw(st.integers(0, len(sealed) - 1))
    bad = sealed[:i] + bytes([sealed[i] ^ 0x80]) + sealed[i + 1 :]
    with pytest.raises(InvalidTag):
        ours.decrypt(nonce, bad, aad)
    with pytest.raises(peer_exceptions.InvalidTag):
        theirs.decrypt(nonce, bad, aad)
    # A shorter tag of the same key is another tag, not a prefix to accept.
    with pytest.raises(InvalidTag):
        aead.AESCCM(key, 16 if tag_length != 16 else 8).decrypt(nonce, sealed, aad)


def test_aesccm_tag_length_errors_match_cryptography():
    key = os.urandom(16)
    assert aead.AESCCM(key, None).encrypt(b"n" * 13, b"x", None) == aead.AESCCM(key).encrypt(
        b"n" * 13, b"x", None
    )
    for bad in (0, 1, 2, 3, 5, 7, 15, 17, 18, 32, True):
        mine, theirs = _same_error(
            lambda b=bad: aead.AESCCM(key, tag_length=b),
            lambda b=bad: peer.AESCCM(key, tag_length=b),
            ValueError,
        )
        assert str(mine) == str(theirs) == "Invalid tag_length"
    # cryptography raises OverflowError for these; any integer is a (wrong) length here.
    for bad in (-4, 2**70):
        with pytest.raises(ValueError, match="Invalid tag_length"):
            aead.AESCCM(key, tag_length=bad)
    for not_int in ("16", 16.0, b"\x10", [16]):
        _same_error(
            lambda b=not_int: aead.AESCCM(key, tag_length=b),
            lambda b=not_int: peer.AESCCM(key, tag_length=b),
            TypeError,
        )


def test_aesccm_message_length_is_bounded_by_the_nonce():
    key = os.urandom(16)
    ours, theirs = aead.AESCCM(key, 8), peer.AESCCM(key, tag_length=8)
    nonce = os.urandom(13)  # a 2-byte length field: at most 65535 bytes
    longest = os.urandom(65535)
    sealed = ours.encrypt(nonce, longest, None)
    assert sealed == theirs.encrypt(nonce, longest, None)
    assert ours.decrypt(nonce, sealed, None) == longest
    # One byte over: ValueError here. (cryptography 50 lets exactly 65536 bytes through to
    # OpenSSL, which fails with InternalError; from 65537 on it raises the same ValueError.)
    with pytest.raises(ValueError, match=r"^Data too long for nonce$"):
        ours.encrypt(nonce, longest + b"x", None)
    mine, other = _same_error(
        lambda: ours.encrypt(nonce, longest + b"xy", None),
        lambda: theirs.encrypt(nonce, longest + b"xy", None),
        ValueError,
    )
    assert str(mine) == str(other) == "Data too long for nonce"
    with pytest.raises(ValueError):
        ours.encrypt_into(nonce, longest + b"x", None, bytearray(65536 + 8))
    too_long = bytes(65536 + 8)
    with pytest.raises(InvalidTag):
        ours.decrypt(nonce, too_long, None)
    with pytest.raises(peer_exceptions.InvalidTag):
        theirs.decrypt(nonce, too_long, None)
    # A 12-byte nonce leaves three bytes: the same message is fine.
    n12 = nonce[:12]
    assert ours.encrypt(n12, longest + b"x", None) == theirs.encrypt(n12, longest + b"x", None)


# -- AESSIV ------------------------------------------------------------------------------------

SIV_KEY_LENS = (32, 48, 64)
SIV_TAG = 16


@st.composite
def _siv_inputs(draw, max_data: int = 600):
    key_len = draw(st.sampled_from(SIV_KEY_LENS))
    key = draw(st.binary(min_size=key_len, max_size=key_len))
    data = draw(st.binary(max_size=max_data))
    ad = draw(st.none() | st.lists(st.binary(max_size=80), max_size=6))
    return key, data, ad


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_aessiv_matches_cryptography(data):
    key, pt, ad = data.draw(_siv_inputs())
    ours, theirs = aead.AESSIV(key), peer.AESSIV(key)
    sealed = ours.encrypt(pt, ad)
    assert sealed == theirs.encrypt(pt, ad)
    assert theirs.decrypt(sealed, ad) == pt
    assert ours.decrypt(theirs.encrypt(pt, ad), ad) == pt
    buf = bytearray(len(pt) + SIV_TAG)
    assert ours.encrypt_into(pt, ad, buf) == len(buf)
    assert buf == sealed
    back = bytearray(len(pt))
    assert ours.decrypt_into(sealed, ad, back) == len(pt)
    assert back == pt
    # Deterministic: the same inputs give the same output, other AD another one.
    assert ours.encrypt(pt, ad) == sealed
    assert ours.encrypt(pt, [*(ad or []), b""]) != sealed


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_aessiv_tampering_is_refused_by_both(data):
    key, pt, ad = data.draw(_siv_inputs(max_data=200))
    ad = ad or []
    sealed = aead.AESSIV(key).encrypt(pt, ad)
    i = data.draw(st.integers(0, len(sealed) - 1))
    variants = [
        (sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1 :], ad),
        (sealed[:-1], ad),
        (sealed, [*ad, b"x"]),
        (sealed, [b"", *ad]),
    ]
    if len(ad) > 1 and ad[0] != ad[1]:
        variants.append((sealed, [ad[1], ad[0], *ad[2:]]))
    if ad:
        variants.append((sealed, ad[:-1]))
    for bad, bad_ad in variants:
        with pytest.raises(InvalidTag) as err:
            aead.AESSIV(key).decrypt(bad, bad_ad)
        assert str(err.value) == ""
        out = bytearray(b"\xa5" * max(len(bad) - SIV_TAG, 0))
        with pytest.raises(InvalidTag):
            aead.AESSIV(key).decrypt_into(bad, bad_ad, out)
        assert not any(out), "a failed decrypt_into left data in the buffer"
        with pytest.raises(peer_exceptions.InvalidTag):
            peer.AESSIV(key).decrypt(bad, bad_ad)


@pytest.mark.parametrize("key_len", SIV_KEY_LENS)
@pytest.mark.parametrize("size", [0, 1, DETACH_MIN - 1, DETACH_MIN, 70_001])
def test_aessiv_sizes_around_the_gil_threshold(key_len, size):
    key, pt = os.urandom(key_len), os.urandom(size)
    ad = [os.urandom(size // 3), b"nonce"]
    sealed = aead.AESSIV(key).encrypt(pt, ad)
    assert sealed == peer.AESSIV(key).encrypt(pt, ad)
    assert aead.AESSIV(key).decrypt(sealed, ad) == pt


@pytest.mark.parametrize("kind", BUFFER_TYPES)
def test_aessiv_every_argument_takes_buffers(kind):
    convert = BUFFER_TYPES[kind]
    key, pt, ad = os.urandom(64), os.urandom(40), [os.urandom(9), os.urandom(3)]
    expected = peer.AESSIV(key).encrypt(pt, ad)
    cipher = aead.AESSIV(convert(key))
    assert cipher.encrypt(convert(pt), [convert(a) for a in ad]) == expected
    assert cipher.decrypt(convert(expected), [convert(a) for a in ad]) == pt


def test_aessiv_into_in_place_and_overlapping_ad():
    key, pt = os.urandom(32), os.urandom(DETACH_MIN + 100)
    cipher = aead.AESSIV(key)
    size = len(pt)
    buf = bytearray(pt) + bytearray(SIV_TAG)
    ad_view = memoryview(buf)[100:140]
    ad = bytes(ad_view)
    expected = peer.AESSIV(key).encrypt(pt, [ad])
    # The data and an associated data item are both views of the output buffer.
    assert cipher.encrypt_into(memoryview(buf)[:size], [ad_view], buf) == size + SIV_TAG
    assert buf == expected
    out = bytearray(os.urandom(size))
    sealed = peer.AESSIV(key).encrypt(pt, [bytes(out[:30])])
    assert cipher.decrypt_into(sealed, [memoryview(out)[:30]], out) == size
    assert out == pt


def test_aessiv_argument_errors_match_cryptography():
    key = os.urandom(32)
    ours, theirs = aead.AESSIV(key), peer.AESSIV(key)
    for n in (0, 16, 24, 31, 33, 40, 63, 65, 128):
        mine, other = _same_error(
            lambda n=n: aead.AESSIV(bytes(n)), lambda n=n: peer.AESSIV(bytes(n)), ValueError
        )
        assert str(mine) == str(other)
    for bad_ad in (b"x", (b"x",), "x", 5, {b"x"}):
        _same_error(
            lambda a=bad_ad: ours.encrypt(b"m", a),
            lambda a=bad_ad: theirs.encrypt(b"m", a),
            TypeError,
        )
    for bad_item in ("text", 12, None, object()):
        _same_error(
            lambda b=bad_item: ours.encrypt(b"m", [b"ok", b]),
            lambda b=bad_item: theirs.encrypt(b"m", [b"ok", b]),
            TypeError,
        )
    for bad in (*NOT_BUFFERS, None):
        _same_error(
            lambda b=bad: ours.encrypt(b, None), lambda b=bad: theirs.encrypt(b, None), TypeError
        )
        _same_error(lambda b=bad: aead.AESSIV(b), lambda b=bad: peer.AESSIV(b), TypeError)
    for n in range(SIV_TAG):
        with pytest.raises(InvalidTag):
            ours.decrypt(bytes(n), None)
        with pytest.raises(InvalidTag):
            ours.decrypt_into(bytes(n), None, bytearray(0))
        with pytest.raises(peer_exceptions.InvalidTag):
            theirs.decrypt(bytes(n), None)
    sealed = ours.encrypt(b"message", [b"a"])
    for fn, data, want in (
        (ours.encrypt_into, b"message", len(sealed)),
        (ours.decrypt_into, sealed, 7),
    ):
        for size in (0, want - 1, want + 1):
            buf = bytearray(b"\xa5" * size)
            mine, other = _same_error(
                lambda f=fn, d=data, b=buf: f(d, [b"a"], b),
                lambda f=fn, d=data, b=buf: getattr(theirs, f.__name__)(d, [b"a"], b),
                ValueError,
            )
            assert str(mine) == str(other) == f"buffer must be {want} bytes"
            assert buf == b"\xa5" * size
    with pytest.raises(TypeError, match="writable"):
        ours.encrypt_into(b"message", None, bytes(len(sealed)))


def test_aessiv_refuses_more_than_126_associated_data_items():
    """RFC 5297 bounds S2V's vector at 127 strings, the message included; ``cryptography``
    does not enforce it, this API does (ValueError, never a wrong or weak output)."""
    key = os.urandom(32)
    ours = aead.AESSIV(key)
    items = [bytes([i]) for i in range(127)]
    sealed = ours.encrypt(b"m", items[:126])
    assert sealed == peer.AESSIV(key).encrypt(b"m", items[:126])
    assert ours.decrypt(sealed, items[:126]) == b"m"
    with pytest.raises(ValueError, match="126"):
        ours.encrypt(b"m", items)
    with pytest.raises(ValueError, match="126"):
        ours.decrypt(sealed, items)


def test_aessiv_generate_key():
    for bits in (256, 384, 512):
        k1, k2 = aead.AESSIV.generate_key(bits), aead.AESSIV.generate_key(bits)
        assert isinstance(k1, bytes) and len(k1) == len(k2) == bits // 8 and k1 != k2
        aead.AESSIV(k1)
    for bits in (0, 128, 192, 255, 257, 1024, True):
        mine, other = _same_error(
            lambda b=bits: aead.AESSIV.generate_key(b),
            lambda b=bits: peer.AESSIV.generate_key(b),
            ValueError,
        )
        assert str(mine) == str(other)
    for bad in ("256", 256.0, None):
        _same_error(
            lambda b=bad: aead.AESSIV.generate_key(b),
            lambda b=bad: peer.AESSIV.generate_key(b),
            TypeError,
        )


@pytest.mark.parametrize("key_len", SIV_KEY_LENS)
def test_aessiv_repr_hides_the_key(key_len):
    key = _random_avoiding(key_len, b"\x00")
    shown = repr(aead.AESSIV(key)) + str(aead.AESSIV(key))
    assert "AESSIV" in shown
    assert key.hex() not in shown and key[:8].hex() not in shown


def test_aessiv_one_object_from_four_threads():
    key = os.urandom(64)
    cipher, reference = aead.AESSIV(key), peer.AESSIV(key)
    jobs = [(os.urandom(DETACH_MIN + 1 + 997 * i), [os.urandom(i), b"n"]) for i in range(16)]
    expected = [reference.encrypt(*job) for job in jobs]
    start = Barrier(4, timeout=60)

    def work(t: int) -> int:
        start.wait()
        checked = 0
        for _ in range(10):
            for i in range(t, len(jobs), 4):
                pt, ad = jobs[i]
                assert cipher.encrypt(pt, ad) == expected[i], (t, i)
                assert cipher.decrypt(expected[i], ad) == pt, (t, i)
                checked += 1
        return checked

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(4))) == [40, 40, 40, 40]


# -- a drop-in for cryptography's exception ----------------------------------------------------


def test_failures_are_caught_as_cryptographys_invalid_tag():
    """``except cryptography.exceptions.InvalidTag`` catches our failed decryptions and opens:
    ``portal_core.exceptions.InvalidTag`` subclasses it, and the core raises that class."""
    assert issubclass(InvalidTag, peer_exceptions.InvalidTag)
    key = aead.AESGCM.generate_key(256)
    sealed = aead.AESGCM(key).encrypt(b"n" * 12, b"secret", None)
    with pytest.raises(peer_exceptions.InvalidTag):
        aead.AESGCM(key).decrypt(b"n" * 12, sealed[:-1] + bytes([sealed[-1] ^ 1]), None)
    with pytest.raises(peer_exceptions.InvalidTag):
        aead.AESSIV(os.urandom(32)).decrypt(bytes(16), None)
    env_key = os.urandom(envelope.KEY_LEN)
    boxed = envelope.seal(env_key, b"secret", context={"wallet": "w1"})
    with pytest.raises(peer_exceptions.InvalidTag):
        envelope.open(os.urandom(envelope.KEY_LEN), boxed, context={"wallet": "w1"})
    with pytest.raises(peer_exceptions.InvalidTag):
        envelope.open_many(env_key, [boxed], context={"wallet": "w2"})

"""Wycheproof vectors for the AEADs and KDFs: one test per file, failures name the tcId.

Loading, the outcome rules and the per-file counts (printed at the end of the run) live in
``tests/wycheproof.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portal_core import aead, kdf
from portal_core.exceptions import InvalidTag
from wycheproof import ENV_VAR, Case, Rejected, Unsupported, expect_error, load, run

TAG_BITS = 128  # the only tag size the API makes but AESCCM's, as with cryptography's classes

# Key and nonce lengths (bytes) each class accepts: the bounds cryptography's classes enforce.
KEY_LENS: dict[type, tuple[int, ...]] = {
    aead.AESGCM: (16, 24, 32),
    aead.AESGCMSIV: (16, 24, 32),
    aead.ChaCha20Poly1305: (32,),
    aead.XChaCha20Poly1305: (32,),
    aead.AESCCM: (16, 24, 32),
    aead.AESOCB3: (16, 24, 32),
}
NONCE_OK: dict[type, Callable[[int], bool]] = {
    aead.AESGCM: lambda n: 8 <= n <= 128,
    aead.AESGCMSIV: lambda n: n == 12,
    aead.ChaCha20Poly1305: lambda n: n == 12,
    aead.XChaCha20Poly1305: lambda n: n == 24,
    aead.AESCCM: lambda n: 7 <= n <= 13,
    aead.AESOCB3: lambda n: 12 <= n <= 15,
}
# AESCCM's tags: 4 to 16 bytes, even (RFC 3610 §2).
CCM_TAG_BITS = tuple(range(32, 129, 16))
# AES-SIV keys: 256, 384 or 512 bits.
SIV_KEY_LENS = (32, 48, 64)

# PBKDF2 cases above this count would take seconds each; none of the current file's do.
PBKDF2_MAX_ITERATIONS = 1_000_000


def _refused(case: Case, reason: str) -> str:
    """Outcome of a case the API refuses with ValueError: right for invalid, else skipped."""
    if case.result == "invalid":
        return "invalid_param"
    raise Unsupported(reason)


def _check_aead(cls: type, case: Case) -> str:
    key, iv, aad, msg = (case.hex(f) for f in ("key", "iv", "aad", "msg"))
    sealed = case.hex("ct") + case.hex("tag")
    tag_bits = case.group["tagSize"]
    tag = tag_bits // 8
    if cls is aead.AESCCM:
        if tag_bits not in CCM_TAG_BITS:
            expect_error(ValueError, cls, bytes(16), tag)
            return _refused(case, f"{tag_bits}-bit tag")
        make: Callable[[bytes], Any] = lambda k: cls(k, tag_length=tag)  # noqa: E731
    elif tag_bits != TAG_BITS:
        raise Unsupported(f"{tag_bits}-bit tag")
    else:
        make = cls
    if len(key) not in KEY_LENS[cls]:
        expect_error(ValueError, make, key)
        return _refused(case, f"{len(key) * 8}-bit key")
    cipher = make(key)
    if not NONCE_OK[cls](len(iv)):
        expect_error(ValueError, cipher.encrypt, iv, msg, aad)
        expect_error(ValueError, cipher.decrypt, iv, sealed, aad)
        return _refused(case, f"{len(iv) * 8}-bit nonce")

    if case.result == "invalid":
        expect_error(InvalidTag, cipher.decrypt, iv, sealed, aad)
        buf = bytearray(b"\xa5" * max(len(sealed) - tag, 0))
        expect_error(InvalidTag, cipher.decrypt_into, iv, sealed, aad, buf)
        assert not any(buf), "a failed decrypt_into left data in the buffer"
        assert cipher.encrypt(iv, msg, aad) != sealed, "encrypt made the rejected input"
        return "invalid_tag"

    try:
        assert cipher.encrypt(iv, msg, aad) == sealed, "encrypt"
        assert cipher.decrypt(iv, sealed, aad) == msg, "decrypt"
        out = bytearray(len(sealed))
        assert cipher.encrypt_into(iv, msg, aad, out) == len(sealed), "encrypt_into count"
        assert out == sealed, "encrypt_into"
        back = bytearray(len(msg))
        assert cipher.decrypt_into(iv, sealed, aad, back) == len(msg), "decrypt_into count"
        assert back == msg, "decrypt_into"
        if not aad:
            assert cipher.encrypt(iv, msg, None) == sealed, "encrypt with None AAD"
            assert cipher.decrypt(iv, sealed, None) == msg, "decrypt with None AAD"
    except (InvalidTag, ValueError) as err:
        if case.result == "acceptable":
            raise Rejected from err
        raise
    return case.result


def _check_siv(case: Case, ad: list[bytes], sealed: bytes) -> str:
    """One AES-SIV case: ``ad`` is the associated data vector, ``sealed`` is ``SIV || ct``."""
    key, msg = case.hex("key"), case.hex("msg")
    if len(key) not in SIV_KEY_LENS:
        expect_error(ValueError, aead.AESSIV, key)
        return _refused(case, f"{len(key) * 8}-bit key")
    cipher = aead.AESSIV(key)
    if case.result == "invalid":
        expect_error(InvalidTag, cipher.decrypt, sealed, ad)
        buf = bytearray(b"\xa5" * max(len(sealed) - 16, 0))
        expect_error(InvalidTag, cipher.decrypt_into, sealed, ad, buf)
        assert not any(buf), "a failed decrypt_into left data in the buffer"
        assert cipher.encrypt(msg, ad) != sealed, "encrypt made the rejected input"
        return "invalid_tag"
    try:
        assert cipher.encrypt(msg, ad) == sealed, "encrypt"
        assert cipher.decrypt(sealed, ad) == msg, "decrypt"
        out = bytearray(len(sealed))
        assert cipher.encrypt_into(msg, ad, out) == len(sealed), "encrypt_into count"
        assert out == sealed, "encrypt_into"
        back = bytearray(len(msg))
        assert cipher.decrypt_into(sealed, ad, back) == len(msg), "decrypt_into count"
        assert back == msg, "decrypt_into"
    except (InvalidTag, ValueError) as err:
        if case.result == "acceptable":
            raise Rejected from err
        raise
    return case.result


def _check_siv_aead(case: Case) -> str:
    """The nonce-based set (RFC 5297 §3): the nonce is the last associated data item."""
    return _check_siv(case, [case.hex("aad"), case.hex("iv")], case.hex("tag") + case.hex("ct"))


def _check_siv_deterministic(case: Case) -> str:
    """The deterministic set: one associated data item, ``ct`` is ``SIV || ciphertext``."""
    return _check_siv(case, [case.hex("aad")], case.hex("ct"))


def _check_hkdf(case: Case) -> str:
    ikm, salt, info, size = case.hex("ikm"), case.hex("salt"), case.hex("info"), case["size"]
    if case.result == "invalid":
        expect_error(ValueError, lambda: kdf.hkdf_sha256(ikm, salt=salt, info=info, length=size))
        return "invalid_param"
    okm = case.hex("okm")
    try:
        assert kdf.hkdf_sha256(ikm, salt=salt, info=info, length=size) == okm, "okm"
        if not salt:
            # RFC 5869 §2.2: an absent salt is HashLen zero bytes, as is an empty one.
            assert kdf.hkdf_sha256(ikm, salt=None, info=info, length=size) == okm, "salt=None"
    except ValueError as err:
        if case.result == "acceptable":
            raise Rejected from err
        raise
    return case.result


def _check_pbkdf2(case: Case) -> str:
    password, salt = case.hex("password"), case.hex("salt")
    iterations, length = case["iterationCount"], case["dkLen"]
    if iterations > PBKDF2_MAX_ITERATIONS:
        raise Unsupported(f"more than {PBKDF2_MAX_ITERATIONS:,} iterations (too slow)")
    if case.result == "invalid":
        expect_error(ValueError, kdf.pbkdf2_hmac_sha256, password, salt, iterations, length)
        return "invalid_param"
    try:
        assert kdf.pbkdf2_hmac_sha256(password, salt, iterations, length) == case.hex("dk")
    except ValueError as err:
        if case.result == "acceptable":
            raise Rejected from err
        raise
    return case.result


def _record(record_property: Callable[[str, object], None], name: str, tally) -> None:
    for key, value in tally.properties().items():
        record_property(f"{name}:{key}", value)


# (file, class, minimum valid cases that must run: a broken loader cannot pass)
AEAD_FILES = [
    pytest.param("aes_gcm_test.json", aead.AESGCM, 200, id="aes_gcm"),
    pytest.param("aes_gcm_siv_test.json", aead.AESGCMSIV, 130, id="aes_gcm_siv"),
    pytest.param("chacha20_poly1305_test.json", aead.ChaCha20Poly1305, 250, id="chacha20"),
    pytest.param("xchacha20_poly1305_test.json", aead.XChaCha20Poly1305, 240, id="xchacha20"),
    pytest.param("aes_ccm_test.json", aead.AESCCM, 340, id="aes_ccm"),
]
# Wycheproof has no OCB3 file: AESOCB3 is checked against cryptography in tests/test_aead.py.


@pytest.mark.parametrize(("name", "cls", "min_valid"), AEAD_FILES)
def test_aead_vectors(name, cls, min_valid, record_property):
    tally = run(name, load(name), lambda case: _check_aead(cls, case), min_valid=min_valid)
    _record(record_property, name, tally)


# (file, check, minimum valid cases, optional): the deterministic set is in neither the shared
# folder nor the crate today, so it runs only when someone adds the upstream file to the folder.
SIV_FILES = [
    pytest.param("aead_aes_siv_cmac_test.json", _check_siv_aead, 250, False, id="aes_siv_aead"),
    pytest.param(
        "aes_siv_cmac_test.json", _check_siv_deterministic, 115, True, id="aes_siv_deterministic"
    ),
]


@pytest.mark.parametrize(("name", "check", "min_valid", "optional"), SIV_FILES)
def test_aes_siv_vectors(name, check, min_valid, optional, record_property):
    tally = run(name, load(name, optional=optional), check, min_valid=min_valid)
    _record(record_property, name, tally)


@pytest.mark.parametrize(
    ("name", "check", "min_valid"),
    [
        pytest.param("hkdf_sha256_test.json", _check_hkdf, 80, id="hkdf_sha256"),
        pytest.param("pbkdf2_hmacsha256_test.json", _check_pbkdf2, 55, id="pbkdf2_sha256"),
    ],
)
def test_kdf_vectors(name, check, min_valid, record_property):
    tally = run(name, load(name), check, min_valid=min_valid)
    _record(record_property, name, tally)


# -- the loader's rule for a missing folder ----------------------------------------------------


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_vectors_fail_under_ci(ci, tmp_path, monkeypatch):
    absent = tmp_path / "no-vectors-here"
    monkeypatch.setenv(ENV_VAR, str(absent))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as failed:
        load("aes_gcm_test.json")
    assert str(absent) in str(failed.value), "the failure names the folder looked in"
    assert ENV_VAR in str(failed.value), "the failure says how to provide the vectors"


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_vectors_skip_outside_ci(ci, tmp_path, monkeypatch):
    absent = tmp_path / "no-vectors-here"
    monkeypatch.setenv(ENV_VAR, str(absent))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as skipped:
        load("aes_gcm_test.json")
    assert str(absent) in str(skipped.value), "the skip reason names the folder looked in"
    assert ENV_VAR in str(skipped.value), "the skip reason says how to provide the vectors"

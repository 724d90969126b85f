"""An independent implementation of the share format and eject, from docs/shares.md alone.

Written on `cryptography` (secp256k1 scalar multiplication), PyNaCl (ed25519
``crypto_scalarmult_ed25519_base_noclamp``), pycryptodome (Keccak-256) and
``base58``, not on portal_core, so the tests can check the Rust core against the
document. Running this file prints the published vectors (tests/vectors/shares_v1.json)
from fixed scalars.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import base58
from Crypto.Hash import keccak
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

MAGIC = b"PS"
VERSION = 1
CURVE_IDS = {"SECP256K1": 1, "ED25519": 2}
KIND_IDS = {"signing": 1, "backup": 2}
ROLE_IDS = {"client": 1, "custodian": 2}
# SEC 2 §2.4.1 (n) and RFC 8032 §5.1 (L).
ORDER = {
    "SECP256K1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "ED25519": 2**252 + 27742317777372353535851937790883648493,
}


def scalar_bytes(curve: str, x: int) -> bytes:
    """SEC 1 §2.3.7 big-endian for secp256k1, RFC 8032 little-endian for ed25519."""
    return x.to_bytes(32, "big" if curve == "SECP256K1" else "little")


def public_point(curve: str, x: int, *, compressed: bool = True) -> bytes:
    """``x·G``: SEC 1 §2.3.3 (compressed or not) / RFC 8032 §5.1.2."""
    if curve == "SECP256K1":
        pub = ec.derive_private_key(x, ec.SECP256K1()).public_key()
        fmt = (
            serialization.PublicFormat.CompressedPoint
            if compressed
            else serialization.PublicFormat.UncompressedPoint
        )
        return pub.public_bytes(serialization.Encoding.X962, fmt)
    return crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(curve, x))


def encode_share(curve: str, kind: str, role: str, share_id: str, x_i: int, x: int) -> bytes:
    """A version 1 share: party scalar ``x_i`` of the wallet whose key is ``x``."""
    sid = share_id.encode()
    return (
        MAGIC
        + bytes([VERSION, CURVE_IDS[curve], KIND_IDS[kind], ROLE_IDS[role], len(sid)])
        + sid
        + scalar_bytes(curve, x_i)
        + public_point(curve, x_i)
        + public_point(curve, x)
    )


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def eip55(address20: bytes) -> str:
    """EIP-55: upper-case each hex letter whose nibble in keccak256(lower hex) is >= 8."""
    lower = address20.hex()
    digest = keccak256(lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(lower))


def address(curve: str, x: int) -> str:
    if curve == "SECP256K1":
        uncompressed = public_point(curve, x, compressed=False)
        return eip55(keccak256(uncompressed[1:])[12:])
    return base58.b58encode(public_point(curve, x)).decode()


def private_key_string(curve: str, x: int) -> str:
    if curve == "SECP256K1":
        return scalar_bytes(curve, x).hex()
    return base58.b58encode(scalar_bytes(curve, x)).decode()


# Point arithmetic, for tests that add public shares or forge messages: affine
# secp256k1 (SEC 1 §2.2.1) and extended-coordinate edwards25519 (RFC 8032 §5.1.4,
# after the reference code of RFC 8032 §6). Public values only; not constant-time.
SECP_P = 2**256 - 2**32 - 977
ED_P = 2**255 - 19
ED_D = -121665 * pow(121666, -1, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def _secp_decode(b: bytes) -> tuple[int, int]:
    x = int.from_bytes(b[1:], "big")
    y = pow((x**3 + 7) % SECP_P, (SECP_P + 1) // 4, SECP_P)
    if (y * y - x**3 - 7) % SECP_P:
        raise ValueError("not on secp256k1")
    return (x, y if y % 2 == b[0] % 2 else SECP_P - y)


def _secp_encode(pt: tuple[int, int]) -> bytes:
    x, y = pt
    return bytes([2 + y % 2]) + x.to_bytes(32, "big")


def _secp_add(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None:
        return b
    if b is None:
        return a
    (x1, y1), (x2, y2) = a, b
    if x1 == x2 and (y1 + y2) % SECP_P == 0:
        return None
    if a == b:
        m = 3 * x1 * x1 * pow(2 * y1, -1, SECP_P)
    else:
        m = (y2 - y1) * pow(x2 - x1, -1, SECP_P)
    x3 = (m * m - x1 - x2) % SECP_P
    return (x3, (m * (x1 - x3) - y1) % SECP_P)


def _ed_decode(b: bytes) -> tuple[int, int, int, int]:
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, -1, ED_P)
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * ED_SQRT_M1 % ED_P
    if (x * x - x2) % ED_P:
        raise ValueError("not on edwards25519")
    if x & 1 != sign:
        x = ED_P - x
    return (x, y, 1, x * y % ED_P)


def _ed_encode(pt: tuple[int, int, int, int]) -> bytes:
    x, y, z, _ = pt
    zi = pow(z, -1, ED_P)
    x, y = x * zi % ED_P, y * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _ed_add(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % ED_P
    bb = (y1 + x1) * (y2 + x2) % ED_P
    cc = t1 * 2 * ED_D * t2 % ED_P
    dd = z1 * 2 * z2 % ED_P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def point_add(curve: str, a: bytes, b: bytes) -> bytes | None:
    """The encoded sum of two encoded points (``None`` for the secp256k1 identity)."""
    if curve == "SECP256K1":
        s = _secp_add(_secp_decode(a), _secp_decode(b))
        return None if s is None else _secp_encode(s)
    return _ed_encode(_ed_add(_ed_decode(a), _ed_decode(b)))


def point_neg(curve: str, a: bytes) -> bytes:
    if curve == "SECP256K1":
        x, y = _secp_decode(a)
        return _secp_encode((x, SECP_P - y))
    x, y, z, t = _ed_decode(a)
    return _ed_encode((ED_P - x, y, z, ED_P - t))


def point_sub(curve: str, a: bytes, b: bytes) -> bytes | None:
    return point_add(curve, a, point_neg(curve, b))


def _fixed_scalar(curve: str, label: str) -> int:
    digest = hashlib.sha512(f"portal-core shares vector {curve} {label}".encode()).digest()
    return int.from_bytes(digest, "big") % ORDER[curve]


def _rfc8032_test1_scalar() -> int:
    """RFC 8032 §7.1 TEST 1: the clamped first half of SHA-512(seed), as an integer mod L."""
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little") % ORDER["ED25519"]


def _pair(name: str, curve: str, kind: str, share_id: str, x: int, x_client: int) -> dict[str, Any]:
    n = ORDER[curve]
    x_custodian = (x - x_client) % n
    return {
        "name": name,
        "curve": curve,
        "kind": kind,
        "share_id": share_id,
        "client": {
            "scalar": scalar_bytes(curve, x_client).hex(),
            "public_share": public_point(curve, x_client).hex(),
            "encoded": encode_share(curve, kind, "client", share_id, x_client, x).hex(),
        },
        "custodian": {
            "scalar": scalar_bytes(curve, x_custodian).hex(),
            "public_share": public_point(curve, x_custodian).hex(),
            "encoded": encode_share(curve, kind, "custodian", share_id, x_custodian, x).hex(),
        },
        "public_key": public_point(curve, x).hex(),
        "eject": {"private_key": private_key_string(curve, x), "address": address(curve, x)},
    }


def _pairs() -> list[dict[str, Any]]:
    out = []
    for curve in ("SECP256K1", "ED25519"):
        x = _fixed_scalar(curve, "wallet")
        out.append(
            _pair(
                f"{curve.lower()}-signing",
                curve,
                "signing",
                "wallet-7f3a",
                x,
                _fixed_scalar(curve, "client"),
            )
        )
        out.append(
            _pair(
                f"{curve.lower()}-backup",
                curve,
                "backup",
                "pair-0001-ü",
                x,
                _fixed_scalar(curve, "client backup"),
            )
        )
    # Anchors to published values: private key 1 (G) on secp256k1, and the
    # RFC 8032 TEST 1 key on ed25519, each split into two shares.
    out.append(
        _pair("secp256k1-key-1", "SECP256K1", "signing", "w", 1, _fixed_scalar("SECP256K1", "g"))
    )
    out.append(
        _pair(
            "ed25519-rfc8032-test1",
            "ED25519",
            "signing",
            "w",
            _rfc8032_test1_scalar(),
            _fixed_scalar("ED25519", "rfc"),
        )
    )
    return out


def _invalid(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Encodings every reader must refuse, with a word its message contains."""
    out = []
    for p in pairs[:4:2]:  # the signing pair of each curve
        curve, good = p["curve"], bytes.fromhex(p["client"]["encoded"])
        scalar_at = 7 + len(p["share_id"].encode())
        n = ORDER[curve]

        def with_scalar(value: bytes, good: bytes = good, at: int = scalar_at) -> bytes:
            return good[:at] + value + good[at + 32 :]

        cases = [
            ("truncated", good[:-1], "truncated"),
            ("trailing-byte", good + b"\x00", "trailing"),
            ("version-2", good[:2] + b"\x02" + good[3:], "version"),
            ("unknown-curve", good[:3] + b"\x09" + good[4:], "curve"),
            (
                "other-curve-id",
                good[:3] + bytes([3 - CURVE_IDS[curve]]) + good[4:],
                "bytes after its id",
            ),
            ("scalar-equals-order", with_scalar(scalar_bytes(curve, n)), "canonical"),
            ("scalar-all-ones", with_scalar(b"\xff" * 32), "canonical"),
            ("scalar-zero", with_scalar(bytes(32)), "zero"),
            (
                "scalar-of-the-other-party",
                with_scalar(bytes.fromhex(p["custodian"]["scalar"])),
                "does not match",
            ),
            ("bad-magic", b"XX" + good[2:], "magic"),
        ]
        out += [
            {"name": f"{curve.lower()}-{name}", "encoded": data.hex(), "error": word}
            for name, data, word in cases
        ]
    return out


def vectors() -> dict[str, Any]:
    pairs = _pairs()
    return {
        "format": "portal-core share format v1 (docs/shares.md)",
        "pairs": pairs,
        "invalid": _invalid(pairs),
    }


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

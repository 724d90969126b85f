//! secp256k1 (SEC 2 §2.4.1) on `k256`, and Ethereum addresses (EIP-55).
//!
//! Scalars are 32-byte big-endian integers (SEC 1 §2.3.7); points are SEC 1
//! §2.3.3 compressed (33 bytes: `02`/`03` then x).

use k256::elliptic_curve::group::GroupEncoding;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use k256::elliptic_curve::PrimeField;
use k256::{
    AffinePoint, CompressedPoint, FieldBytes, ProjectivePoint, Scalar, Sec1Point, WideBytes,
};
use sha3::{Digest, Keccak256};
use zeroize::Zeroizing;

use super::group::Group;
use super::Curve;

/// The secp256k1 group.
pub struct Secp256k1;

impl Group for Secp256k1 {
    const CURVE: Curve = Curve::Secp256k1;
    const POINT_LEN: usize = 33;
    type Scalar = Scalar;
    type Point = ProjectivePoint;

    fn scalar_from_canonical(bytes: &[u8; 32]) -> Option<Scalar> {
        // `from_repr` refuses integers >= n (constant-time).
        Option::from(Scalar::from_repr(FieldBytes::from(*bytes)))
    }

    fn scalar_from_wide(bytes: &[u8; 64]) -> Scalar {
        <Scalar as Reduce<WideBytes>>::reduce(&WideBytes::from(*bytes))
    }

    fn scalar_to_bytes(s: &Scalar) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&s.to_bytes());
        out
    }

    fn scalar_is_zero(s: &Scalar) -> bool {
        bool::from(s.is_zero())
    }

    fn mul_base(s: &Scalar) -> ProjectivePoint {
        ProjectivePoint::mul_by_generator(s)
    }

    fn mul(p: &ProjectivePoint, s: &Scalar) -> ProjectivePoint {
        p * s
    }

    fn is_identity(p: &ProjectivePoint) -> bool {
        *p == ProjectivePoint::IDENTITY
    }

    fn encode(p: &ProjectivePoint) -> Vec<u8> {
        p.to_affine().to_bytes().to_vec()
    }

    fn decode(bytes: &[u8]) -> Option<ProjectivePoint> {
        let repr = CompressedPoint::try_from(bytes).ok()?;
        let p: AffinePoint = Option::from(AffinePoint::from_bytes(&repr))?;
        let p = ProjectivePoint::from(p);
        // The cofactor is 1, so every curve point is in the group; refuse the
        // identity and any encoding other than the canonical one.
        (!Self::is_identity(&p) && Self::encode(&p) == bytes).then_some(p)
    }

    fn address(p: &ProjectivePoint) -> String {
        ethereum_address(p)
    }

    fn private_key_string(x: &Scalar) -> Zeroizing<String> {
        // 64 lowercase hex digits, big-endian, as Ethereum wallets import keys.
        let bytes = Self::scalar_to_bytes(x);
        let mut s = Zeroizing::new(String::with_capacity(64));
        for b in bytes.iter() {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Decodes a SEC 1 public key, compressed (33 bytes) or uncompressed (65).
pub(crate) fn decode_sec1(bytes: &[u8]) -> Option<ProjectivePoint> {
    if bytes.len() == Secp256k1::POINT_LEN {
        return Secp256k1::decode(bytes);
    }
    let point = Sec1Point::from_bytes(bytes).ok()?;
    let p: AffinePoint = Option::from(AffinePoint::from_sec1_point(&point))?;
    let p = ProjectivePoint::from(p);
    (bytes.len() == 65 && !Secp256k1::is_identity(&p)).then_some(p)
}

/// The Ethereum address of `p`: the last 20 bytes of Keccak-256 over the
/// 64-byte `x || y` (the SEC 1 uncompressed encoding without its `04`), in
/// EIP-55 mixed-case checksum form with a `0x` prefix.
pub(crate) fn ethereum_address(p: &ProjectivePoint) -> String {
    let uncompressed = p.to_affine().to_sec1_point(false);
    let digest = Keccak256::digest(&uncompressed.as_bytes()[1..]);
    eip55(&digest[12..])
}

/// EIP-55: hex-encode the 20 address bytes in lowercase, hash that ASCII text
/// with Keccak-256, and upper-case each letter whose hash nibble is >= 8.
pub(crate) fn eip55(address: &[u8]) -> String {
    let lower: Vec<u8> = address
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .collect();
    let hash = Keccak256::digest(&lower);
    let mut out = String::with_capacity(2 + lower.len());
    out.push_str("0x");
    for (i, &c) in lower.iter().enumerate() {
        let nibble = (hash[i / 2] >> (4 * (1 - i % 2))) & 15;
        let c = if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        };
        out.push(c as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The examples listed in EIP-55 ("Test Cases").
    #[test]
    fn eip55_published_examples() {
        for want in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(eip55(&hex(&want[2..].to_lowercase())), want);
        }
    }

    /// Private key 1 is G; its address is a widely published constant.
    #[test]
    fn address_of_generator() {
        let g = Secp256k1::mul_base(&Scalar::ONE);
        assert_eq!(
            ethereum_address(&g),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        assert_eq!(
            hex::encode(Secp256k1::encode(&g)),
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
    }

    #[test]
    fn decode_refuses_identity_non_canonical_and_off_curve() {
        let g = Secp256k1::mul_base(&Scalar::ONE);
        let enc = Secp256k1::encode(&g);
        assert!(Secp256k1::decode(&enc).is_some());
        assert!(Secp256k1::decode(&[0u8; 33]).is_none());
        // x = p (non-canonical field element)
        let mut bad = hex("02fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f");
        assert!(Secp256k1::decode(&bad).is_none());
        bad[0] = 0x05;
        assert!(Secp256k1::decode(&bad).is_none());
        // x = 5 is not the x-coordinate of a point (5^3 + 7 = 132 is a non-residue).
        let mut off = [0u8; 33];
        off[0] = 2;
        off[32] = 5;
        assert!(Secp256k1::decode(&off).is_none());
        assert!(Secp256k1::decode(&enc[..32]).is_none());
    }

    #[test]
    fn scalar_canonical_bounds() {
        let n = hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
        let n: [u8; 32] = n.try_into().unwrap();
        assert!(Secp256k1::scalar_from_canonical(&n).is_none());
        let mut n1 = n;
        n1[31] -= 1;
        assert!(Secp256k1::scalar_from_canonical(&n1).is_some());
    }
}

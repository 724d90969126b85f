//! HKDF-SHA256 (RFC 5869).

use super::hmac::{wipe, HmacKey};
use super::SHA256_LEN;
use crate::{Error, Result};

/// RFC 5869 §2.3: at most 255 blocks of output.
pub const HKDF_MAX_LEN: usize = 255 * SHA256_LEN;

/// HKDF-SHA256 into `out` (RFC 5869). An empty `salt` means the RFC's
/// default of `HashLen` zero bytes (HMAC pads keys with zeros, so the two agree).
///
/// # Errors
/// [`Error::InvalidArgument`] if `out` is empty or longer than [`HKDF_MAX_LEN`].
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    if out.is_empty() || out.len() > HKDF_MAX_LEN {
        return Err(Error::arg(format!(
            "HKDF-SHA256 length must be between 1 and {HKDF_MAX_LEN} bytes"
        )));
    }
    // §2.2 Extract: PRK = HMAC-Hash(salt, IKM).
    let mut prk = [0u8; SHA256_LEN];
    HmacKey::new(salt).mac(&[ikm], &mut prk);
    let key = HmacKey::new(&prk);
    wipe(&mut prk);
    // §2.3 Expand: T(i) = HMAC-Hash(PRK, T(i-1) | info | i), T(0) empty.
    let (mut t, mut next) = ([0u8; SHA256_LEN], [0u8; SHA256_LEN]);
    for (i, chunk) in out.chunks_mut(SHA256_LEN).enumerate() {
        let prev = if i == 0 { &[][..] } else { &t[..] };
        key.mac(&[prev, info, &[i as u8 + 1]], &mut next);
        t = next;
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
    wipe(&mut t);
    wipe(&mut next);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(ikm: &[u8], salt: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        hkdf_sha256(ikm, salt, info, &mut out).map(|()| out)
    }

    /// RFC 5869 Appendix A.1-A.3.
    #[test]
    fn rfc5869() {
        let h = |s: &str| hex::decode(s).unwrap();
        let cases = [
            (
                h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                h("000102030405060708090a0b0c"),
                h("f0f1f2f3f4f5f6f7f8f9"),
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            (
                (0x00..=0x4f).collect(),
                (0x60..=0xaf).collect(),
                (0xb0..=0xff).collect(),
                "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
            ),
            (
                h("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
                vec![],
                vec![],
                "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            ),
        ];
        for (ikm, salt, info, okm) in cases {
            let out = derive(&ikm, &salt, &info, okm.len() / 2).unwrap();
            assert_eq!(hex::encode(out), okm);
        }
    }

    /// Against AWS-LC's HKDF over inputs around the HMAC block size and
    /// lengths around the output block size.
    #[test]
    fn matches_peer() {
        for n in 0..40usize {
            let ikm: Vec<u8> = (0..n * 5).map(|i| (i + n) as u8).collect();
            let salt: Vec<u8> = (0..(n * 3) % 140).map(|i| (i * 3) as u8).collect();
            let info: Vec<u8> = (0..(n * 11) % 130).map(|i| (i * 5) as u8).collect();
            let len = [1, 31, 32, 33, 64, 65, 255, 8160][n % 8];
            let mut peer = vec![0u8; len];
            assert!(crate::awslc::peers::hkdf_sha256(
                &mut peer, &ikm, &salt, &info
            ));
            assert_eq!(derive(&ikm, &salt, &info, len).unwrap(), peer, "case {n}");
        }
    }

    #[test]
    fn lengths() {
        assert!(derive(b"k", b"", b"", 0).is_err());
        assert!(derive(b"k", b"", b"", HKDF_MAX_LEN + 1).is_err());
        let long = derive(b"k", b"s", b"i", HKDF_MAX_LEN).unwrap();
        // Every shorter output is a prefix of the longer one (§2.3).
        for len in [1, 31, 32, 33, 64, 100] {
            assert_eq!(derive(b"k", b"s", b"i", len).unwrap(), long[..len]);
        }
    }
}

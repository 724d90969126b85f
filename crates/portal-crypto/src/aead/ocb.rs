//! AES-OCB3 (RFC 7253) on RustCrypto's `ocb3`, 16-byte tags, nonces of 12
//! to 15 bytes chosen per call.
//!
//! `ocb3` fixes the nonce size in the type and precomputes a table of
//! key-dependent offsets (the `L` values) when an instance is made, so one
//! instance per nonce size is made with the key.

use ocb3::aead::consts::{U12, U13, U14, U15, U16};
use ocb3::aead::generic_array::GenericArray;
use ocb3::aead::AeadInPlace;
use ocb3::Ocb3;

use super::any_aes::AnyAes;

/// The four instances, one per nonce size.
pub(super) struct OcbKeys {
    n12: Ocb3<AnyAes, U12, U16>,
    n13: Ocb3<AnyAes, U13, U16>,
    n14: Ocb3<AnyAes, U14, U16>,
    n15: Ocb3<AnyAes, U15, U16>,
}

/// Runs `$body` with `$ocb` bound to the instance for `$nonce`'s length,
/// and `$n` to the nonce as the array type it takes; `$none` otherwise.
macro_rules! with_instance {
    ($keys:expr, $nonce:expr, |$ocb:ident, $n:ident| $body:expr, $none:expr) => {
        match $nonce.len() {
            12 => {
                let ($ocb, $n) = (&$keys.n12, GenericArray::from_slice($nonce));
                $body
            }
            13 => {
                let ($ocb, $n) = (&$keys.n13, GenericArray::from_slice($nonce));
                $body
            }
            14 => {
                let ($ocb, $n) = (&$keys.n14, GenericArray::from_slice($nonce));
                $body
            }
            15 => {
                let ($ocb, $n) = (&$keys.n15, GenericArray::from_slice($nonce));
                $body
            }
            _ => $none,
        }
    };
}

impl OcbKeys {
    /// The instances for `aes`'s key.
    pub(super) fn new(aes: &AnyAes) -> Self {
        OcbKeys {
            n12: Ocb3::from(aes.clone()),
            n13: Ocb3::from(aes.clone()),
            n14: Ocb3::from(aes.clone()),
            n15: Ocb3::from(aes.clone()),
        }
    }

    /// Encrypts `buf` in place and writes the 16-byte tag. False for a nonce
    /// length OCB3 is not offered with, or an input past the crate's limit.
    pub(super) fn seal(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> bool {
        let sealed = with_instance!(
            self,
            nonce,
            |ocb, n| ocb.encrypt_in_place_detached(n, aad, buf).ok(),
            None
        );
        match sealed {
            Some(t) if t.len() == tag.len() => {
                tag.copy_from_slice(&t);
                true
            }
            _ => false,
        }
    }

    /// Decrypts `buf` in place when `tag` verifies. False otherwise; `buf`
    /// may then hold unauthenticated bytes the caller must wipe.
    pub(super) fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != 16 {
            return false;
        }
        let tag = GenericArray::from_slice(tag);
        with_instance!(
            self,
            nonce,
            |ocb, n| ocb.decrypt_in_place_detached(n, aad, buf, tag).is_ok(),
            false
        )
    }
}

impl Drop for OcbKeys {
    /// `ocb3` does not wipe its `L` table, which is derived from the key (the
    /// encryption of the zero block, then doublings of it). Overwrite each
    /// instance, field by field, with one made from an all-zero key, whose
    /// values are public, then make the memory observable so the stores are
    /// not removed as dead. The old instances' AES round keys are wiped by
    /// `aes` itself as the assignments drop them.
    fn drop(&mut self) {
        if let Some(blank) = AnyAes::new(&[0u8; 16]) {
            self.n12 = Ocb3::from(blank.clone());
            self.n13 = Ocb3::from(blank.clone());
            self.n14 = Ocb3::from(blank.clone());
            self.n15 = Ocb3::from(blank);
        }
        core::hint::black_box(&*self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7253 Appendix A, the first two samples (AES-128, 12-byte nonces).
    #[test]
    fn rfc7253_samples() {
        let key: Vec<u8> = (0..16).collect();
        let Some(aes) = AnyAes::new(&key) else {
            panic!("AES-128 key refused");
        };
        let keys = OcbKeys::new(&aes);
        let mut tag = [0u8; 16];
        let nonce = hex::decode("bbaa99887766554433221100").unwrap_or_default();
        assert!(keys.seal(&nonce, b"", &mut [], &mut tag));
        assert_eq!(hex::encode(tag), "785407bfffc8ad9edcc5520ac9111ee6");

        let nonce = hex::decode("bbaa99887766554433221101").unwrap_or_default();
        let data: Vec<u8> = (0..8).collect();
        let mut buf = data.clone();
        assert!(keys.seal(&nonce, &data, &mut buf, &mut tag));
        assert_eq!(
            hex::encode([&buf[..], &tag[..]].concat()),
            "6820b3657b6f615a5725bda0d3b4eb3a257c9af1f8f03009"
        );
        assert!(keys.open(&nonce, &data, &mut buf, &tag));
        assert_eq!(buf, data);
        assert!(!keys.seal(&nonce[..11], b"", &mut [], &mut tag));
    }
}

//! One AES type for the three key sizes, for the RustCrypto modes (CCM, OCB3).
//!
//! Those modes are generic over the block cipher and, through `typenum`,
//! over their nonce and tag sizes. With a concrete AES type per key size,
//! every (key, nonce, tag) combination CCM offers would be its own copy of
//! the mode: 3 x 7 x 7. Choosing the key size at run time inside the cipher
//! leaves one copy per (nonce, tag) pair; the choice costs one predictable
//! branch per call into the block function, next to the CPU-feature branch
//! the `aes` crate already takes there.
//!
//! The round keys are wiped on drop (the `aes` crate's `zeroize` feature).

use aes::{Aes128, Aes192, Aes256};
use cipher::consts::U16;
use cipher::{BlockCipher, BlockClosure, BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit};

/// AES-128, AES-192 or AES-256, chosen by the key's length.
#[derive(Clone)]
pub(super) enum AnyAes {
    A128(Aes128),
    A192(Aes192),
    A256(Aes256),
}

impl AnyAes {
    /// Expands a 16-, 24- or 32-byte key; `None` for any other length.
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128::new_from_slice(key).ok().map(AnyAes::A128),
            24 => Aes192::new_from_slice(key).ok().map(AnyAes::A192),
            32 => Aes256::new_from_slice(key).ok().map(AnyAes::A256),
            _ => None,
        }
    }
}

impl BlockSizeUser for AnyAes {
    type BlockSize = U16;
}

impl BlockCipher for AnyAes {}

impl BlockEncrypt for AnyAes {
    fn encrypt_with_backend(&self, f: impl BlockClosure<BlockSize = U16>) {
        match self {
            AnyAes::A128(c) => c.encrypt_with_backend(f),
            AnyAes::A192(c) => c.encrypt_with_backend(f),
            AnyAes::A256(c) => c.encrypt_with_backend(f),
        }
    }
}

impl BlockDecrypt for AnyAes {
    fn decrypt_with_backend(&self, f: impl BlockClosure<BlockSize = U16>) {
        match self {
            AnyAes::A128(c) => c.decrypt_with_backend(f),
            AnyAes::A192(c) => c.decrypt_with_backend(f),
            AnyAes::A256(c) => c.decrypt_with_backend(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cipher::generic_array::GenericArray;

    /// FIPS 197 Appendix C: the three example vectors, through the one type.
    #[test]
    fn fips197_examples() {
        let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let cases = [
            (16, "69c4e0d86a7b0430d8cdb78070b4c55a"),
            (24, "dda97ca4864cdfe06eaf70a0ec0d7191"),
            (32, "8ea2b7ca516745bfeafc49904b496089"),
        ];
        for (len, want) in cases {
            let key: Vec<u8> = (0..len as u8).collect();
            let Some(aes) = AnyAes::new(&key) else {
                panic!("{len}-byte key refused");
            };
            let mut block = GenericArray::clone_from_slice(&pt);
            aes.encrypt_block(&mut block);
            assert_eq!(hex::encode(block), want, "AES-{}", len * 8);
            aes.decrypt_block(&mut block);
            assert_eq!(block.as_slice(), pt);
        }
        assert!(AnyAes::new(&[0u8; 20]).is_none());
    }
}

//! AES-SIV (RFC 5297, S2V over AES-CMAC) on RustCrypto's `aes-siv`:
//! deterministic authenticated encryption with a vector of associated data
//! items, as `cryptography`'s `AESSIV`.
//!
//! Keys are 256, 384 or 512 bits: a CMAC key and a CTR key of equal size
//! (AES-128, -192 or -256). Output is `SIV || ciphertext`, the 16-byte
//! synthetic IV first. With a nonce, pass it as the last associated data
//! item (RFC 5297 §3).

use aes::{Aes128, Aes192, Aes256};
use aes_siv::siv::CmacSiv;
use cipher::consts::U16;
use cipher::{BlockCipher, BlockEncryptMut, KeyInit, KeySizeUser};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result};

/// Length of the synthetic IV, which is also the tag.
pub const SIV_LEN: usize = 16;

/// Most associated data items one call takes. S2V authenticates a vector of
/// at most 127 strings, the message included (RFC 5297 §2.4); `cryptography`
/// does not enforce the bound, this API refuses more with `InvalidArgument`.
pub const MAX_AD_ITEMS: usize = 126;

/// An AES-SIV key, ready for any number of calls from any number of threads.
///
/// Holds the key bytes (wiped on drop) and expands them per call: the
/// `aes-siv` state mutates as it computes S2V, so it cannot be shared.
pub struct AesSiv {
    key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for AesSiv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AesSiv")
            .field("key_bits", &(self.key.len() * 8))
            .finish_non_exhaustive()
    }
}

/// Which direction one call runs.
enum Op<'a> {
    Seal { siv: &'a mut [u8] },
    Open { siv: &'a [u8] },
}

fn run<C>(key: &[u8], ad: &[&[u8]], buf: &mut [u8], op: Op<'_>) -> bool
where
    C: BlockCipher<BlockSize = U16> + BlockEncryptMut + KeyInit + KeySizeUser + Clone,
    CmacSiv<C>: KeyInit,
{
    let Ok(mut siv) = CmacSiv::<C>::new_from_slice(key) else {
        return false;
    };
    match op {
        Op::Seal { siv: out } => match siv.encrypt_in_place_detached(ad.iter(), buf) {
            Ok(mut tag) => {
                out.copy_from_slice(&tag);
                tag.zeroize();
                true
            }
            Err(_) => false,
        },
        Op::Open { siv: tag } => siv
            .decrypt_in_place_detached(ad.iter(), buf, tag.into())
            .is_ok(),
    }
}

impl AesSiv {
    /// Checks a 32-, 48- or 64-byte key and keeps a copy of it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other key length.
    pub fn new(key: &[u8]) -> Result<Self> {
        if !Self::KEY_LENS.contains(&key.len()) {
            return Err(Error::arg("AESSIV key must be 256, 384, or 512 bits."));
        }
        Ok(AesSiv {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// Accepted key lengths in bytes.
    pub const KEY_LENS: [usize; 3] = [32, 48, 64];

    fn check_ad(ad: &[&[u8]]) -> Result<()> {
        if ad.len() > MAX_AD_ITEMS {
            return Err(Error::arg(format!(
                "AESSIV takes at most {MAX_AD_ITEMS} associated data items"
            )));
        }
        Ok(())
    }

    fn call(&self, ad: &[&[u8]], buf: &mut [u8], op: Op<'_>) -> bool {
        match self.key.len() {
            32 => run::<Aes128>(&self.key, ad, buf, op),
            48 => run::<Aes192>(&self.key, ad, buf, op),
            64 => run::<Aes256>(&self.key, ad, buf, op),
            _ => false,
        }
    }

    /// Encrypts `plaintext` into `out`, exactly `plaintext.len() + 16` bytes:
    /// `SIV || ciphertext`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong output length or more than
    /// [`MAX_AD_ITEMS`] associated data items.
    pub fn seal_into(&self, ad: &[&[u8]], plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        Self::check_ad(ad)?;
        if out.len() != plaintext.len() + SIV_LEN {
            return Err(Error::arg(format!(
                "buffer must be {} bytes",
                plaintext.len() + SIV_LEN
            )));
        }
        let (siv, body) = out.split_at_mut(SIV_LEN);
        body.copy_from_slice(plaintext);
        if !self.call(ad, body, Op::Seal { siv }) {
            out.zeroize();
            return Err(Error::arg("input too long for this AEAD"));
        }
        Ok(())
    }

    /// Encrypts into a new vector: `SIV || ciphertext`.
    ///
    /// # Errors
    /// As [`AesSiv::seal_into`].
    pub fn seal(&self, ad: &[&[u8]], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; plaintext.len() + SIV_LEN];
        self.seal_into(ad, plaintext, &mut out)?;
        Ok(out)
    }

    /// The plaintext length of a `SIV || ciphertext` input, or `InvalidTag`
    /// when it is shorter than the SIV (as `cryptography` does).
    ///
    /// # Errors
    /// [`Error::InvalidTag`] for inputs shorter than [`SIV_LEN`].
    pub fn plaintext_len(sealed_len: usize) -> Result<usize> {
        sealed_len.checked_sub(SIV_LEN).ok_or(Error::InvalidTag)
    }

    /// Authenticates and decrypts `sealed` (`SIV || ciphertext`) into `out`,
    /// exactly `sealed.len() - 16` bytes. On failure `out` is zeroed.
    ///
    /// # Errors
    /// [`Error::InvalidTag`] if authentication fails; [`Error::InvalidArgument`]
    /// for a wrong output length or too many associated data items.
    pub fn open_into(&self, ad: &[&[u8]], sealed: &[u8], out: &mut [u8]) -> Result<()> {
        Self::check_ad(ad)?;
        let pt_len = Self::plaintext_len(sealed.len())?;
        if out.len() != pt_len {
            return Err(Error::arg(format!("buffer must be {pt_len} bytes")));
        }
        let (siv, body) = sealed.split_at(SIV_LEN);
        out.copy_from_slice(body);
        if !self.call(ad, out, Op::Open { siv }) {
            out.zeroize();
            return Err(Error::InvalidTag);
        }
        Ok(())
    }

    /// Decrypts into a new vector.
    ///
    /// # Errors
    /// As [`AesSiv::open_into`].
    pub fn open(&self, ad: &[&[u8]], sealed: &[u8]) -> Result<Vec<u8>> {
        Self::check_ad(ad)?;
        let mut out = vec![0u8; Self::plaintext_len(sealed.len())?];
        self.open_into(ad, sealed, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5297 Appendix A.1: deterministic AES-SIV, one associated data item.
    #[test]
    fn rfc5297_a1() {
        let key = hex::decode("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
            .unwrap_or_default();
        let ad =
            hex::decode("101112131415161718191a1b1c1d1e1f2021222324252627").unwrap_or_default();
        let pt = hex::decode("112233445566778899aabbccddee").unwrap_or_default();
        let siv = AesSiv::new(&key);
        let Ok(siv) = siv else {
            panic!("a 256-bit key is an AES-SIV key");
        };
        let sealed = siv.seal(&[&ad], &pt);
        assert_eq!(
            sealed.as_deref().map(hex::encode),
            Ok("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c".to_owned())
        );
        let sealed = sealed.unwrap_or_default();
        assert_eq!(siv.open(&[&ad], &sealed), Ok(pt.clone()));
        assert_eq!(siv.open(&[], &sealed), Err(Error::InvalidTag));
        let mut out = vec![0xA5u8; pt.len()];
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert_eq!(
            siv.open_into(&[&ad], &bad, &mut out),
            Err(Error::InvalidTag)
        );
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn limits() {
        assert!(AesSiv::new(&[0u8; 16]).is_err());
        let Ok(siv) = AesSiv::new(&[7u8; 64]) else {
            panic!("a 512-bit key is an AES-SIV key");
        };
        let items = vec![&b"x"[..]; MAX_AD_ITEMS + 1];
        assert!(matches!(
            siv.seal(&items, b"m"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(siv.seal(&items[1..], b"m").is_ok());
        assert_eq!(siv.open(&[], &[0u8; 15]), Err(Error::InvalidTag));
    }
}
